"""Wire search: the analyser (the classifier's jieba pipeline + the gazetteer's place names),
the backend the config picks, and the services built on them; one cleanup_ctx runs the indexer,
near-duplicate detection and the knowledge-base passes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

from aiohttp import web

from agent_ui.context import SearchServices, Services
from classifier.text import Segmenter
from hotline.bus import EventBus
from hotline.config import Settings
from kb.analysis import Analyzer, PlaceNames
from kb.search import Document, Search, SearchBackend, SearchUnavailable
from kb.service import KnowledgeBase
from routing.directory import Directory, Level
from routing.gazetteer import Gazetteer
from routing.hotspots import Hotspots
from routing.order_search import IndexerSettings, OrderSearch, order_documents
from routing.similar import SimilarRequests
from routing.suggest import Suggester
from tickets.db import Database, is_outage
from tickets.errors import DatabaseUnavailable
from tickets.groups import GroupService
from tickets.model import Ticket
from tickets.outbox import Backoff

log = logging.getLogger(__name__)


class SearchWords:
    """kb's WordSegmenter: the classifier's jieba pipeline in search mode, loaded on first use
    and shared by the process (its dictionary takes ~1 s to load)."""

    def tokens(self, text: str) -> list[str]:
        return _segmenter().search_tokens(text)


@functools.cache
def _segmenter() -> Segmenter:
    return Segmenter()


def build_analyzer(gazetteer: Gazetteer | None) -> Analyzer:
    places = PlaceNames(gazetteer.canonical, gazetteer.place_names()) if gazetteer else None
    return Analyzer(SearchWords(), places)


def build_backend(settings: Settings, *, prefix: str | None = None) -> SearchBackend:
    s = settings.search
    if s.backend == "elasticsearch":
        from kb.search_es import ElasticSearch  # only this backend needs the client

        return ElasticSearch(
            s.url,
            prefix=prefix or s.index_prefix,
            shards=s.shards,
            replicas=s.replicas,
            timeout_s=s.timeout_s,
            refresh=s.refresh_writes,
            api_key=s.api_key or None,
        )
    from kb.fts_store import SqliteSearch

    return SqliteSearch(settings.resolve(s.path))


def build_search(settings: Settings, gazetteer: Gazetteer | None) -> Search:
    return Search(build_backend(settings), build_analyzer(gazetteer))


class ParallelDocuments:
    """Order documents analysed in `workers` processes (`hotline search reindex --workers`):
    the analysis is jieba in Python, ~1 ms an order of the TipDM length and ~80 % of a
    reindex in one process, so a process per core divides it. Each worker loads the routing
    tables, the gazetteer and jieba's dictionary once (spawned, not forked: the parent has
    threads and open connections)."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(settings, os.getpid()),
        )

    async def __call__(self, rows: Sequence[Ticket], mains: dict[int, str]) -> list[Document]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, _worker_documents, list(rows), mains)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


_WORKER: tuple[Search, Directory] | None = None


def _start_worker(settings: Settings, parent: int) -> None:
    """`parent`: the reindex's pid, passed in (a worker that starts after its parent died
    would otherwise take its new parent, the reaper, for it and wait forever)."""
    from hotline.app import load_routing, load_triage_parts, watch_parent

    global _WORKER
    watch_parent(parent, exit_code=1)  # the reindex was stopped (SIGTERM, SIGKILL)
    directory = load_routing(settings)
    gazetteer, _ = load_triage_parts(settings, directory)
    _WORKER = (build_search(settings, gazetteer), directory)


def _worker_documents(rows: list[Ticket], mains: dict[int, str]) -> list[Document]:
    assert _WORKER is not None, "started without _start_worker"
    search, directory = _WORKER
    return order_documents(search, directory, rows, mains)


def league_of(
    directory: Directory, gazetteer: Gazetteer, *, from_text: bool = True
) -> Callable[[Ticket], str | None]:
    """The league/city (盟市) of an order: from its region, else found in its address (and,
    with `from_text`, its text: right most of the time, but a street named after a place —
    昭乌达路 holds 乌达 — can mislead it)."""

    def region(t: Ticket) -> str | None:
        code = t.region
        if code is None and (t.address or from_text):
            match = gazetteer.detect(t.address, t.content if from_text else "")
            code = match.code if match else None
        r = directory.regions.get(code) if code else None
        if r is None or r.level is Level.REGION:
            return None
        return r.code if r.level is Level.CITY else r.parent

    return region


def build_search_services(
    settings: Settings,
    db: Database,
    bus: EventBus,
    services: Services,
    gazetteer: Gazetteer,
) -> SearchServices:
    search = build_search(settings, gazetteer)
    # one thread: analysis is Python (the GIL), so more threads would not be faster, only
    # take more of the event loop's share
    search.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-analysis")
    s = settings.search
    groups = GroupService(db, bus)
    orders = OrderSearch(
        db,
        search,
        services.directory,
        groups,
        IndexerSettings(s.batch, s.idle_s, s.probe_s, Backoff(s.retry_first_s, s.retry_max_s)),
    )
    kb = KnowledgeBase(
        db,
        search,
        services.directory.has_department,
        max_field_chars=settings.kb.max_field_chars,
    )
    region = league_of(services.directory, gazetteer)
    return SearchServices(
        orders=orders,
        kb=kb,
        groups=groups,
        suggest=Suggester(kb, orders, settings.kb.suggest_articles, settings.kb.suggest_orders),
        hotspots=Hotspots(
            db,
            search.analyzer,
            settings.hotspots,
            region,
            services.directory.region_name,
            executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotspots"),
        ),
        similar=SimilarRequests(
            db,
            search,
            groups,
            settings.similar,
            league_of(services.directory, gazetteer, from_text=False),
        ),
    )


def search_ctx(
    settings: Settings, svc: SearchServices, bus: EventBus, background: bool = True
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the backend (if it is away, start degraded: intake goes on, the index catches up),
    follow the work queue, detect near-duplicates, expire and index knowledge-base articles."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        backend = svc.orders.search.backend
        try:
            await backend.open()
        except Exception as exc:  # degraded from the start; the prober reopens it
            svc.orders.search.mark_down(exc)
        wakes = [asyncio.Event(), asyncio.Event()]
        events = bus.subscribe(maxsize=10_000)
        tasks = [asyncio.create_task(_forward(events, wakes))]
        if background:  # a process of the worker role keeps the index (web processes query it)
            tasks += [
                asyncio.create_task(svc.orders.run(wakes[0])),
                asyncio.create_task(_kb_passes(settings, svc.kb)),
                # also when switched off: it then completes the queue's jobs without reading them
                asyncio.create_task(svc.similar.run(wakes[1], settings.search.idle_s)),
            ]
        else:
            tasks.append(asyncio.create_task(svc.orders.probe_while_down(retry=False)))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        bus.unsubscribe(events)
        await backend.close()
        for executor in (svc.orders.search.executor, svc.hotspots.executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    return ctx


async def _forward(events: asyncio.Queue[Any], wakes: list[asyncio.Event]) -> None:
    """Any order event: the queue consumers look at once instead of at their next poll."""
    while True:
        await events.get()
        for w in wakes:
            w.set()


async def _kb_passes(settings: Settings, kb: KnowledgeBase) -> None:
    every = settings.search.probe_s
    expire_every = settings.kb.expire_every_s
    since_expire = expire_every
    while True:
        try:
            if since_expire >= expire_every:
                await kb.expire_due()
                since_expire = 0.0
            await kb.sync_index()
        except Exception as exc:  # next pass; the marks on the rows keep what is still to index
            if not (isinstance(exc, (DatabaseUnavailable, SearchUnavailable)) or is_outage(exc)):
                log.exception("knowledge-base pass failed")  # outages are logged where seen
        await asyncio.sleep(every)
        since_expire += every
