"""Background work delivered through Redis streams, to worker processes on several machines.

The store's work queue (tickets/outbox.py) stays the record of the work: a job is a row written
in its order's own transaction, and the row goes only once the work is committed. Redis carries
the delivery, one stream per topic read by one consumer group:

- **relay**: one process at a time (a lease) claims due rows from the table, as a consumer
  would, and appends them to the topic's stream (XADD), at most `window` entries ahead of the
  consumers. So one process polls the database, not every consumer of every topic.
- **consumers** read the stream in the group (XREADGROUP, blocking: a job starts as soon as it
  is relayed), do the work, complete or fail the row in the table, then acknowledge and delete
  the entry (XACK, XDEL).
- **takeover**: the entries of a consumer that died are taken by another after half the lease
  (XAUTOCLAIM).

Nothing depends on Redis keeping an entry. Every entry is checked against the table before it
runs (one read per batch): it runs only while its row is still claimed under the lease it was
relayed with. An entry Redis lost (a restart, the second before `appendfsync everysec`) leaves
its row claimed until the lease runs out; then the relay claims it again and sends it anew. An
entry whose row was completed, failed or claimed again meanwhile, e.g. because its
acknowledgement was lost with Redis, is dropped without running.

While Redis is unreachable each consumer claims from the table directly, as it does without
Redis (logged once per outage); the stream takes over again when Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError

from hotline.lease import RedisLease
from tickets.outage import OutageLog, raise_if_cancelling
from tickets.outbox import Job, QueueStats, WorkQueue

log = logging.getLogger(__name__)

GROUP = "workers"
WINDOW = 256  # entries of a topic relayed ahead of its consumers; the rest wait in the table
BLOCK_S = 1.0  # a consumer's read waits this long for an entry
RELAY_IDLE_S = 1.0  # the relay's poll of the table when nothing wakes it
RELAY_FULL_S = 0.01  # … and while a stream is full (its consumers are busy; XLEN only)
RELAY_LEASE_S = 10.0  # a relay that died hands over after this


class StreamQueue:
    """One topic's queue for `consume` (tickets.outbox.JobQueue): entries of the topic's stream,
    each the claim of one row of `table`."""

    waits = True  # claim blocks on the stream for up to BLOCK_S

    def __init__(
        self,
        table: WorkQueue,
        redis: Any,
        prefix: str = "hotline",
        *,
        block_s: float = BLOCK_S,
        takeover_s: float | None = None,
    ) -> None:
        """`takeover_s`: an entry read by a consumer that has not settled it after this long is
        taken over by another (default: half the table's lease, so that the claim still holds
        when it runs)."""
        self.table = table
        self.topic = table.topic
        self.redis = redis
        self.stream = stream_key(prefix, table.topic)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.block_ms = max(1, int(block_s * 1000))
        takeover = table.lease.total_seconds() / 2 if takeover_s is None else takeover_s
        self.takeover_ms = max(1, int(takeover * 1000))
        self._entries: dict[tuple[int, str], bytes] = {}  # a claimed job → its stream entry
        self._next_takeover = 0.0  # when to look for a dead consumer's entries (monotonic)
        self.outage = OutageLog(
            log,
            f"Redis 不可用，后台任务 {self.topic} 改为直接从数据库领取",
            f"Redis 已恢复，后台任务 {self.topic} 重新经 Redis 流分发",
        )
        self.dropped = 0  # entries not run: their row was no longer claimed under their lease
        self.taken_over = 0  # entries taken from a consumer that stopped reading

    async def claim(self, limit: int = 100) -> list[Job]:
        try:
            entries = await self._read(limit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the table directly, as without Redis
            raise_if_cancelling()
            self.outage.failed(exc)
            jobs = await self.table.claim(limit)
            if not jobs:
                await asyncio.sleep(self.block_ms / 1000)
            return jobs
        self.outage.ok()
        return await self._admit(entries)

    async def complete(self, jobs: Sequence[Job]) -> None:
        await self.table.complete(jobs)
        await self._ack(jobs)

    async def fail(self, jobs: Sequence[Job], error: str) -> None:
        await self.table.fail(jobs, error)
        await self._ack(jobs)

    async def release(self, jobs: Sequence[Job]) -> None:
        await self.table.release(jobs)
        await self._ack(jobs)

    async def retry_now(self) -> int:
        return await self.table.retry_now()

    async def stats(self) -> QueueStats:
        return await self.table.stats()

    # -- the stream ---------------------------------------------------------------------------
    async def _read(self, limit: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        try:
            return await self._read_group(limit)
        except ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            # the first read on this stream, or Redis restarted without its data
            await ensure_group(self.redis, self.stream)
            return await self._read_group(limit)

    async def _read_group(self, limit: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        entries: list[tuple[bytes, dict[bytes, bytes]]] = []
        now = time.monotonic()
        if now >= self._next_takeover:  # a quarter of the takeover time between looks
            _, taken, gone = await self.redis.xautoclaim(
                self.stream, GROUP, self.consumer, self.takeover_ms, "0-0", count=limit
            )
            if gone:  # deleted while pending (an XDEL whose XACK was lost)
                await self.redis.xack(self.stream, GROUP, *gone)
            self.taken_over += len(taken)
            entries += taken
            if len(taken) < limit:  # else there may be more: look again at the next claim
                self._next_takeover = now + self.takeover_ms / 4000
        if len(entries) < limit:
            got = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: ">"},
                count=limit - len(entries),
                block=None if entries else self.block_ms,
            )
            for _, fresh in got or []:
                entries += fresh
        return entries

    async def _admit(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Job]:
        """The jobs of those entries whose row is still claimed under their lease; the others
        are acknowledged and dropped."""
        jobs: dict[tuple[int, str], tuple[bytes, Job]] = {}
        stale: list[bytes] = []
        for entry_id, fields in entries:
            if not fields:  # deleted from the stream while pending
                stale.append(entry_id)
                continue
            job = decode(fields, self.topic)
            jobs[(job.id, job.lease)] = (entry_id, job)
        held = await self.table.held([job for _, job in jobs.values()])
        out: list[Job] = []
        for key, (entry_id, job) in jobs.items():
            if key in held:
                self._entries[key] = entry_id
                out.append(job)
            else:
                stale.append(entry_id)
        if stale:
            self.dropped += len(stale)
            await self._ack_ids(stale)
        return sorted(out, key=lambda j: (j.created_at, j.id))

    async def _ack(self, jobs: Sequence[Job]) -> None:
        ids = [e for j in jobs if (e := self._entries.pop((j.id, j.lease), None)) is not None]
        if ids:
            await self._ack_ids(ids)

    async def _ack_ids(self, ids: list[bytes]) -> None:
        """Acknowledge and delete; a failure is only logged: the table already says the work is
        settled, so an entry left pending is dropped when someone takes it over."""
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
            await pipe.execute()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.outage.failed(exc)


class StreamJobs:
    """Wraps the consumers' queues (`jobs(table)`) and relays their tables to their streams."""

    def __init__(
        self,
        redis: Any,
        prefix: str = "hotline",
        *,
        window: int = WINDOW,
        block_s: float = BLOCK_S,
        relay_lease_s: float = RELAY_LEASE_S,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window = window
        self.block_s = block_s
        self.tables: dict[str, WorkQueue] = {}
        self.lease = RedisLease(redis, "jobs-relay", relay_lease_s, prefix)
        self.outage = OutageLog(
            log, "Redis 不可用，后台任务暂停转入 Redis 流", "Redis 已恢复，后台任务转入 Redis 流"
        )
        self.relayed = 0

    def __call__(self, table: WorkQueue) -> StreamQueue:
        self.tables[table.topic] = table
        return StreamQueue(table, self.redis, self.prefix, block_s=self.block_s)

    async def relay(self) -> tuple[int, bool]:
        """One pass over every topic, if this process holds the relay's lease: (jobs moved from
        the tables to the streams, whether a stream was full)."""
        if not self.tables or not await self.lease.hold():
            return 0, False
        moved, full = 0, False
        for topic, table in list(self.tables.items()):
            n, was_full = await self._relay_topic(stream_key(self.prefix, topic), table)
            moved += n
            full = full or was_full
        self.relayed += moved
        return moved, full

    async def _relay_topic(self, stream: str, table: WorkQueue) -> tuple[int, bool]:
        # (the consumers make the group, reading from the start, when they find it missing)
        room = self.window - int(await self.redis.xlen(stream))
        if room <= 0:
            return 0, True
        jobs = await table.claim(room)
        if not jobs:
            return 0, False
        try:
            pipe = self.redis.pipeline(transaction=False)
            for job in jobs:
                pipe.xadd(stream, encode(job))
            await pipe.execute()
        except BaseException:  # due again at once (an entry that did land is dropped unrun)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await table.release(jobs)
            raise
        return len(jobs), len(jobs) == room

    async def run(self, wake: asyncio.Event | None = None, idle_s: float = RELAY_IDLE_S) -> None:
        """Relay forever: soon again while a stream is full, else when `wake` is set (an order
        event: new work) or after `idle_s`."""
        try:
            while True:
                raise_if_cancelling()
                if wake is not None:
                    wake.clear()
                full = False
                try:
                    _, full = await self.relay()
                    self.outage.ok()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis or the database away: consumers read the
                    self.outage.failed(exc)  # table themselves meanwhile
                wait = RELAY_FULL_S if full else idle_s
                if wake is None:
                    await asyncio.sleep(wait)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await wake.wait()
        finally:
            with contextlib.suppress(Exception):
                await self.lease.release()


def stream_key(prefix: str, topic: str) -> str:
    return f"{prefix}:jobs:{topic}"


async def ensure_group(redis: Any, stream: str) -> None:
    """The consumer group, reading from the stream's start (also entries added before it)."""
    try:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):
            raise


def encode(job: Job) -> dict[str, str]:
    return {
        "id": str(job.id),
        "lease": job.lease,
        "attempts": str(job.attempts),
        "ticket": "" if job.ticket_id is None else str(job.ticket_id),
        "payload": json.dumps(job.payload, ensure_ascii=False),
        "created": job.created_at.isoformat(),
    }


def decode(fields: dict[bytes, bytes], topic: str) -> Job:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return Job(
        id=int(f["id"]),
        topic=topic,
        ticket_id=int(f["ticket"]) if f["ticket"] else None,
        payload=json.loads(f["payload"]),
        attempts=int(f["attempts"]),
        created_at=datetime.fromisoformat(f["created"]),
        lease=f["lease"],
    )
