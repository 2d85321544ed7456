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
(the search index, similar-request detection) only need a line there. The triage
(routing/triage.py) and the SMS notices (telephony/notify.py) follow them this way: an order
acknowledged to a citizen always gets both, whatever fails or restarts in between.

`consume` takes any JobQueue: this table's WorkQueue, or (with Redis, several worker
processes) hotline/jobs_redis.py's StreamQueue, which delivers the same rows through a Redis
stream and keeps this table as the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from tickets import outbox_store
from tickets.db import Database
from tickets.outage import raise_if_cancelling

log = logging.getLogger(__name__)

TRIAGE = "triage"  # classify a new order, then dispatch it or hold it for review
NOTICE = "notice"  # the SMS notices an order event calls for (acknowledgement, dispatch, …)

# topic → the event actions that enqueue a job for it (None: every event of every order)
EVENT_TOPICS: dict[str, frozenset[str] | None] = {  # consumers add their topic here
    TRIAGE: frozenset({"create"}),
    NOTICE: frozenset(
        {"create", "dispatch", "deadline_warning", "deadline_overdue", "answer", "approve"}
    ),
    "search": None,  # the search index of work orders (routing/order_search.py)
    "similar": frozenset({"create"}),  # near-duplicates at intake (routing/similar.py)
}


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


class JobQueue(Protocol):
    """What `consume` needs of a topic's queue: the table itself (WorkQueue), or a delivery in
    front of it that several processes share (hotline/jobs_redis.py, Redis streams)."""

    topic: str
    waits: bool  # claim waits a while for work itself (a blocking read): no poll sleep after it

    async def claim(self, limit: int = 100) -> list[Job]: ...
    async def complete(self, jobs: Sequence[Job]) -> None: ...
    async def fail(self, jobs: Sequence[Job], error: str) -> None: ...
    async def release(self, jobs: Sequence[Job]) -> None: ...
    async def retry_now(self) -> int: ...
    async def stats(self) -> QueueStats: ...


class WorkQueue:
    """One topic's consumer side: claim, complete, fail."""

    waits = False

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

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give claimed jobs back, due now (a consumer that stops mid-batch)."""
        now = self.clock()
        leases = _by_lease(jobs)

        def tx(conn: Connection) -> None:
            for token, ids in leases.items():
                outbox_store.release_claimed(conn, ids, token, now, None)

        if leases:
            await self.db.write(tx)

    async def retry_now(self) -> int:
        """Make every waiting job due now (call when the backend the jobs need is back)."""
        now = self.clock()
        return await self.db.write(lambda c: outbox_store.make_due(c, self.topic, now))

    async def stats(self) -> QueueStats:
        depth, oldest, attempts = await self.db.read(lambda c: outbox_store.stats(c, self.topic))
        return QueueStats(depth, oldest, attempts)

    async def held(self, jobs: Sequence[Job]) -> set[tuple[int, str]]:
        """(id, lease) of those of `jobs` still claimed under their lease, which has not run
        out: a job outside it was completed, failed or given back, or is someone else's."""
        if not jobs:
            return set()
        now = self.clock()
        return await self.db.read(
            lambda c: outbox_store.held(c, [(j.id, j.lease) for j in jobs], now)
        )


def _by_lease(jobs: Sequence[Job]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for j in jobs:
        out.setdefault(j.lease, []).append(j.id)
    return out


RELEASE_TIMEOUT_S = 2.0  # what a stop waits to give an unfinished batch back

# a handler may return {job id: error} for the jobs it could not do (the rest are done)
Handler = Callable[[list[Job]], Awaitable[Mapping[int, str] | None]]


async def consume(
    queue: JobQueue,
    handle: Handler,
    *,
    batch: int = 200,
    idle_s: float = 1.0,
    wake: asyncio.Event | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_success: Callable[[], None] | None = None,
) -> None:
    """Run forever: claim a batch, hand it to `handle`, complete it; if `handle` raises, fail
    the batch (it comes back after the back-off); if it returns {job id: error}, fail those
    and complete the others. Sleeps `idle_s` when nothing is due, or until `wake` is set
    (e.g. by an event on the bus, so work starts at once); a queue whose claim `waits`
    itself is claimed from again at once.

    While the database is away nothing is lost: completing or failing a batch it refused is
    tried again before the next claim (else the jobs would only come back when their lease
    runs out), and the loop says once that it waits, and once that it goes on."""
    unsettled: list[tuple[list[Job], str | None]] = []  # (jobs, None: complete | error)
    waiting = False
    while True:
        raise_if_cancelling()
        if wake is not None:
            wake.clear()  # before the claim: a wake-up during the batch is not lost
        jobs: list[Job] = []
        claimed = False
        try:
            await _settle(queue, unsettled)
            jobs = await queue.claim(batch)
            claimed = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: try again later, quietly
            if not waiting:
                log.warning("%s queue: waiting for the database (%s)", queue.topic, _short(exc))
                waiting = True
        else:
            if waiting:
                log.info("%s queue: database reachable again, going on", queue.topic)
                waiting = False
        if jobs:
            error: BaseException | None = None
            failed: Mapping[int, str] = {}
            try:
                failed = await handle(jobs) or {}
            except asyncio.CancelledError:  # a stop: the batch is due again at once, not
                with contextlib.suppress(Exception):  # only when its lease runs out
                    async with asyncio.timeout(RELEASE_TIMEOUT_S):
                        await queue.release(jobs)
                raise
            except Exception as exc:
                error = exc
                unsettled.append((jobs, f"{type(exc).__name__}: {exc}"))
            else:
                ok = [j for j in jobs if j.id not in failed]
                if ok:
                    unsettled.append((ok, None))
                by_error: dict[str, list[Job]] = {}
                for j in jobs:
                    if j.id in failed:
                        by_error.setdefault(failed[j.id], []).append(j)
                unsettled += [(js, why) for why, js in by_error.items()]
            for j in jobs:
                # a job that keeps failing is worth a look (a bug, bad data): said at the
                # third attempt and every 50th, not at each retry
                if (error is not None or j.id in failed) and (
                    j.attempts == 3 or j.attempts % 50 == 0
                ):
                    why = failed.get(j.id) if error is None else _short(error)
                    log.warning(
                        "%s job %d (order %s) failed %d times: %s",
                        queue.topic,
                        j.id,
                        j.ticket_id,
                        j.attempts,
                        why,
                    )
            try:
                await _settle(queue, unsettled)
            except asyncio.CancelledError:
                raise
            except Exception:  # kept in `unsettled`: settled before the next claim
                pass
            if error is not None and on_error is not None:
                on_error(error)
            elif error is None and on_success is not None:
                on_success()
            if len(jobs) == batch and not unsettled:
                continue
        if claimed and queue.waits and not unsettled:
            continue  # its next claim waits for work itself
        if wake is None:
            await asyncio.sleep(idle_s)
            continue
        try:
            async with asyncio.timeout(idle_s):
                await wake.wait()
        except TimeoutError:
            pass


async def _settle(queue: JobQueue, unsettled: list[tuple[list[Job], str | None]]) -> None:
    """Complete or fail what was handled, oldest first; stops at the first refusal (raised),
    leaving the rest for the next try. A settle that comes after the lease ran out does
    nothing (the job runs again: handlers are idempotent)."""
    while unsettled:
        jobs, error = unsettled[0]
        if error is None:
            await queue.complete(jobs)
        else:
            await queue.fail(jobs, error)
        unsettled.pop(0)


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0][:200]}" if first else type(exc).__name__
