"""The standby's state store (telephony/centre_state.py): one contract over the in-memory store
and the Redis one (a real Redis), and the entries for agents, waiting callers and live calls
read back by a process whose monotonic clock is elsewhere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from hotline.lease import RedisLease
from telephony.acd import Agent, AgentState, Waiting
from telephony.centre_state import (
    CentreStore,
    MemoryCentreStore,
    RedisCentreStore,
    decode_agent,
    decode_waiting,
    encode_agent,
    encode_waiting,
)
from telephony.live import LiveCall, decode_call, encode_call
from telephony.model import CallRecord


@dataclass
class Backend:
    store: CentreStore
    take: Callable[[str], Awaitable[None]]  # this writer holds the lease now


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryCentreStore()

        async def take_memory(holder: str) -> None:
            memory.holder = holder

        yield Backend(memory, take_memory)
        return
    server = request.getfixturevalue("redis_server")
    client = aioredis.from_url(server.url)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    lease = RedisLease(client, "call-centre", ttl_s=30, prefix=prefix)

    async def take_redis(holder: str) -> None:
        await client.set(lease.key, holder, px=30_000)

    try:
        yield Backend(RedisCentreStore(client, lease.key, prefix), take_redis)
    finally:
        await client.aclose()


async def test_store_the_holders_writes_are_loaded_back(backend: Backend) -> None:
    await backend.take("a")
    assert await backend.store.load() == {"agents": {}, "waiting": {}, "calls": {}}
    ok = await backend.store.write(
        "a",
        {"agents": {"agent1": '{"x": 1}', "agent2": '{"x": 2}'}, "waiting": {"c1": "{}"}},
    )
    assert ok is True
    assert await backend.store.write("a", {"agents": {"agent2": None, "agent1": '{"x": 3}'}})
    assert await backend.store.load() == {
        "agents": {"agent1": '{"x": 3}'},
        "waiting": {"c1": "{}"},
        "calls": {},
    }


async def test_store_refuses_every_write_of_a_writer_that_lost_the_lease(
    backend: Backend,
) -> None:
    await backend.take("a")
    assert await backend.store.write("a", {"calls": {"c1": "{}"}})
    await backend.take("b")  # the standby took over
    refused = await backend.store.write("a", {"calls": {"c1": None, "c2": "{}"}})
    assert refused is False
    assert (await backend.store.load())["calls"] == {"c1": "{}"}  # nothing of it applied
    assert await backend.store.write("b", {"calls": {"c1": None}})
    assert (await backend.store.load())["calls"] == {}


async def test_store_an_empty_batch_is_a_no_op(backend: Backend) -> None:
    await backend.take("a")
    assert await backend.store.write("a", {}) is True


# -- entries ------------------------------------------------------------------------------------
# The writer's monotonic clock reads 1000 at wall 1_800_000_000; the reader's reads 50 then.
WRITER = 1_800_000_000.0 - 1000.0
READER = 1_800_000_000.0 - 50.0


def test_an_agent_reads_back_on_another_processes_clock() -> None:
    agent = Agent(
        "agent1",
        "sip:agent1@127.0.0.1:5090",
        AgentState.WRAPUP,
        since=990.0,
        idle_since=900.0,
        reason="",
        call=None,
        wrapup_until=1010.0,
        answered=7,
        role="supervisor",
        resume=(AgentState.PAUSED, "会议"),
    )
    back = decode_agent("agent1", encode_agent(agent, WRITER), READER)
    assert back.since == pytest.approx(40.0)  # 10 s ago, on the reader's clock
    assert back.idle_since == pytest.approx(-50.0)
    assert back.wrapup_until == pytest.approx(60.0)  # still 10 s to go
    assert (back.state, back.answered, back.role, back.resume) == (
        AgentState.WRAPUP,
        7,
        "supervisor",
        (AgentState.PAUSED, "会议"),
    )


def test_a_waiting_caller_keeps_its_deadline_and_tried_agents() -> None:
    waiting = Waiting("c1", "complaint", "13800000001", 995.0, 1055.0, "agent2", {"agent1"})
    back = decode_waiting("c1", encode_waiting(waiting, WRITER), READER)
    assert back.queued_at == pytest.approx(45.0)
    assert back.deadline == pytest.approx(105.0)  # 55 s left, as before
    assert (back.kind, back.caller, back.ringing, back.tried) == (
        "complaint",
        "13800000001",
        "agent2",
        {"agent1"},
    )


def test_a_live_call_reads_back_with_its_record_and_no_worker() -> None:
    at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    record = CallRecord(
        "c1", "in", "intake", "13800000001", "12345", 3, at, ivr_path="lang:cmn>menu:2>queue"
    )
    record.queued_at, record.answered_at, record.agent = at, at, "agent1"
    live = LiveCall(record, None, 980.0, agent="agent1", agents={"agent1"}, queued=990.0)
    live.view = {"held": False, "parties": [{"kind": "agent", "name": "agent1", "state": "up"}]}
    back = decode_call(encode_call(live, WRITER), READER)
    assert back.record == record
    assert back.started == pytest.approx(30.0) and back.queued == pytest.approx(40.0)
    assert (back.agent, back.agents, back.view) == ("agent1", {"agent1"}, live.view)
    assert back.link is None and back.stored.is_set()
