"""The durable work queue: written with the order change, claimed under a lease, retried with
back-off, safe with several consumers (SQLite and a real PostgreSQL). The consumer-level cases
run twice: on the table itself, and delivered through Redis streams (a real Redis;
hotline/jobs_redis.py, whose own faults are in tests/test_jobs_redis.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.jobs_redis import StreamJobs
from tests.waiting import wait_until
from tickets import outbox
from tickets.db import Database
from tickets.model import Actor, Caller, Channel, NewTicket, Role, TicketEvent
from tickets.outbox import Backoff, Job, JobQueue, WorkQueue, consume, enqueue
from tickets.service import TicketService
from tickets.tables import work_queue


class NullPublisher:
    async def publish(self, events: Sequence[TicketEvent]) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def service(settings: Settings, database: Database) -> TicketService:
    built = build_services(settings, database, InProcessBus()).tickets
    return TicketService(database, built.directory, built.deadlines, NullPublisher())


def rows(db: Database, topic: str | None = None) -> list[sa.Row[tuple[object, ...]]]:
    stmt = sa.select(work_queue).order_by(work_queue.c.id)
    if topic:
        stmt = stmt.where(work_queue.c.topic == topic)
    return list(db.run_read(lambda c: c.execute(stmt).all()))


class Delivery:
    """How consumers get the table's jobs: from the table (`table`), or through Redis streams
    with the relay running (`stream`). `stop()` ends the relay, before a test reads the rows."""

    def __init__(self, streams: StreamJobs | None) -> None:
        self.streams = streams
        self.relay: asyncio.Task[None] | None = None
        if streams is not None:
            self.relay = asyncio.create_task(streams.run(idle_s=0.05))

    def __call__(self, table: WorkQueue) -> JobQueue:
        return self.streams(table) if self.streams is not None else table

    async def stop(self) -> None:
        if self.relay is not None:
            self.relay.cancel()
            await asyncio.gather(self.relay, return_exceptions=True)


@pytest.fixture(params=["table", "stream"])
async def delivery(request: pytest.FixtureRequest) -> AsyncIterator[Delivery]:
    if request.param == "table":
        yield Delivery(None)
        return
    client = aioredis.from_url(request.getfixturevalue("redis_server").url)
    d = Delivery(StreamJobs(client, f"t{uuid.uuid4().hex[:8]}", block_s=0.05))
    try:
        yield d
    finally:
        await d.stop()
        await client.aclose()


DISPATCHER = Actor(Role.DISPATCHER, user_id=None, name="派单员")
NEW = NewTicket(Channel.WEB, "小区路灯不亮已经一周", Caller(phone="13812345678"))


async def test_outbox_order_intake_writes_jobs_in_its_transaction(
    service: TicketService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two followers of order changes: one of every event, one of creations only
    monkeypatch.setattr(
        "tickets.outbox.EVENT_TOPICS", {"search": None, "similar": frozenset({"create"})}
    )
    ticket = await service.submit(NEW)
    got = {(r.topic, r.ticket_id, r.payload["action"]) for r in rows(database)}
    assert got == {("search", ticket.id, "create"), ("similar", ticket.id, "create")}
    await service.edit(DISPATCHER, ticket.id, ticket.version, {"summary": "路灯不亮"})
    assert [r.payload["action"] for r in rows(database, "search")] == ["create", "edit"]
    assert len(rows(database, "similar")) == 1  # only creations are checked for duplicates


async def test_outbox_rolled_back_change_leaves_no_job(database: Database) -> None:
    def tx(conn: Connection) -> None:
        enqueue(conn, "sms", payload={"to": "13812345678"})
        raise RuntimeError("the change fails after the enqueue")

    with pytest.raises(RuntimeError):
        await database.write(tx)
    assert rows(database, "sms") == []


async def test_outbox_claim_lease_complete_and_expiry(database: Database) -> None:
    clock = Clock()
    q = WorkQueue(database, "sms", lease=timedelta(seconds=30), clock=clock)
    await database.write(
        lambda c: [enqueue(c, "sms", payload={"n": i}, now=clock.now) for i in range(3)]
    )
    first = await q.claim(2)
    assert [j.payload["n"] for j in first] == [0, 1]
    assert all(j.attempts == 1 for j in first)
    second = await q.claim(10)  # the claimed ones are not due
    assert [j.payload["n"] for j in second] == [2]
    await q.complete(second)
    assert await q.claim(10) == []
    clock.now += timedelta(seconds=31)  # the first consumer died: its lease ran out
    again = await q.claim(10)
    assert [(j.payload["n"], j.attempts) for j in again] == [(0, 2), (1, 2)]
    await q.complete(first)  # the dead consumer's late complete must not remove them
    assert (await q.stats()).depth == 2
    await q.complete(again)
    assert (await q.stats()).depth == 0


async def test_outbox_failures_back_off_exponentially_without_limit(database: Database) -> None:
    clock = Clock()
    q = WorkQueue(database, "sms", backoff=Backoff(first_s=2, max_s=60), clock=clock)
    await database.write(lambda c: enqueue(c, "sms", payload={}, now=clock.now))
    waits = []
    for _ in range(10):
        jobs = await q.claim()
        assert len(jobs) == 1
        await q.fail(jobs, "gateway down")
        assert await q.claim() == []
        (row,) = rows(database, "sms")
        waits.append((row.next_at - clock.now).total_seconds())
        assert row.last_error == "gateway down" and row.lease is None
        clock.now = row.next_at
    assert 1.6 <= waits[0] <= 2.4 and 3.2 <= waits[1] <= 4.8
    assert all(48 <= w <= 72 for w in waits[6:])  # capped, never given up
    assert (await q.stats()).max_attempts == 10


async def test_outbox_retry_now_makes_waiting_jobs_due(database: Database) -> None:
    clock = Clock()
    q = WorkQueue(database, "search", clock=clock)
    await database.write(lambda c: enqueue(c, "search", payload={}, now=clock.now))
    await q.fail(await q.claim(), "down")
    assert await q.claim() == []
    assert await q.retry_now() == 1
    assert len(await q.claim()) == 1


async def test_outbox_topics_are_separate(database: Database) -> None:
    await database.write(lambda c: enqueue(c, "a", payload={}))
    assert await WorkQueue(database, "b").claim() == []
    assert len(await WorkQueue(database, "a").claim()) == 1


async def test_outbox_concurrent_consumers_never_share_a_job(
    database: Database, delivery: Delivery
) -> None:
    """Four consumers on one topic: every job done exactly once (on PostgreSQL the claims run
    in parallel writer threads and skip each other's locked rows; on streams each entry goes
    to one consumer of the group)."""
    n = 400
    await database.write(lambda c: [enqueue(c, "t", payload={"n": i}) for i in range(n)])
    seen: list[int] = []

    async def handle(jobs: list[Job]) -> None:
        seen.extend(j.payload["n"] for j in jobs)
        await asyncio.sleep(0)

    queues = [delivery(WorkQueue(database, "t")) for _ in range(4)]
    tasks = [asyncio.create_task(consume(q, handle, batch=7, idle_s=0.05)) for q in queues]

    async def done() -> bool:
        return len(seen) >= n and (await queues[0].stats()).depth == 0

    try:
        await wait_until(done)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sorted(seen) == list(range(n))
    if delivery.streams is not None:  # delivered by the streams, not read from the table
        assert delivery.streams.relayed == n


async def test_outbox_consume_fails_the_batch_when_the_handler_raises(
    database: Database, delivery: Delivery
) -> None:
    clock = Clock()
    q = delivery(WorkQueue(database, "t", backoff=Backoff(first_s=3600), clock=clock))
    await database.write(lambda c: enqueue(c, "t", payload={}, now=clock.now))
    errors: list[BaseException] = []

    async def handle(jobs: list[Job]) -> None:
        raise ConnectionError("backend away")

    task = asyncio.create_task(consume(q, handle, idle_s=0.05, on_error=errors.append))

    async def failed() -> bool:
        return bool(errors)

    try:
        await wait_until(failed)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await delivery.stop()
    (row,) = rows(database, "t")
    assert row.attempts == 1 and row.lease is None and row.next_at > clock.now
    assert "backend away" in row.last_error


def test_outbox_event_topics_name_known_actions() -> None:
    for topic, actions in outbox.EVENT_TOPICS.items():
        assert topic and len(topic) <= 32
        assert actions is None or all(isinstance(a, str) for a in actions)


async def test_outbox_consumer_stopped_mid_batch_gives_it_back(
    database: Database, delivery: Delivery
) -> None:
    """A stop while a batch is being handled: the jobs are due again at once (else they would
    wait for their lease to run out after the restart)."""
    await database.write(lambda c: enqueue(c, "t", payload={}))
    started = asyncio.Event()

    async def handle(jobs: list[Job]) -> None:
        started.set()
        await asyncio.Event().wait()  # still working when the stop comes

    task = asyncio.create_task(consume(delivery(WorkQueue(database, "t")), handle, idle_s=0.05))
    await asyncio.wait_for(started.wait(), 60)
    await delivery.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    (row,) = rows(database, "t")
    assert row.lease is None and row.next_at <= datetime.now(UTC)
    assert len(await WorkQueue(database, "t").claim()) == 1


async def test_outbox_consumer_stops_when_a_library_turns_its_cancel_into_an_error(
    database: Database,
) -> None:
    """redis-py, cancelled while it connects to a Redis that refuses, can raise
    ConnectionError instead of CancelledError; the loop, which rides out outages, must still
    stop (tickets.outage.raise_if_cancelling)."""
    claiming = asyncio.Event()

    class Converting(WorkQueue):
        async def claim(self, limit: int = 100) -> list[Job]:
            claiming.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise ConnectionError("Connect call failed") from None
            return []

    async def handle(jobs: list[Job]) -> None:
        return None

    task = asyncio.create_task(consume(Converting(database, "t"), handle, idle_s=0.05))
    await asyncio.wait_for(claiming.wait(), 60)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=30)
    assert done == {task} and task.cancelled()
