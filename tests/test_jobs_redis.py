"""Background work through Redis streams (hotline/jobs_redis.py), with a real Redis: a
consumer that dies hands its entries over, an entry whose work is already settled never runs,
Redis killed mid-load loses nothing and runs nothing twice, and without Redis the consumers
read the table. The cases shared with the table alone are in tests/test_outbox.py."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from hotline.jobs_redis import StreamJobs, StreamQueue, stream_key
from tests.ports import free_port
from tests.redisserver import RedisServer
from tests.waiting import wait_until
from tickets.db import Database
from tickets.outbox import Job, WorkQueue, consume, enqueue


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Any]:
    client = aioredis.from_url(redis_server.url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


async def add_jobs(db: Database, n: int, topic: str = "t") -> None:
    await db.write(lambda c: [enqueue(c, topic, payload={"n": i}) for i in range(n)])


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel and see them end: a loop that swallowed its cancel would hang the run here."""
    for t in tasks:
        t.cancel()
    _, running = await asyncio.wait(tasks, timeout=30)
    assert not running, f"still running after their cancel: {running}"


async def test_streams_a_dead_consumers_entries_are_taken_over(
    database: Database, redis: Any
) -> None:
    """Consumer A reads a batch and dies without settling it; B takes the entries over once
    they have been idle for the takeover time, still under the claim A was given (no new
    claim in the table), and completes them."""
    streams = StreamJobs(redis, prefix(), block_s=0.05)
    table = WorkQueue(database, "t", lease=timedelta(seconds=600))
    a = streams(table)
    b = StreamQueue(table, redis, streams.prefix, block_s=0.05, takeover_s=0.3)
    await add_jobs(database, 5)
    assert await streams.relay() == (5, False)
    dead = await a.claim(10)
    assert sorted(j.payload["n"] for j in dead) == [0, 1, 2, 3, 4]
    got: list[Job] = []

    async def taken() -> bool:
        got.extend(await b.claim(10))
        return len(got) == 5

    await wait_until(taken, within=60)
    assert b.taken_over == 5
    assert {(j.id, j.lease, j.attempts) for j in got} == {(j.id, j.lease, 1) for j in dead}
    await b.complete(got)
    assert (await table.stats()).depth == 0
    assert await redis.xlen(stream_key(streams.prefix, "t")) == 0


async def test_streams_an_entry_whose_work_is_settled_never_runs(
    database: Database, redis: Any
) -> None:
    """The table completed the jobs but the acknowledgement never reached Redis (it was lost
    with a restart): whoever takes the entries over drops them instead of running them."""
    streams = StreamJobs(redis, prefix(), block_s=0.05)
    table = WorkQueue(database, "t", lease=timedelta(seconds=600))
    a = streams(table)
    b = StreamQueue(table, redis, streams.prefix, block_s=0.05, takeover_s=0.3)
    await add_jobs(database, 3)
    await streams.relay()
    jobs = await a.claim(10)
    await table.complete(jobs)  # settled in the table, not acknowledged on the stream
    assert (await table.stats()).depth == 0

    async def dropped() -> bool:
        assert await b.claim(10) == []  # never handed out
        return b.dropped == 3

    await wait_until(dropped, within=60)
    assert await redis.xlen(stream_key(streams.prefix, "t")) == 0
    assert await redis.xpending(stream_key(streams.prefix, "t"), "workers") == {
        "pending": 0,
        "min": None,
        "max": None,
        "consumers": [],
    }


async def test_streams_an_entry_relayed_again_after_its_lease_runs_out_runs_once(
    database: Database, redis: Any
) -> None:
    """Nobody read an entry before its claim's lease ran out (the stream was lost, or every
    consumer was busy): the relay claims the row again and sends it anew, and the old entry,
    read later, is dropped. The job runs once, under the new claim."""
    streams = StreamJobs(redis, prefix(), block_s=0.05)
    table = WorkQueue(database, "t", lease=timedelta(seconds=1))
    q = streams(table)
    await add_jobs(database, 1)
    await streams.relay()
    await asyncio.sleep(1.2)  # the claim's lease runs out unread

    async def relayed_again() -> bool:
        return (await streams.relay())[0] == 1

    await wait_until(relayed_again, within=60)
    table.lease = timedelta(seconds=600)  # from now on: no further expiry in this test
    jobs = await q.claim(10)
    assert [j.attempts for j in jobs] == [2] and q.dropped == 1
    await q.complete(jobs)
    assert (await table.stats()).depth == 0


@pytest.mark.parametrize("data", ["kept", "lost"])
async def test_streams_redis_killed_mid_load_loses_nothing_and_runs_nothing_twice(
    database: Database, data: str
) -> None:
    """Three consumers and the relay on a Redis that is killed with -9 in the middle of the
    work and started again, from its append-only file ("kept": entries whose
    acknowledgement was lost come back, pending) or with its data gone ("lost": the streams,
    the group and the pending entries). Meanwhile the consumers read the table; afterwards
    the streams carry on. Every job is done exactly once."""
    n = 600
    pre = prefix()
    server = RedisServer().start()
    clients = [aioredis.from_url(server.url, socket_timeout=5, socket_connect_timeout=1)]
    clients += [aioredis.from_url(server.url, socket_timeout=5, socket_connect_timeout=1)]
    seen: list[int] = []
    half = asyncio.Event()

    async def handle(jobs: list[Job]) -> None:
        seen.extend(j.payload["n"] for j in jobs)
        if len(seen) >= n // 3:
            half.set()
        await asyncio.sleep(0.01)

    # two "processes": each its own client, relay (one holds the lease) and consumers
    procs = [StreamJobs(c, pre, block_s=0.05, relay_lease_s=1) for c in clients]
    table = WorkQueue(database, "t", lease=timedelta(seconds=5))
    queues = [p(table) for p in procs] + [procs[0](table)]
    await add_jobs(database, n)
    tasks = [asyncio.create_task(p.run(idle_s=0.05)) for p in procs]
    tasks += [asyncio.create_task(consume(q, handle, batch=10, idle_s=0.05)) for q in queues]
    try:
        await asyncio.wait_for(half.wait(), 120)
        server.kill()
        if data == "lost":
            shutil.rmtree(server.dir / "appendonlydir")
        await asyncio.sleep(1.0)  # work goes on from the table meanwhile
        server.start()

        async def done() -> bool:
            return len(seen) >= n and (await table.stats()).depth == 0

        await wait_until(done, within=120)
    finally:
        await stop(tasks)
        for c in clients:
            await c.aclose()
        server.close()
    assert sorted(seen) == list(range(n))
    assert sum(p.relayed for p in procs) > n // 3  # the streams carried the work, before and after


async def test_streams_without_redis_the_consumers_read_the_table(database: Database) -> None:
    """Redis unreachable from the start: the work is done all the same, from the table."""
    client = aioredis.from_url(
        f"redis://127.0.0.1:{free_port(udp=False)}/0", socket_timeout=1, socket_connect_timeout=1
    )
    streams = StreamJobs(client, prefix(), block_s=0.05)
    q = streams(WorkQueue(database, "t"))
    await add_jobs(database, 20)
    seen: list[int] = []

    async def handle(jobs: list[Job]) -> None:
        seen.extend(j.payload["n"] for j in jobs)

    tasks = [
        asyncio.create_task(streams.run(idle_s=0.05)),
        asyncio.create_task(consume(q, handle, batch=7, idle_s=0.05)),
    ]

    async def done() -> bool:
        return len(seen) >= 20 and (await q.stats()).depth == 0

    try:
        await wait_until(done, within=60)
    finally:
        await stop(tasks)
        await client.aclose()
    assert sorted(seen) == list(range(20))
    assert q.outage.down and streams.relayed == 0
