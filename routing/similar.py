"""诉求汇总 at intake: near-duplicates of each new order (the same caller, or the same content
at the same place within a window) become merge candidates; with auto_group, a same-content
request of another caller joins the 多人同诉 group of the order it repeats.

Runs from the durable work queue (topic "similar", one job per created order), after intake
has committed: intake never waits for it, and nothing is missed across a restart or a search
outage (the job is retried)."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

from kb.analysis import Analyzer
from kb.config import SimilarSettings
from kb.search import ORDERS, Filter, Search, SearchUnavailable
from tickets import search_store
from tickets.db import Database, is_outage
from tickets.errors import DatabaseUnavailable
from tickets.groups import GroupService
from tickets.model import SYSTEM, Status, Ticket
from tickets.outbox import Job, JobQueue, WorkQueue, consume
from tickets.workflow import FINAL

log = logging.getLogger(__name__)
TOPIC = "similar"
RECENT_SCAN = 200  # the newest orders compared directly: the index may lag a new one
GRAMS_KEPT = 4096  # orders whose bigrams are kept: each is compared with the orders after it


def bigrams(analyzer: Analyzer, text: str) -> frozenset[str]:
    return frozenset(analyzer.document(text).grams)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class SimilarRequests:
    def __init__(
        self,
        db: Database,
        search: Search,
        groups: GroupService,
        settings: SimilarSettings,
        region_of: Callable[[Ticket], str | None],
    ) -> None:
        self.db = db
        self.search = search
        self.groups = groups
        self.s = settings
        self.region_of = region_of
        self.queue: JobQueue = WorkQueue(db, TOPIC)
        # ticket id -> (its text, its bigrams): under a burst each new order is compared with
        # the RECENT_SCAN before it, so without this every order was segmented ~200 times
        self._grams: OrderedDict[int, tuple[str, frozenset[str]]] = OrderedDict()

    def text(self, t: Ticket) -> str:
        return "\n".join(x for x in (t.title, t.content) if x)

    def same_place(self, a: Ticket, b: Ticket) -> bool:
        if not self.s.same_place:
            return True
        ra, rb = self.region_of(a), self.region_of(b)
        if ra and rb:
            return ra == rb
        return True  # a place that cannot be told does not rule a duplicate out

    async def check(self, ticket_id: int) -> list[tuple[int, str, float]]:
        """Find, record and (auto_group) act on the near-duplicates of one order."""
        found = await self.db.read(lambda c: search_store.get_tickets(c, [ticket_id]))
        if not found:
            return []
        t = found[0]
        since = t.created_at - timedelta(hours=self.s.window_hours)
        out: dict[int, tuple[str, float]] = {}
        if t.caller.phone:
            same = await self.db.read(
                lambda c: search_store.recent_by_phone(c, t.caller.phone or "", since, t.id)
            )
            for o in same:
                if o.status not in FINAL and o.created_at <= t.created_at:
                    out[o.id] = ("same_caller", 1.0)
        (mine,) = await self.grams([t])
        hits = await self.search.search(
            ORDERS,
            self.text(t),
            [Filter("created_at", gte=since, lte=t.created_at)],
            limit=self.s.candidates,
            exclude=[t.id],
            with_total=False,
        )
        recent = await self.db.read(
            lambda c: search_store.tickets_between(
                c, max(since, t.created_at - timedelta(minutes=10)), t.created_at, RECENT_SCAN
            )
        )
        ids = [h.id for h in hits.hits if h.id not in out]
        others = await self.db.read(lambda c: search_store.get_tickets(c, ids))
        seen = {t.id, *out}
        pool = [o for o in [*others, *recent] if o.id not in seen and o.created_at <= t.created_at]
        pool = list({o.id: o for o in pool}.values())
        scores = [jaccard(mine, theirs) for theirs in await self.grams(pool)]
        for o, score in zip(pool, scores, strict=True):
            if score >= self.s.threshold and self.same_place(t, o):
                out[o.id] = ("same_content", score)
        ranked = sorted(((i, r, s) for i, (r, s) in out.items()), key=lambda x: -x[2])
        if ranked:
            await self.groups.record_candidates(t.id, ranked)
        if self.s.auto_group:
            await self._auto_group(t, ranked)
        return ranked

    async def grams(self, orders: list[Ticket]) -> list[frozenset[str]]:
        """Each order's bigrams: from the cache while its text is the same, else segmented
        (off the event loop) and kept."""
        texts = [self.text(o) for o in orders]
        cached = [self._grams.get(o.id, ("", frozenset[str]())) for o in orders]
        missing = [i for i, (text, c) in enumerate(zip(texts, cached, strict=True)) if c[0] != text]
        if missing:
            analyzer = self.search.analyzer
            made = await self.search.run(lambda: [bigrams(analyzer, texts[i]) for i in missing])
            for i, grams in zip(missing, made, strict=True):
                cached[i] = (texts[i], grams)
        for o, c in zip(orders, cached, strict=True):
            self._grams[o.id] = c
            self._grams.move_to_end(o.id)
        while len(self._grams) > GRAMS_KEPT:
            self._grams.popitem(last=False)
        return [grams for _, grams in cached]

    async def _auto_group(self, t: Ticket, ranked: list[tuple[int, str, float]]) -> None:
        other_caller = [(i, s) for i, r, s in ranked if r == "same_content"]
        if not other_caller or t.status is Status.MERGED:
            return
        best_id, score = other_caller[0]
        best = (await self.db.read(lambda c: search_store.get_tickets(c, [best_id])))[0]
        if best.caller.phone and best.caller.phone == t.caller.phone:
            return  # the same caller again: a merge candidate, not 多人同诉
        try:
            await self.groups.join(SYSTEM, t.id, best.number, "same_content", score)
        except Exception as exc:  # already grouped meanwhile: the candidate stays flagged
            log.info("auto-group of %s skipped: %s", t.number, getattr(exc, "message", exc))

    async def handle(self, jobs: list[Job]) -> None:
        if not self.s.enabled:
            return  # switched off: the jobs are completed unread, so none piles up
        for job in jobs:
            if job.ticket_id is not None:
                await self.check(job.ticket_id)

    async def run(self, wake: asyncio.Event, idle_s: float = 1.0) -> None:
        await consume(
            self.queue, self.handle, batch=50, idle_s=idle_s, wake=wake, on_error=self._failed
        )

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, SearchUnavailable):
            return  # retried when search is back
        if isinstance(exc, DatabaseUnavailable) or is_outage(exc):
            return  # the store's outage: logged once by the database, retried after it
        log.error("near-duplicate check failed (retried later)", exc_info=exc)
