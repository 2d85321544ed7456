"""Standby call centres in one process (telephony/standby.py): two centres share the in-memory
state store and a lease; a fake SIP worker speaks the real link protocol to the active one,
then, after it crashed, links to the one that took over and says which calls it holds. The
process-level proof with real SIP is tests/test_callcenter_failover.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import open_database
from telephony.acd import AgentState
from telephony.center import CallCenter
from telephony.centre_state import MemoryCentreStore
from telephony.protocol import Link, connect
from telephony.standby import StandbySetup
from tests.ports import free_port
from tests.test_callcenter import Clock
from tests.waiting import wait_until
from tickets.db import Database

from .conftest import make_settings

TOKEN = "standby-test-token-0123"


class StoreLease:
    """The lease as the memory store sees it: whoever the store names holds it."""

    def __init__(self, store: MemoryCentreStore, token: str) -> None:
        self.store = store
        self.token = token

    async def hold(self) -> bool:
        if self.store.holder in (None, self.token):
            self.store.holder = self.token
            return True
        return False

    async def release(self) -> None:
        if self.store.holder == self.token:
            self.store.holder = None


@dataclass
class Worker:
    """Plays a SIP worker (number `index`): links with a hello, records the centre's commands."""

    index: int = 0
    link: Link | None = None
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def attach(self, port: int, calls: list[dict[str, Any]]) -> None:
        async def handler(op: str, args: dict[str, Any]) -> dict[str, Any]:
            self.commands.append((op, args))
            return {}

        hello = {"worker": self.index, "pid": 1, "calls": calls}
        self.link = await connect("127.0.0.1", port, TOKEN, hello, handler)
        self.reader = asyncio.create_task(self.link.run())

    async def notify(self, op: str, **args: Any) -> None:
        assert self.link is not None
        await self.link.notify(op, **args)
        await self.link.request("position", call="-")  # answered after everything before it

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        assert self.link is not None
        return await self.link.request(op, **args)

    async def detach(self) -> None:
        if self.link is not None:
            await self.link.close()
        if self.reader is not None:
            self.reader.cancel()


@dataclass
class Site:
    settings: Settings
    db: Database
    store: MemoryCentreStore
    tmp: Path
    centres: list[CallCenter] = field(default_factory=list)

    async def centre(self, name: str, mono: float) -> tuple[CallCenter, Clock]:
        bus = InProcessBus()
        services = build_services(self.settings, self.db, bus)
        clock = Clock()
        clock.mono = mono
        port = free_port(udp=False)
        center = CallCenter(
            self.settings.telephony,
            services.tickets,
            self.db,
            bus,
            spool=self.tmp / "spool" / "voicemail",
            recordings=self.tmp / "recordings",
            now=clock.now,
            monotonic=clock.monotonic,
            standby=StandbySetup(
                lease=StoreLease(self.store, name),
                store=self.store,
                holder=name,
                host="127.0.0.1",
                port=port,
                token=TOKEN,
                lease_s=0.3,
            ),
        )
        self.centres.append(center)
        await center.start()
        return center, clock


@pytest.fixture
async def site(db_url: str, tmp_path: Path) -> AsyncIterator[Site]:
    settings = make_settings(db_url, HOTLINE__TELEPHONY__WRAPUP_S="10")
    db = open_database(settings)
    s = Site(settings, db, MemoryCentreStore(), tmp_path)
    try:
        yield s
    finally:
        for c in s.centres:
            await c.stop()
        db.close()


async def crash(center: CallCenter) -> None:
    """What kill -9 leaves: no more writes, links cut, the lease not let go (it expires)."""
    assert center.standby is not None and center.standby._runner is not None
    center.standby._runner.cancel()
    await center.unlisten()


async def active(center: CallCenter) -> bool:
    return center.active


async def test_the_standby_takes_over_the_queue_the_agents_and_the_workers_calls(
    site: Site,
) -> None:
    a, _ = await site.centre("a", mono=1000.0)
    await wait_until(lambda: active(a), within=10)
    b, _ = await site.centre("b", mono=5000.0)  # another process: another monotonic clock
    assert b.active is False
    await a.agent_login("agent1", "sip:agent1@127.0.0.1:5090")
    await a.agent_state("agent1", "available")
    await a.agent_login("agent2", "sip:agent2@127.0.0.1:5091")
    await a.agent_state("agent2", "paused", "会议")
    worker = Worker()
    await worker.attach(a.port, [])
    await asyncio.wait_for(a.worker_joined.wait(), 10)
    for call, caller in (("c1", "13800000001"), ("c2", "13800000002"), ("c3", "13800000003")):
        await worker.notify("offered", call=call, caller=caller, dialled="12345", worker=0)
    assert (await worker.request("enqueue", call="c1", kind="complaint"))["queued"]
    await wait_until(lambda: _commanded(worker, "c1"), within=10)
    await worker.notify("ringing", call="c1", agent="agent1", path="lang:cmn>menu:2>queue")
    await worker.notify("answered", call="c1", agent="agent1", recording="/r/c1.wav")
    assert (await worker.request("enqueue", call="c2", kind="consult"))["position"] == 1

    async def written() -> bool:
        data = site.store.data
        return set(data["calls"]) == {"c1", "c2", "c3"} and set(data["waiting"]) == {"c2"}

    await wait_until(written, within=10)

    await crash(a)
    await worker.detach()
    await asyncio.sleep(0)
    site.store.holder = None  # the dead centre's lease ran out
    await wait_until(lambda: active(b), within=10)
    # the worker links again and says what it holds: c1 with agent1, c2 waiting, and c4,
    # offered while no centre listened; c3 (in the IVR) ended meanwhile
    room = {"held": False, "parties": [{"kind": "agent", "name": "agent1", "state": "up"}]}
    await worker.attach(
        b.port,
        [
            {"call": "c1", "stage": "agents", "room": room, "caller": "13800000001"},
            {"call": "c2", "stage": "queue", "kind": "consult", "caller": "13800000002"},
            {"call": "c4", "stage": "ivr", "caller": "13800000004", "dialled": "12345"},
        ],
    )
    await asyncio.wait_for(b.worker_joined.wait(), 10)  # set once the hello is adopted
    one, two = b.acd.agents["agent1"], b.acd.agents["agent2"]
    assert (one.state, one.call, one.answered) == (AgentState.TALKING, "c1", 1)
    assert (two.state, two.reason) == (AgentState.PAUSED, "会议")
    assert list(b.acd.waiting) == ["c2"]
    assert b.acd.waiting["c2"].deadline - b.monotonic() == pytest.approx(60.0)  # its timeout
    assert set(b.calls) == {"c1", "c2", "c4"}
    (c3,) = await b.list_calls(caller="13800000003")
    assert (c3.outcome, c3.ended_at is not None) == ("ivr", True)
    (c4,) = await b.list_calls(caller="13800000004")
    assert c4.ended_at is None  # recorded by the centre that took over

    # the queue runs on the new centre: agent2 is free, so the waiting caller is put through
    await b.agent_state("agent2", "available")
    await wait_until(lambda: _commanded(worker, "c2"), within=10)
    op, args = next(x for x in worker.commands if x[1].get("call") == "c2")
    assert (op, args["agent"]) == ("connect", "agent2")
    await worker.notify("ended", call="c1", path="lang:cmn>menu:2>queue>agent:agent1")

    async def ended() -> Any:
        found = await b.list_calls(caller="13800000001")
        return found if found[0].ended_at else None

    (c1,) = await wait_until(ended, within=10)
    assert (c1.outcome, c1.agent, c1.recording) == ("answered", "agent1", "/r/c1.wav")
    assert b.acd.agents["agent1"].state is AgentState.WRAPUP
    await worker.detach()


async def test_a_centre_that_lost_its_lease_steps_down_and_lets_its_workers_go(
    site: Site,
) -> None:
    a, _ = await site.centre("a", mono=1000.0)
    await wait_until(lambda: active(a), within=10)
    await a.agent_login("agent1", "sip:agent1@127.0.0.1:5090")
    worker = Worker()
    await worker.attach(a.port, [])
    await asyncio.wait_for(a.worker_joined.wait(), 10)
    await worker.notify("offered", call="c1", caller="13800000001", dialled="12345", worker=0)
    site.store.holder = "someone else"  # a's lease ran out while it hung; another took it
    await wait_until(lambda: _inactive(a), within=10)
    assert worker.link is not None
    await asyncio.wait_for(worker.link.closed.wait(), 10)  # the worker goes to look elsewhere
    assert a.acd.agents == {} and a.calls == {}
    (c1,) = await a.list_calls(caller="13800000001")
    assert c1.ended_at is None  # not ended by the centre that stepped down
    await worker.detach()


async def _inactive(center: CallCenter) -> bool:
    return not center.active


def _commanded(worker: Worker, call: str) -> Any:
    async def check() -> bool:
        return any(args.get("call") == call for _, args in worker.commands)

    return check()


def test_standby_centres_need_a_link_token_and_redis(tmp_path: Path) -> None:
    from hotline.app import make_app
    from hotline.config import ConfigError

    url = f"sqlite:///{tmp_path / 'x.db'}"
    centres = '["127.0.0.1:5170", "127.0.0.1:5171"]'
    with pytest.raises(ConfigError, match="link_token"):
        make_settings(url, HOTLINE__TELEPHONY__CENTRES=centres)
    settings = make_settings(
        url,
        HOTLINE__TELEPHONY__ENABLED="true",
        HOTLINE__TELEPHONY__CENTRES=centres,
        HOTLINE__TELEPHONY__LINK_TOKEN=f'"{TOKEN}"',
    )
    db = open_database(settings)
    try:
        with pytest.raises(ValueError, match=r"\[redis\] url"):
            make_app(settings, db, roles=["sip"])
    finally:
        db.close()


async def test_workers_of_two_hosts_link_to_one_centre_and_to_its_standby(site: Site) -> None:
    """Two `hotline telephony workers` hosts, numbered apart by first_worker (0 …, 100 …):
    both link to the active centre, and after a crash both relink to the standby with their
    calls, neither taking the other's place."""
    a, _ = await site.centre("a", mono=1000.0)
    await wait_until(lambda: active(a), within=10)
    b, _ = await site.centre("b", mono=5000.0)
    here, there = Worker(index=0), Worker(index=100)
    await here.attach(a.port, [])
    await there.attach(a.port, [])
    await here.notify("offered", call="h1", caller="13800000001", dialled="12345", worker=0)
    await there.notify("offered", call="t1", caller="13800000002", dialled="12345", worker=100)
    assert (await here.request("enqueue", call="h1", kind="consult"))["queued"]
    assert (await there.request("enqueue", call="t1", kind="consult"))["queued"]

    async def both_listed(c: CallCenter) -> bool:
        return [w["index"] for w in c.snapshot()["workers"]] == [0, 100]

    await wait_until(lambda: both_listed(a), within=10)
    await crash(a)
    await here.detach()
    await there.detach()
    site.store.holder = None  # the dead centre's lease ran out
    await wait_until(lambda: active(b), within=10)
    queued = {"stage": "queue", "kind": "consult"}
    await here.attach(b.port, [{"call": "h1", "caller": "13800000001", **queued}])
    await there.attach(b.port, [{"call": "t1", "caller": "13800000002", **queued}])
    await wait_until(lambda: both_listed(b), within=10)
    assert set(b.acd.waiting) == {"h1", "t1"}  # both hosts' callers still wait
    assert {b.calls["h1"].record.worker, b.calls["t1"].record.worker} == {0, 100}
    await here.detach()
    await there.detach()
