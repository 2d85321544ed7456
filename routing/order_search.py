"""Work orders in the search index: kept in step with the store through the durable work
queue, searched with the access rules of the store (a department finds only orders assigned to
it; a confidential caller's identity stays masked), and re-indexed from scratch on demand."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kb.search import ORDERS, Document, Filter, Search, SearchUnavailable
from routing.directory import Directory
from tickets import search_store
from tickets.access import access_ticket
from tickets.db import Database, is_outage
from tickets.errors import (
    DatabaseUnavailable,
    DepartmentForbidden,
    DomainError,
    RoleForbidden,
    Unavailable,
)
from tickets.groups import GroupService
from tickets.model import Actor, Channel, Kind, Role, Status, Ticket
from tickets.outbox import Backoff, Job, JobQueue, WorkQueue, consume

log = logging.getLogger(__name__)
TOPIC = "search"
DEFAULT_BACKOFF = Backoff(1.0, 30.0)


# a page of orders (and their 多人同诉 main orders) → their index documents
DocumentBuilder = Callable[[Sequence[Ticket], dict[int, str]], Awaitable[list[Document]]]


def region_path(directory: Directory, code: str | None) -> list[str]:
    """An order's region and the regions above it (a league finds its banners' orders)."""
    out: list[str] = []
    while code and code in directory.regions and len(out) < 5:
        out.append(code)
        code = directory.regions[code].parent
    return out


def order_document(
    search: Search, directory: Directory, t: Ticket, group: str | None = None
) -> Document:
    """An order as the index holds it: analysed text and the filters' fields."""
    category = ["/".join(t.category[: i + 1]) for i in range(len(t.category))]
    fields: dict[str, Any] = {
        "number": t.number,
        "status": t.status.value,
        "departments": sorted({a.department for a in t.assignments}),
        "region": region_path(directory, t.region),
        "kind": t.kind.value,
        "category": category,
        "channel": t.channel.value,
        "phone": t.caller.phone,
        "confidential": t.caller.confidential,
        "answered": t.answer is not None,
        "group": group,
        "created_at": t.created_at,
    }
    title = " ".join(x for x in (t.title, t.summary) if x)
    return search.document(t.id, title, [t.content, t.address], fields)


def order_documents(
    search: Search, directory: Directory, rows: Sequence[Ticket], mains: dict[int, str]
) -> list[Document]:
    return [order_document(search, directory, t, mains.get(t.id)) for t in rows]


class SearchDegraded(Unavailable):
    """The search backend is away: search answers 503, intake goes on."""

    code = "search_unavailable"


@dataclass(frozen=True, slots=True)
class OrderQuery:
    text: str = ""
    status: Status | None = None
    department: str | None = None
    region: str | None = None  # a league/city finds its banners'/counties' orders too
    kind: Kind | None = None
    category: str | None = None
    channel: Channel | None = None
    since: datetime | None = None
    until: datetime | None = None
    phone: str | None = None
    answered: bool | None = None
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True, slots=True)
class OrderHits:
    tickets: list[tuple[Ticket, float]]
    total: int
    total_capped: bool
    took_ms: float


@dataclass(frozen=True, slots=True)
class IndexerSettings:
    batch: int = 500
    idle_s: float = 1.0
    probe_s: float = 5.0
    backoff: Backoff = DEFAULT_BACKOFF


class OrderSearch:
    def __init__(
        self,
        db: Database,
        search: Search,
        directory: Directory,
        groups: GroupService,
        settings: IndexerSettings = IndexerSettings(),
    ) -> None:
        self.db = db
        self.search = search
        self.directory = directory
        self.groups = groups
        self.settings = settings
        self.queue: JobQueue = WorkQueue(db, TOPIC, backoff=settings.backoff)

    # -- documents ----------------------------------------------------------------------------
    def document(self, t: Ticket, group: str | None = None) -> Document:
        return order_document(self.search, self.directory, t, group)

    def _documents(self, rows: Sequence[Ticket], mains: dict[int, str]) -> list[Document]:
        return order_documents(self.search, self.directory, rows, mains)

    async def index(self, ticket_ids: Sequence[int]) -> int:
        ids = list(dict.fromkeys(ticket_ids))
        tickets = await self.db.read(lambda c: search_store.get_tickets(c, ids))
        mains = await self.groups.mains(ids)
        docs = await self.search.run(lambda: [self.document(t, mains.get(t.id)) for t in tickets])
        await self.search.upsert(ORDERS, docs)
        return len(tickets)

    async def handle(self, jobs: list[Job]) -> None:
        await self.index([j.ticket_id for j in jobs if j.ticket_id is not None])

    async def reindex(
        self, batch: int = 1000, build: DocumentBuilder | None = None, ahead: int = 1
    ) -> int:
        """Every order again, in id order (`hotline search reindex`); the queue keeps
        following changes meanwhile. `build` makes a page's documents (default: on the search
        executor); up to `ahead` more pages are analysed while one is written (with a pool of
        processes behind `build`, the CLI's `--workers`, as many as it has)."""

        async def here(rows: Sequence[Ticket], mains: dict[int, str]) -> list[Document]:
            return await self.search.run(functools.partial(self._documents, rows, mains))

        make = build or here
        ahead = max(1, ahead)
        pending: deque[asyncio.Future[list[Document]]] = deque()
        after = done = 0
        try:
            while True:
                page = functools.partial(search_store.tickets_after, after_id=after, limit=batch)
                rows = await self.db.read(page)
                if rows:
                    mains = await self.groups.mains([t.id for t in rows])
                    pending.append(asyncio.ensure_future(make(rows, mains)))
                    after = rows[-1].id
                while pending and (not rows or len(pending) > ahead):
                    docs = await pending.popleft()
                    await self.search.upsert(ORDERS, docs)
                    done += len(docs)
                if not rows:
                    return done
        finally:
            for f in pending:
                f.cancel()

    # -- the indexer --------------------------------------------------------------------------
    async def run(self, wake: asyncio.Event) -> None:
        """Follow the queue; while the backend is away, probe it and retry the waiting work the
        moment it answers (the back-off alone could leave it idle for a while)."""
        prober = asyncio.create_task(self.probe_while_down())
        try:
            await consume(
                self.queue,
                self.handle,
                batch=self.settings.batch,
                idle_s=self.settings.idle_s,
                wake=wake,
                on_error=self._failed,
            )
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, SearchUnavailable):
            return  # the facade marked itself degraded
        if isinstance(exc, DatabaseUnavailable) or is_outage(exc):
            return  # the store's outage: logged once by the database, retried after it
        log.exception("search indexing failed", exc_info=exc)

    async def probe_while_down(self, retry: bool = True) -> None:
        """While the backend is marked away, probe it; when it answers, reopen it and (the
        indexer's, `retry`) retry the waiting work at once. A web process that only queries
        runs this with retry=False, so its searches come back with the backend."""
        while True:
            await asyncio.sleep(self.settings.probe_s)
            if self.search.health.ok:
                continue
            if await self.search.probe():
                if not retry:
                    continue
                try:
                    await self.search.backend.open()  # indices may be missing after an outage
                    n = await self.queue.retry_now()
                    log.info("搜索后端已恢复：%d 个索引任务立即重试", n)
                except Exception:
                    log.exception("search recovery step failed")

    async def status(self) -> dict[str, Any]:
        stats = await self.queue.stats()
        return {
            **self.search.health.as_dict(),
            "pending": stats.depth,
            "oldest_pending": stats.oldest.isoformat() if stats.oldest else None,
        }

    # -- search -------------------------------------------------------------------------------
    def filters(self, actor: Actor, q: OrderQuery) -> list[Filter]:
        if actor.role is Role.DEPARTMENT:
            if not actor.department:
                raise DepartmentForbidden("账号未关联承办单位")
        elif actor.role is Role.CITIZEN:
            raise RoleForbidden("无权检索工单")
        out: list[Filter] = []

        def keyword(name: str, value: Any) -> None:
            if value is not None and value != "":
                out.append(Filter(name, (value.value if hasattr(value, "value") else value,)))

        keyword("status", q.status)
        keyword("departments", q.department)
        keyword("region", q.region)
        keyword("kind", q.kind)
        keyword("category", q.category)
        keyword("channel", q.channel)
        keyword("phone", q.phone)
        keyword("answered", q.answered)
        if q.since or q.until:
            out.append(Filter("created_at", gte=q.since, lte=q.until))
        if actor.role is Role.DEPARTMENT:
            out.append(Filter("departments", (actor.department,)))
            if q.phone:  # a department must not confirm guesses of a confidential number
                out.append(Filter("confidential", (False,)))
        return out

    async def matching_ids(self, actor: Actor, q: OrderQuery) -> tuple[list[int], bool]:
        """The ids of the (at most `q.limit`) orders that best match `q` among those the
        actor's scope allows, and whether more matched: a work list's word filter takes its
        candidates from here instead of scanning every order's text. The store still applies
        the list's other conditions and the access rules to them."""
        try:
            result = await self.search.search(ORDERS, q.text, self.filters(actor, q), limit=q.limit)
        except SearchUnavailable:
            raise SearchDegraded(
                "检索服务暂不可用，请稍后重试", **self.search.health.as_dict()
            ) from None
        return [h.id for h in result.hits], result.total_capped or result.total > q.limit

    async def find(self, actor: Actor, q: OrderQuery) -> OrderHits:
        filters = self.filters(actor, q)
        try:
            result = await self.search.search(
                ORDERS, q.text, filters, limit=q.limit, offset=q.offset
            )
        except SearchUnavailable:
            raise SearchDegraded(
                "检索服务暂不可用（工单受理不受影响），请稍后重试或按编号查询",
                **self.search.health.as_dict(),
            ) from None
        ids = [h.id for h in result.hits]
        loaded = {t.id: t for t in await self.db.read(lambda c: search_store.get_tickets(c, ids))}
        out = []
        for h in result.hits:
            t = loaded.get(h.id)
            if t is None:
                continue
            try:  # the store decides, not the index (an index a moment behind never leaks)
                out.append((access_ticket(actor, t), h.score))
            except DomainError:
                continue
        return OrderHits(out, result.total, result.total_capped, result.took_ms)
