"""Several processes: `[redis] url` shares console news, limits and the watcher's lease between
them (a real Redis, tests/redisserver.py), and `[server] roles` / `hotline serve --role` split
the web pages, the call centre and the background work. Each app here is what one
`hotline serve` process builds; they share one store, as processes share PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from hotline.app import BUS, DATABASE, LEASE, make_app
from hotline.bus_redis import RedisBus
from hotline.cli import _redacted, _roles
from hotline.db import open_database
from hotline.lease import LocalLease, RedisLease
from tests.conftest import PASSWORD, create_users, make_settings
from tests.test_background import FakePredictor, body
from tests.waiting import wait_until
from tickets.outbox import TRIAGE, WorkQueue
from tickets.tables import tickets, work_queue

REPO = Path(__file__).resolve().parent.parent
Client = TestClient[Any, Any]


def redis_settings(db_url: str, redis_url: str, prefix: str, **env: str) -> Any:
    return make_settings(
        db_url, HOTLINE__REDIS__URL=redis_url, HOTLINE__REDIS__PREFIX=prefix, **env
    )


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"  # this test's keys and channels only


async def login(client: Client, username: str, password: str = PASSWORD) -> int:
    resp = await client.post("/api/v1/session", json={"username": username, "password": password})
    return resp.status


# -- Redis shared by two web processes --------------------------------------------------------
async def test_an_order_taken_by_one_web_process_reaches_the_consoles_of_another(
    db_url: str, redis_server: Any, prefix: str, aiohttp_client: Any
) -> None:
    settings = redis_settings(db_url, redis_server.url, prefix)
    db = open_database(settings)
    try:
        one = await aiohttp_client(make_app(settings, db, roles=["web"]))
        two = await aiohttp_client(make_app(settings, db, roles=["web"]))
        bus_two = two.app[BUS]
        assert isinstance(bus_two, RedisBus) and isinstance(one.app[BUS], RedisBus)
        await bus_two.wait_ready()
        await one.app[BUS].wait_ready()
        news = bus_two.subscribe()
        resp = await one.post("/api/v1/requests", json=body(1))
        assert resp.status == 201, await resp.text()
        number = (await resp.json())["number"]
        event = await asyncio.wait_for(news.get(), 10)
        assert event.action == "create"
        found = db.run_read(
            lambda c: c.execute(sa.select(tickets.c.id).where(tickets.c.number == number)).all()
        )
        assert [r.id for r in found] == [event.ticket_id]
    finally:
        db.close()


async def test_login_failures_are_counted_by_every_web_process(
    db_url: str, redis_server: Any, prefix: str, aiohttp_client: Any
) -> None:
    settings = redis_settings(
        db_url, redis_server.url, prefix, HOTLINE__SECURITY__LOGIN_MAX_FAILURES="2"
    )
    db = open_database(settings)
    create_users(settings, db)
    try:
        one = await aiohttp_client(make_app(settings, db, roles=["web"]))
        two = await aiohttp_client(make_app(settings, db, roles=["web"]))
        assert [await login(one, "agent", "wrong-password-1") for _ in range(2)] == [401, 401]
        # the third try goes to the other process: it knows of the two failures
        assert await login(two, "agent", "wrong-password-1") == 429
        assert await login(two, "agent") == 429  # even the right password waits
    finally:
        db.close()


async def test_without_redis_each_process_counts_alone(db_url: str, aiohttp_client: Any) -> None:
    """The embedded default, for contrast: the same walk is not refused by the other process."""
    settings = make_settings(db_url, HOTLINE__SECURITY__LOGIN_MAX_FAILURES="2")
    db = open_database(settings)
    create_users(settings, db)
    try:
        one = await aiohttp_client(make_app(settings, db, roles=["web"]))
        two = await aiohttp_client(make_app(settings, db, roles=["web"]))
        assert isinstance(one.app[LEASE], LocalLease)
        assert [await login(one, "agent", "wrong-password-1") for _ in range(2)] == [401, 401]
        assert await login(two, "agent") == 200
    finally:
        db.close()


# -- roles ----------------------------------------------------------------------------------
async def test_web_process_takes_orders_and_a_worker_process_triages_them(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(db_url, HOTLINE__TRIAGE__ENABLED="true", HOTLINE__TRIAGE__WORKERS="0")
    monkeypatch.setattr("hotline.app.load_predictor", lambda _settings: FakePredictor())
    db = open_database(settings)
    try:
        web_only = await aiohttp_client(make_app(settings, db, roles=["web"]))
        resp = await web_only.post("/api/v1/requests", json=body(1))
        assert resp.status == 201
        number = (await resp.json())["number"]

        def route_state() -> str:
            return str(
                db.run_read(
                    lambda c: c.execute(
                        sa.select(tickets.c.route_state).where(tickets.c.number == number)
                    ).scalar_one()
                )
            )

        await asyncio.sleep(1.5)  # a web process alone never triages: the job waits
        assert route_state() == "pending"
        assert (
            db.run_read(
                lambda c: c.execute(
                    sa.select(sa.func.count())
                    .select_from(work_queue)
                    .where(work_queue.c.topic == "triage")
                ).scalar_one()
            )
            == 1
        )

        worker = await aiohttp_client(make_app(settings, db, roles=["worker"]))

        async def triaged() -> bool:
            return await asyncio.to_thread(route_state) == "auto"

        await wait_until(triaged, within=60)
        # a worker process serves nothing but its health check
        assert (await worker.get("/healthz")).status == 200
        assert (await worker.get("/api/v1/tickets")).status == 404
        assert (await worker.post("/api/v1/requests", json=body(2))).status in (404, 405)
        assert worker.app[DATABASE] is db
    finally:
        db.close()


def test_unknown_roles_are_refused() -> None:
    settings = make_settings("sqlite:///:memory:")
    with pytest.raises(ValueError, match="未知角色"):
        make_app(settings, roles=["web", "mail"])
    assert _roles("all") == ["web", "sip", "worker"]
    assert _roles("web,sip") == ["web", "sip"]
    assert _roles("web, web") == ["web"]
    assert _roles("mail") is None and _roles(",") is None


def test_serve_refuses_an_unknown_role_clearly(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hotline.cli", "serve", "--role", "mail"],
        cwd=REPO,
        env={"HOTLINE__DATABASE__URL": f"sqlite:///{tmp_path / 'x.db'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--role 取 web、sip、worker" in out.stderr


def test_the_log_never_shows_the_redis_password() -> None:
    assert _redacted("redis://:s3cret@10.0.0.5:6379/0") == "redis://:***@10.0.0.5:6379/0"
    assert _redacted("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_two_worker_processes_share_the_background_work_through_redis_streams(
    db_url: str,
    redis_server: Any,
    prefix: str,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A web process takes orders; two worker processes on Redis triage them. The jobs go
    from the store's queue through the triage stream, each order is classified once, and
    nothing is left in the table or the stream."""
    settings = redis_settings(
        db_url,
        redis_server.url,
        prefix,
        HOTLINE__TRIAGE__ENABLED="true",
        HOTLINE__TRIAGE__WORKERS="0",
    )
    predictor = FakePredictor()
    monkeypatch.setattr("hotline.app.load_predictor", lambda _settings: predictor)
    db = open_database(settings)
    r = aioredis.from_url(redis_server.url)
    n = 8
    try:
        web = await aiohttp_client(make_app(settings, db, roles=["web"]))
        for _ in range(2):
            await aiohttp_client(make_app(settings, db, roles=["worker"]))
        for i in range(1, n + 1):
            assert (await web.post("/api/v1/requests", json=body(i))).status == 201

        pending = sa.select(sa.func.count()).where(tickets.c.route_state == "pending")
        jobs = WorkQueue(db, TRIAGE)

        async def triaged() -> bool:
            left = await db.read(lambda c: c.execute(pending).scalar_one())
            return left == 0 and (await jobs.stats()).depth == 0

        await wait_until(triaged, within=60)
        assert predictor.calls == n
        info = await r.xinfo_stream(f"{prefix}:jobs:triage")
        assert info["entries-added"] == n and info["length"] == 0
    finally:
        await r.aclose()
        db.close()


# -- the watcher's lease ----------------------------------------------------------------------
async def test_one_watcher_holds_the_lease_a_standby_takes_over(
    redis_server: Any, prefix: str
) -> None:
    a, b = aioredis.from_url(redis_server.url), aioredis.from_url(redis_server.url)
    try:
        first = RedisLease(a, "deadline-watcher", ttl_s=1, prefix=prefix)
        standby = RedisLease(b, "deadline-watcher", ttl_s=1, prefix=prefix)
        assert await first.hold() is True
        assert await standby.hold() is False
        assert await first.hold() is True  # renewed by its holder
        await first.release()  # a clean stop lets go at once
        assert await standby.hold() is True
        assert await first.hold() is False

        # the holder dies (stops renewing): the standby takes over once the lease expires
        async def taken() -> bool:
            return await first.hold()

        await wait_until(taken, within=30, interval=0.2)
        assert await standby.hold() is False
    finally:
        await a.aclose()
        await b.aclose()


async def test_the_lease_fails_open_while_redis_is_unreachable() -> None:
    """Deadlines must not pass unwatched: the store keeps watchers from firing twice."""
    gone = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        lease = RedisLease(gone, "deadline-watcher", ttl_s=30, prefix="x")
        assert await lease.hold() is True
    finally:
        await gone.aclose()


async def test_the_lease_lets_a_cancel_through_that_redis_py_turned_into_an_error() -> None:
    """A stop landing while redis-py connects can come out as ConnectionError: hold() must not
    take it for an outage (it would report the lease held and the loop would go on)."""
    entered = asyncio.Event()

    class Converting:
        async def eval(self, *args: Any) -> int:
            entered.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise ConnectionError("Connect call failed") from None
            return 1

    lease = RedisLease(Converting(), "deadline-watcher", ttl_s=30, prefix="x")
    task = asyncio.create_task(lease.hold())
    await asyncio.wait_for(entered.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
