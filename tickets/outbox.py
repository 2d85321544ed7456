"""A durable work queue (outbox) for background work that follows order changes.

Work is written in the same transaction as the change that calls for it, so it is never lost
and never done for a change that rolled back; consumers claim it under a lease, so several
consumers (threads or processes) never do the same job at once, and a crashed consumer's jobs
come back when the lease runs out. A failed job is retried with exponential back-off, without
limit: background work survives any outage of what it talks to.

The API, four calls:

    enqueue(conn, "sms", ticket_id=7, payload={...})      # inside the caller's transaction
    jobs = await queue.claim(100)                          # WorkQueue(db, "sms")
    await queue.complete(jobs)                             # done: the rows go
    await queue.fail(jobs, "gateway 503")                  # due again after a back-off

Every ticket event also enqueues a job per topic listed in EVENT_TOPICS (the hook is
store.insert_event), with payload {"event_id", "action"}: consumers that follow order changes
(the search index, similar-request detection) only need a line there.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from tickets import outbox_store
from tickets.db import Database

log = logging.getLogger(__name__)

# topic → the event actions that enqueue a job for it (None: every event of every order)
EVENT_TOPICS: dict[str, frozenset[str] | None] = {}  # consumers add their topic here


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    topic: str
    ticket_id: int | None
    payload: dict[str, Any]
    attempts: int  # this claim included
    created_at: datetime
    lease: str


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int  # jobs not yet done (waiting or claimed)
    oldest: datetime | None  # when the oldest of them was written
    max_attempts: int


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n (1, 2, …): first_s · 2^(n-1), at most max_s, ±20 % jitter so
    consumers that failed together do not retry together."""

    first_s: float = 1.0
    max_s: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        base = min(self.first_s * 2 ** max(attempts - 1, 0), self.max_s)
        return timedelta(seconds=base * random.uniform(0.8, 1.2))


def enqueue(
    conn: Connection,
    topic: str,
    *,
    ticket_id: int | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Add a job in the caller's transaction; due at `at` (default: now)."""
    now = now or datetime.now(UTC)
    outbox_store.insert_jobs(conn, [_row(topic, ticket_id, payload or {}, at or now, now)])


def enqueue_for_event(
    conn: Connection, ticket_id: int, event_id: int, action: str, at: datetime
) -> None:
    """The hook in store.insert_event: a job per topic that follows this kind of event."""
    payload = {"event_id": event_id, "action": action}
    rows = [
        _row(topic, ticket_id, payload, at, at)
        for topic, actions in EVENT_TOPICS.items()
        if actions is None or action in actions
    ]
    outbox_store.insert_jobs(conn, rows)


def _row(
    topic: str, ticket_id: int | None, payload: dict[str, Any], at: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "topic": topic,
        "ticket_id": ticket_id,
        "payload": payload,
        "attempts": 0,
        "next_at": at,
        "created_at": now,
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WorkQueue:
    """One topic's consumer side: claim, complete, fail."""

    def __init__(
        self,
        db: Database,
        topic: str,
        *,
        lease: timedelta = timedelta(seconds=120),
        backoff: Backoff = Backoff(),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.db = db
        self.topic = topic
        self.lease = lease
        self.backoff = backoff
        self.clock = clock

    async def claim(self, limit: int = 100) -> list[Job]:
        """Up to `limit` due jobs, now ours until the lease runs out."""
        now = self.clock()
        token = uuid.uuid4().hex
        rows = await self.db.write(
            lambda c: outbox_store.claim(c, self.topic, now, now + self.lease, token, limit)
        )
        return [
            Job(r.id, r.topic, r.ticket_id, r.payload or {}, r.attempts, r.created_at, token)
            for r in rows
        ]

    async def complete(self, jobs: Sequence[Job]) -> None:
        leases = _by_lease(jobs)

        def tx(conn: Connection) -> None:
            for token, ids in leases.items():
                outbox_store.delete_claimed(conn, ids, token)

        if leases:
            await self.db.write(tx)

    async def fail(self, jobs: Sequence[Job], error: str) -> None:
        """Due again after the back-off of each job's attempt count."""
        now = self.clock()
        groups: dict[tuple[str, int], list[int]] = {}
        for j in jobs:
            groups.setdefault((j.lease, j.attempts), []).append(j.id)

        def tx(conn: Connection) -> None:
            for (token, attempts), ids in groups.items():
                at = now + self.backoff.delay(attempts)
                outbox_store.release_claimed(conn, ids, token, at, error)

        if groups:
            await self.db.write(tx)

    async def retry_now(self) -> int:
        """Make every waiting job due now (call when the backend the jobs need is back)."""
        now = self.clock()
        return await self.db.write(lambda c: outbox_store.make_due(c, self.topic, now))

    async def stats(self) -> QueueStats:
        depth, oldest, attempts = await self.db.read(lambda c: outbox_store.stats(c, self.topic))
        return QueueStats(depth, oldest, attempts)


def _by_lease(jobs: Sequence[Job]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for j in jobs:
        out.setdefault(j.lease, []).append(j.id)
    return out


Handler = Callable[[list[Job]], Awaitable[None]]


async def consume(
    queue: WorkQueue,
    handle: Handler,
    *,
    batch: int = 200,
    idle_s: float = 1.0,
    wake: asyncio.Event | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_success: Callable[[], None] | None = None,
) -> None:
    """Run forever: claim a batch, hand it to `handle`, complete it; if `handle` raises, fail
    the batch (it comes back after the back-off). Sleeps `idle_s` when nothing is due, or until
    `wake` is set (e.g. by an event on the bus, so work starts at once)."""
    while True:
        if wake is not None:
            wake.clear()  # before the claim: a wake-up during the batch is not lost
        try:
            jobs = await queue.claim(batch)
        except Exception:  # the database is away: try again later
            log.exception("%s queue: claim failed", queue.topic)
            jobs = []
        if jobs:
            try:
                await handle(jobs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await _quietly(queue.fail(jobs, f"{type(exc).__name__}: {exc}"))
                if on_error is not None:
                    on_error(exc)
            else:
                await _quietly(queue.complete(jobs))
                if on_success is not None:
                    on_success()
            if len(jobs) == batch:
                continue
        if wake is None:
            await asyncio.sleep(idle_s)
            continue
        try:
            async with asyncio.timeout(idle_s):
                await wake.wait()
        except TimeoutError:
            pass


async def _quietly(aw: Awaitable[Any]) -> None:
    try:
        await aw
    except asyncio.CancelledError:
        raise
    except Exception:  # a lost complete/fail only means the job runs again after its lease
        log.exception("work queue bookkeeping failed")
