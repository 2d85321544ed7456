"""A database outage (a real PostgreSQL stopped, then started again): requests get 503 with
Retry-After, in JSON on the API and as a Chinese page elsewhere, /healthz says unhealthy, the log
says it once when it starts and once when it ends (no traceback per request), the server
recovers by itself, and every request acknowledged with 201 is there afterwards."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from hotline.app import DATABASE, make_app
from tests.conftest import PASSWORD, create_users, make_settings
from tests.pgserver import PostgresServer
from tests.test_db_batch import run_batch
from tests.waiting import wait_until
from tickets.db import Database, is_outage
from tickets.tables import tickets

Client = TestClient[Any, Any]
MESSAGE = "数据库暂时不可用，请稍后重试"


async def submit(client: Client, i: int) -> tuple[int, Any]:
    resp = await client.post(
        "/api/v1/requests", json={"content": f"路灯不亮第{i}盏", "phone": f"139{i:08d}"}
    )
    return resp.status, await resp.json()


async def test_outage_postgres_stopped_answers_503_logs_once_and_recovers(
    aiohttp_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with PostgresServer() as pg:  # its own server: the session's one is not stopped
        settings = make_settings(pg.create_database("outage"))
        app = make_app(settings)
        create_users(settings, app[DATABASE])
        client: Client = await aiohttp_client(app)
        login = await client.post(
            "/api/v1/session", json={"username": "dispatcher", "password": PASSWORD}
        )
        assert login.status == 200
        acked: list[str] = []
        status, body = await submit(client, 0)
        assert status == 201
        acked.append(body["number"])
        assert (await client.get("/healthz")).status == 200

        caplog.clear()
        caplog.set_level(logging.INFO)
        await asyncio.to_thread(pg.pause)
        for i in range(1, 21):
            status, body = await submit(client, i)
            if status == 201:  # committed before the server went away
                acked.append(body["number"])
                continue
            assert status == 503, body
            assert body["error"]["code"] == "unavailable"
            assert body["error"]["message"] == MESSAGE
        resp = await client.post(
            "/api/v1/requests", json={"content": "停电了", "phone": "13900000001"}
        )
        assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
        # pages: a citizen's and a staff member's (whose session cannot be read now)
        page = await client.post("/track", data={"number": acked[0], "phone": "13900000000"})
        assert page.status == 503 and "Retry-After" in page.headers
        assert MESSAGE in await page.text()
        listing = await client.get("/staff/tickets")
        assert listing.status == 503 and MESSAGE in await listing.text()
        api_list = await client.get("/api/v1/tickets")
        assert api_list.status == 503

        async def unhealthy() -> bool:
            resp = await client.get("/healthz")
            return resp.status == 503 and "Retry-After" in resp.headers

        await wait_until(unhealthy, within=30)

        await asyncio.to_thread(pg.resume)

        async def healthy() -> bool:
            return (await client.get("/healthz")).status == 200

        await wait_until(healthy, within=60)
        n = 100

        async def accepted() -> bool:
            nonlocal n
            n += 1
            status, body = await submit(client, n)
            if status == 201:
                acked.append(body["number"])
            return status == 201

        await wait_until(accepted, within=60)
        assert (await client.get("/api/v1/tickets")).status == 200  # the session works again

        # every acknowledged request is there
        found = await app[DATABASE].read(
            lambda c: set(c.execute(sa.select(tickets.c.number)).scalars())
        )
        assert set(acked) <= found

        await client.close()  # before this PostgreSQL stops for good
        outage_lines = [r for r in caplog.records if "数据库不可用" in r.getMessage()]
        recovery_lines = [r for r in caplog.records if "数据库已恢复" in r.getMessage()]
        tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
        assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]
        assert len(recovery_lines) == 1
        assert tracebacks == [], [r.getMessage() for r in tracebacks]


def test_outage_errors_are_told_from_bugs() -> None:
    import sqlite3

    from sqlalchemy import exc as sa_exc

    def wrapped(orig: Exception, cls: type[sa_exc.DBAPIError]) -> Exception:
        return cls("SELECT 1", {}, orig)

    assert is_outage(
        wrapped(sqlite3.OperationalError("database is locked"), sa_exc.OperationalError)
    )
    assert is_outage(
        wrapped(sqlite3.OperationalError("database or disk is full"), sa_exc.OperationalError)
    )
    assert is_outage(wrapped(sqlite3.OperationalError("disk I/O error"), sa_exc.OperationalError))
    assert not is_outage(
        wrapped(sqlite3.OperationalError("no such table: tickets"), sa_exc.OperationalError)
    )
    assert not is_outage(wrapped(sqlite3.IntegrityError("UNIQUE failed"), sa_exc.IntegrityError))
    assert not is_outage(ValueError("a bug"))


def test_a_deadlock_victim_inside_a_write_batch_runs_again(pg_server: PostgresServer) -> None:
    """Two processes' group commits can lock the same rows in different orders; PostgreSQL
    then aborts one (deadlock detected, 40P01). The victim's whole batch is rolled back and
    runs again: not handed to its caller as an error (which read as an outage: 503 for
    everyone), and not rolled back to the job's savepoint only, which kept the rows the
    batch's earlier jobs had locked. Then every later job of the batch that touched the same
    rows was chosen as a victim again, a second each, while the other process waited: every
    request in flight stalled for tens of seconds (bench/cluster.py)."""
    url = pg_server.create_database("deadlock")
    db = Database(url, writers=1)
    other = sa.create_engine(url)
    try:
        db.run_write(lambda c: c.exec_driver_sql("CREATE TABLE pair (id int PRIMARY KEY, v int)"))
        db.run_write(lambda c: c.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)"))
        holds_first = threading.Event()
        runs: dict[str, int] = {"locker": 0, "victim": 0, "later": 0}

        def job(name: str, row: int, add: int) -> Any:
            def fn(conn: Any) -> str:
                runs[name] += 1
                conn.execute(
                    sa.text("UPDATE pair SET v = v + :add WHERE id = :row"),
                    {"add": add, "row": row},
                )
                holds_first.set()
                return name

            return fn

        def rival() -> None:  # holds row 2, then wants row 1: a cycle, found by the victim
            with other.begin() as conn:
                conn.exec_driver_sql("SET LOCAL deadlock_timeout = '60s'")  # the victim looks first
                conn.exec_driver_sql("UPDATE pair SET v = v + 10 WHERE id = 2")
                started.set()
                holds_first.wait(60)
                conn.exec_driver_sql("UPDATE pair SET v = v + 10 WHERE id = 1")

        started = threading.Event()
        thread = threading.Thread(target=rival)
        thread.start()
        assert started.wait(60)
        # locker takes row 1; victim wants row 2 (the rival's) and is chosen; later wants row 2
        jobs = [job("locker", 1, 1), job("victim", 2, 1), job("later", 2, 100)]
        results = run_batch(db, *jobs)
        thread.join(60)
        assert results == ["locker", "victim", "later"]
        # the batch ran twice, whole; `later` ran once: it was not chosen as a second victim
        assert runs == {"locker": 2, "victim": 2, "later": 1}
        rows = db.run_read(lambda c: c.exec_driver_sql("SELECT id, v FROM pair ORDER BY id").all())
        assert [tuple(r) for r in rows] == [(1, 11), (2, 111)]
    finally:
        other.dispose()
        db.close()
        pg_server.drop_database("deadlock")
