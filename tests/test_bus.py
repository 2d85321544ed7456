"""The event bus port: one contract over the in-process bus and the Redis bus (real Redis),
plus what only Redis does: carry events between processes and survive Redis going away."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from hotline.bus import InProcessBus
from hotline.bus_redis import RedisBus, decode, encode
from telephony.model import CtiEvent
from tests.redisserver import RedisServer
from tickets.model import Role, Status, TicketEvent

EVENT = TicketEvent(
    id=7,
    ticket_id=3,
    at=datetime(2026, 12, 3, 8, 0, tzinfo=UTC),
    actor_role=Role.DISPATCHER,
    actor_id=2,
    actor_name="派单员 李强",
    action="dispatch",
    from_status=Status.NEW,
    to_status=Status.DISPATCHED,
    reason="请尽快办理",
    old={"departments": []},
    new={"lead": "150100-housing", "assists": []},
    assignment_id=None,
)
CALL = CtiEvent(
    "call.ringing",
    datetime(2026, 12, 3, 8, 1, tzinfo=UTC),
    call="c1",
    caller="13800000000",
    agent="agent",
    data={"waited_s": 3.5},
)


async def received(q: asyncio.Queue[Any], n: int = 1) -> list[Any]:
    return [await asyncio.wait_for(q.get(), 30) for _ in range(n)]


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield InProcessBus()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    b = RedisBus(server.url, prefix=f"t{id(request)}")
    await b.start()
    await b.wait_ready()
    try:
        yield b
    finally:
        await b.stop()


def test_events_survive_the_wire_form() -> None:
    assert decode(encode(EVENT)) == EVENT
    assert decode(encode(CALL)) == CALL


async def test_every_subscriber_of_a_topic_gets_each_event_once(bus: Any) -> None:
    a, b = bus.subscribe(topic="tickets"), bus.subscribe(topic="tickets")
    calls = bus.subscribe(topic="cti")
    await bus.publish([EVENT], topic="tickets")
    await bus.publish([CALL], topic="cti")
    assert await received(a) == [EVENT]
    assert await received(b) == [EVENT]
    assert await received(calls) == [CALL]
    await asyncio.sleep(0.2)
    assert a.empty() and b.empty() and calls.empty()


async def test_unsubscribed_queue_hears_nothing_more(bus: Any) -> None:
    q = bus.subscribe(topic="tickets")
    bus.unsubscribe(q)
    keep = bus.subscribe(topic="tickets")
    await bus.publish([EVENT], topic="tickets")
    assert await received(keep) == [EVENT]
    assert q.empty()


async def test_a_slow_subscriber_loses_its_oldest_not_the_publisher(bus: Any) -> None:
    q = bus.subscribe(maxsize=2, topic="tickets")
    events = [dataclasses.replace(EVENT, id=i) for i in range(5)]
    await bus.publish(events, topic="tickets")
    await asyncio.sleep(0.5)
    got = [q.get_nowait() for _ in range(q.qsize())]
    assert [e.id for e in got] == [3, 4]


# -- what only Redis does -----------------------------------------------------------------------
async def test_redis_bus_carries_events_between_processes(redis_server: RedisServer) -> None:
    web1, web2 = RedisBus(redis_server.url, "x"), RedisBus(redis_server.url, "x")
    await web1.start()
    await web2.start()
    try:
        await web1.wait_ready()
        await web2.wait_ready()
        here, there = web1.subscribe(topic="tickets"), web2.subscribe(topic="tickets")
        await web1.publish([EVENT])
        assert await received(there) == [EVENT]
        assert await received(here) == [EVENT]  # its own news comes back once
    finally:
        await web1.stop()
        await web2.stop()


async def test_redis_bus_outlives_a_redis_restart() -> None:
    with RedisServer() as server:
        bus = RedisBus(server.url, "y")
        await bus.start()
        try:
            await bus.wait_ready()
            q = bus.subscribe(topic="tickets")
            server.kill()
            await bus.publish([EVENT])  # dropped, logged, not raised
            assert bus.dropped >= 1
            await asyncio.to_thread(server.start)
            await bus.wait_ready(within_s=60)
            for _ in range(100):  # the subscription is back: publish until it is heard
                await bus.publish([EVENT])
                try:
                    assert await asyncio.wait_for(q.get(), 0.5) == EVENT
                    break
                except TimeoutError:
                    continue
            else:
                pytest.fail("no delivery after Redis came back")
        finally:
            await bus.stop()
