"""Who is on duty (telephony/presence.py): one contract over the in-process adapter (a clock of
the test's own) and Redis (a real server, whose own clock expires the keys); the call centre's
agents as entries; GET /api/v1/presence and the wallboard's 在线人员 for the roles that may
see it; and across processes: a console on one web process is listed by another, and goes
within the TTL when that process is killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from hotline.app import make_app
from hotline.db import open_database
from telephony.presence import (
    CentrePresence,
    Entry,
    LocalPresence,
    Presence,
    RedisPresence,
    centre_of,
    group,
    keep_renewed,
)
from tests.conftest import PASSWORD, create_users, make_settings
from tests.hotline_server import Server
from tests.waiting import wait_until


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Rig:
    """One adapter, a second view of the same store (another process), and how to let an
    entry's TTL pass without renewal."""

    presence: Presence
    other: Presence
    expire: Callable[[], Awaitable[None]]
    clock: Clock | None = None


def console(name: str = "zhang", page: str = "/staff/tickets") -> Entry:
    return Entry(
        key=f"console:{uuid.uuid4().hex}",
        kind="console",
        username=name,
        since="2026-12-03T01:00:00+00:00",
        name="张三",
        role="agent",
        page=page,
        process="host:1",
    )


async def keys(p: Presence) -> set[str]:
    return {e.key for e in (await p.online()).entries}


@pytest.fixture(params=["memory", "redis"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    if request.param == "memory":
        clock = Clock()
        local = LocalPresence(ttl_s=60, clock=clock)

        async def advance() -> None:
            clock.t += 61

        yield Rig(local, local, advance, clock)
        return
    server = request.getfixturevalue("redis_server")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one = aioredis.from_url(server.url)
    two = aioredis.from_url(server.url)
    a = RedisPresence(one, ttl_s=1.0, prefix=prefix)
    b = RedisPresence(two, ttl_s=1.0, prefix=prefix)

    async def gone() -> None:  # Redis's clock: wait until the key has expired there
        await wait_until(lambda: _empty(b), within=30)

    try:
        yield Rig(a, b, gone)
    finally:
        await one.aclose()
        await two.aclose()


async def _empty(p: Presence) -> bool:
    return not (await p.online()).entries


# -- the contract, over both adapters ---------------------------------------------------------
async def test_an_entry_is_listed_until_removed(rig: Rig) -> None:
    e = console()
    await rig.presence.put([e])
    snap = await rig.other.online()
    assert snap.shared is True
    [got] = snap.entries
    assert (got.key, got.username, got.page, got.name) == (e.key, "zhang", "/staff/tickets", "张三")
    assert got.seen  # stamped by the writer
    await rig.presence.remove([e.key])
    assert await keys(rig.other) == set()


async def test_an_entry_nobody_renews_goes_by_itself(rig: Rig) -> None:
    """A writer that died (kill -9) renews nothing: its entries go within the TTL."""
    a, b = console("zhang"), console("li")
    await rig.presence.put([a, b])
    assert await keys(rig.other) == {a.key, b.key}
    rig.presence.forget([a.key, b.key])  # the writer is gone: nothing renews them
    await rig.expire()
    assert await keys(rig.other) == set()


async def test_renewal_keeps_entries_and_writes_them_again(rig: Rig) -> None:
    e = console()
    await rig.presence.put([e])
    if rig.clock is not None:  # renewed within each TTL: still there after several
        for _ in range(3):
            rig.clock.t += 40
            await rig.presence.renew()
        assert await keys(rig.other) == {e.key}
    else:  # Redis lost the key (a restart without persistence): renewal writes it again
        assert isinstance(rig.presence, RedisPresence)
        await rig.presence.redis.delete(rig.presence._k(e.key))
        assert await keys(rig.other) == set()
        await rig.presence.renew()
        assert await keys(rig.other) == {e.key}
        ttl_ms = await rig.presence.redis.pttl(rig.presence._k(e.key))
        assert 0 < ttl_ms <= 1000


def centre_snapshot(agents: list[dict[str, Any]], waits: list[float] | None = None) -> Any:
    return lambda: {
        "agents": agents,
        "waiting": [{"call": f"c{i}", "seconds": w} for i, w in enumerate(waits or [])],
        "calls": len(waits or []),
    }


async def test_the_active_centre_writes_its_agents_and_queue(rig: Rig) -> None:
    """Written on a change, an agent removed on sign-out; a standby writes nothing; a centre
    that steps down stops renewing without deleting what its successor writes."""
    agents = [{"username": "zhang", "state": "available", "reason": "", "seconds": 3.0}]
    waits: list[float] = []
    active = [True]
    clock = rig.clock or Clock()
    centre = CentrePresence(rig.presence, centre_snapshot(agents, waits), lambda: active[0], clock)
    await centre.step()
    found = (await rig.other.online()).entries
    [e] = [x for x in found if x.kind == "agent"]
    assert (e.key, e.state) == ("agent:zhang", "available")
    q = centre_of(found)
    assert q is not None and (q.waiting, q.oldest, q.calls) == (0, "", 0)
    agents[0] = {"username": "zhang", "state": "paused", "reason": "会议", "seconds": 0.0}
    waits += [12.0, 40.0]
    await centre.step()
    found = (await rig.other.online()).entries
    [e] = [x for x in found if x.kind == "agent"]
    assert (e.state, e.reason) == ("paused", "会议")
    q = centre_of(found)
    assert q is not None and (q.waiting, q.calls) == (2, 2)
    assert datetime.fromisoformat(q.oldest) == datetime.fromtimestamp(clock() - 40, UTC)
    assert list(group(found)) == ["zhang"]  # the queue is not a person
    agents.clear()  # signed out
    await centre.step()
    assert await keys(rig.other) == {"centre"}
    agents.append({"username": "li", "state": "talking", "reason": "", "seconds": 1.0})
    standby = CentrePresence(rig.other, centre_snapshot([]), lambda: False)
    await standby.step()
    await centre.step()
    assert await keys(rig.other) == {"agent:li", "centre"}  # the standby wrote nothing
    active[0] = False  # stepped down
    await centre.step()
    assert "agent:li" not in rig.presence.own  # not renewed here any more
    assert await keys(rig.other) == {"agent:li", "centre"}  # still listed until it expires
    await rig.expire()
    assert await keys(rig.other) == set()
    active[0] = True  # active again, then stopped for good (no standby): signed out at once
    await centre.step()
    assert await keys(rig.other) == {"agent:li", "centre"}
    await centre.close()
    assert await keys(rig.other) == set()


async def test_the_process_renewer_keeps_the_centres_entries_and_they_go_when_it_stops(
    redis_server: Any,
) -> None:
    """The centre writes on change only; the process's one renewer (keep_renewed) writes its
    entries again, so they outlive their TTL while the process lives, and go when it stops."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    one, two = aioredis.from_url(redis_server.url), aioredis.from_url(redis_server.url)
    try:
        writer = RedisPresence(one, ttl_s=2.0, prefix=prefix)
        reader = RedisPresence(two, ttl_s=2.0, prefix=prefix)
        agents = [{"username": "zhang", "state": "available", "reason": "", "seconds": 1.0}]
        centre = CentrePresence(writer, centre_snapshot(agents), lambda: True)
        await centre.step()
        first = {e.key: e.seen for e in (await reader.online()).entries}
        assert set(first) == {"agent:zhang", "centre"}
        renewer = asyncio.create_task(keep_renewed(writer))
        await centre.step()  # nothing changed: the centre writes nothing itself

        async def renewed_past_two_ttls() -> bool:
            now = {e.key: e.seen for e in (await reader.online()).entries}
            return set(now) == set(first) and all(
                datetime.fromisoformat(now[k]) - datetime.fromisoformat(first[k])
                > timedelta(seconds=4)
                for k in first
            )

        await wait_until(renewed_past_two_ttls, within=60)
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await wait_until(lambda: _empty(reader), within=30)
    finally:
        await one.aclose()
        await two.aclose()


def test_one_row_per_person_with_the_newest_agent_entry() -> None:
    a, b = console("zhang", "/staff"), console("zhang", "/staff/softphone")
    old = Entry(
        "agent:zhang", "agent", "zhang", "2026-12-03T00:00:00+00:00", state="talking", seen="1"
    )
    new = Entry(
        "agent:zhang", "agent", "zhang", "2026-12-03T00:00:00+00:00", state="paused", seen="2"
    )
    people = group([a, old, b, new])
    assert list(people) == ["zhang"]
    assert [c.page for c in people["zhang"]["consoles"]] == ["/staff", "/staff/softphone"]
    assert people["zhang"]["agent"].state == "paused"


async def test_redis_away_shows_this_process_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Unreachable Redis: own entries only, marked not shared; nothing raises; the outage is
    logged once, not once per call."""
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    p = RedisPresence(client, ttl_s=5, prefix="away")
    try:
        e = console()
        with caplog.at_level(logging.INFO, logger="telephony.presence"):
            await p.put([e])
            snap = await p.online()
            assert (snap.shared, [x.key for x in snap.entries]) == (False, [e.key])
            await p.remove([e.key])
            assert (await p.online()).entries == []
        lines = [r.getMessage() for r in caplog.records if r.name == "telephony.presence"]
        assert len(lines) == 1 and lines[0].startswith("Redis 不可用，在线人员暂只显示本进程（")
    finally:
        await client.aclose()


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LocalPresence(ttl_s=0)


# -- the API and the wallboard ------------------------------------------------------------------
async def ws_session(base: str, username: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post(
        base + "/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as r:
        assert r.status == 200, await r.text()
    return s


async def presence_of(s: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with s.get(base + "/api/v1/presence") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body


async def test_supervisors_see_who_is_on_duty_and_where(app_client: Any) -> None:
    base = str(app_client.make_url("")).rstrip("/")
    sup = await ws_session(base, "supervisor")
    housing = await ws_session(base, "housing")
    agent = await ws_session(base, "agent")
    try:
        ws = await housing.ws_connect(
            base + "/api/v1/live?page=/staff/tickets", headers={"Origin": base}
        )
        assert (await ws.receive_json())["type"] == "hello"
        odd = await agent.ws_connect(
            base + "/api/v1/live?page=javascript:alert(1)", headers={"Origin": base}
        )
        assert (await odd.receive_json())["type"] == "hello"
        body = await presence_of(sup, base)
        assert body["shared"] is True and body["count"] == 2
        rows = {p["username"]: p for p in body["people"]}
        h = rows["housing"]
        assert (h["name"], h["role_label"], h["department"]) == (
            "测试-housing",
            "承办单位",
            "150100-housing",
        )
        assert h["department_name"] and h["department_name"] != "150100-housing"
        assert h["pages"] == [{"path": "/staff/tickets", "label": "工单列表"}]
        assert h["online_since"].endswith("+08:00") and h["agent"] is None
        assert rows["agent"]["pages"] == []  # a page that is not a console page is not shown
        # the wallboard shows the same to a supervisor, and nothing of it to an agent
        async with sup.get(base + "/staff/wallboard") as r:
            html = await r.text()
        assert 'id="wb-presence"' in html and "测试-housing" in html and "工单列表" in html
        async with agent.get(base + "/staff/wallboard") as r:
            assert r.status == 200 and 'id="wb-presence"' not in await r.text()
        for who in (agent, housing):
            async with who.get(base + "/api/v1/presence") as r:
                assert r.status == 403
                assert (await r.json())["error"]["code"] == "role_forbidden"
        await ws.close()  # the page closed: gone at once, not after the TTL
        await odd.close()
        await wait_until(lambda: _count_is(sup, base, 0), within=30)
    finally:
        for s in (sup, housing, agent):
            await s.close()


async def _count_is(s: aiohttp.ClientSession, base: str, n: int) -> bool:
    return bool((await presence_of(s, base))["count"] == n)


async def test_a_console_on_one_process_is_listed_by_another_and_goes_when_it_is_killed(
    tmp_path: Path, sqlite_url: str, redis_server: Any, aiohttp_client: Any
) -> None:
    """A real `hotline serve --role web` holds a console; an in-process web app on the same
    Redis and store lists it, still after several TTLs (renewed), and no more within the TTL
    once the serving process is killed with SIGKILL (nothing ran to remove it)."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    env = {
        "HOTLINE__REDIS__URL": redis_server.url,
        "HOTLINE__REDIS__PREFIX": prefix,
        "HOTLINE__REDIS__PRESENCE_TTL_S": "3",
        "HOTLINE__TELEPHONY__ENABLED": "false",
        "HOTLINE__TRIAGE__ENABLED": "false",
    }
    settings = make_settings(sqlite_url, **env)
    db = open_database(settings)
    server = Server(tmp_path, sqlite_url, "--role", "web", env=env)
    try:
        create_users(settings, db)
        server.wait_ready()
        other = await aiohttp_client(make_app(settings, db, roles=["web"]))
        watcher_base = str(other.make_url("")).rstrip("/")
        sup = await ws_session(watcher_base, "supervisor")
        agent = await ws_session(server.base, "agent")
        try:
            ws = await agent.ws_connect(
                server.base + "/api/v1/live?page=/staff/softphone",
                headers={"Origin": server.base},
            )
            assert (await ws.receive_json())["type"] == "hello"
            body = await presence_of(sup, watcher_base)
            [row] = body["people"]
            assert (row["username"], row["pages"][0]["label"]) == ("agent", "软电话")
            first_seen = row["seen"]
            # renewed by the serving process: listed after the first TTL, seen again later
            await wait_until(lambda: _seen_after(sup, watcher_base, first_seen), within=60)
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(30)
            await wait_until(lambda: _count_is(sup, watcher_base, 0), within=60)
            await ws.close()
        finally:
            await sup.close()
            await agent.close()
    finally:
        server.stop()
        db.close()


async def _seen_after(s: aiohttp.ClientSession, base: str, seen: str) -> bool:
    body = await presence_of(s, base)
    return body["count"] == 1 and body["people"][0]["seen"] > seen


async def test_a_web_process_without_the_call_centre_shows_the_centres_figures(
    sqlite_url: str, redis_server: Any, aiohttp_client: Any
) -> None:
    """The wallboard of a web process while the call centre runs in another one: agents by
    state and the queue from the centre's presence entries on Redis, today's rates from the
    call records; while no centre reports, it says so instead of showing zeros."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        sqlite_url,
        HOTLINE__REDIS__URL=redis_server.url,
        HOTLINE__REDIS__PREFIX=prefix,
        HOTLINE__TELEPHONY__ENABLED="true",
    )
    db = open_database(settings)
    client = aioredis.from_url(redis_server.url)
    try:
        create_users(settings, db)
        web = await aiohttp_client(make_app(settings, db, roles=["web"]))
        base = str(web.make_url("")).rstrip("/")
        sup = await ws_session(base, "supervisor")
        try:
            calls = (await wallboard_of(sup, base))["calls"]
            assert (calls["source"], calls["reporting"], calls["waiting"]) == (
                "shared",
                False,
                None,
            )
            assert calls["offered_today"] == 0
            async with sup.get(base + "/staff/wallboard") as r:
                html = await r.text()
            assert '<p class="hint" id="wb-not-reporting">' in html  # shown, not hidden
            # the active centre, in another process, on the same Redis
            agents = [
                {"username": "agent", "state": "talking", "reason": "", "seconds": 30.0},
                {"username": "dispatcher", "state": "paused", "reason": "培训", "seconds": 5.0},
            ]
            elsewhere = RedisPresence(client, 60, prefix)
            centre = CentrePresence(elsewhere, centre_snapshot(agents, [25.0]), lambda: True)
            await centre.step()
            calls = (await wallboard_of(sup, base))["calls"]
            assert (calls["reporting"], calls["waiting"], calls["in_progress"]) == (True, 1, 1)
            assert calls["longest_wait_s"] >= 25
            assert calls["agents"]["talking"] == 1 and calls["agents"]["paused"] == 1
            async with sup.get(base + "/staff/wallboard") as r:
                html = await r.text()
            assert 'id="wb-not-reporting" hidden' in html
            assert '<strong id="wb-agents-talking">1</strong>' in html
            on_duty = await presence_of(sup, base)
            rows = {p["username"]: p for p in on_duty["people"]}
            assert rows["dispatcher"]["agent"]["reason"] == "培训"
            assert rows["dispatcher"]["name"] == "测试-dispatcher"  # from the account
            assert rows["dispatcher"]["pages"] == []  # a desk phone, no console open
            await centre.close()
            calls = (await wallboard_of(sup, base))["calls"]
            assert calls["reporting"] is False and calls["agents"]["talking"] == 0
        finally:
            await sup.close()
    finally:
        await client.aclose()
        db.close()


async def wallboard_of(s: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with s.get(base + "/api/v1/wallboard") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body
