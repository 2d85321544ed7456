#!/usr/bin/env python3
"""Search at scale on both adapters: 100,000 articles and 1,000,000 work orders.

    .venv/bin/python bench/search.py                       # both adapters (starts its own ES node)
    .venv/bin/python bench/search.py --backends embedded --orders 200000
    .venv/bin/python bench/search.py --es-url http://127.0.0.1:9200

Documents are built from the TipDM corpus (~10,000 real messages and replies): each base text
is analysed once with the platform's analyser (jieba search tokens, bigrams, place names), and
the orders are composed at the token level (base text + a region's names + a few words of
another message; random status, departments, region, kind, channel, date and phone), so the
load measures the index, not jieba. Analysis speed is measured on its own.

Printed: indexing throughput (documents/s, bulk load), p50/p95 query latency through the
Search facade (query analysis included) for staff keyword searches of orders (30 % with a
department filter), knowledge-base searches of articles, and long 'similar request' queries
(a whole message as the query, as suggestions and near-duplicate checks send them); catch-up
time after an outage (order changes queued in the durable work queue while search was down,
drained by the real indexer from a SQLite store); and, with --retrieval, the kb eval figures
of both adapters and of the TF-IDF baseline. One JSON object at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TIPDM = REPO.parent / "shared" / "data" / "tipdm"

from hotline.config import load_settings  # noqa: E402
from kb.analysis import joined  # noqa: E402
from kb.search import ARTICLES, ORDERS, Document, Filter, Search  # noqa: E402

STATUSES = ["new", "dispatched", "accepted", "replied", "reviewed", "closed", "answered"]
KINDS = ["consult", "help", "complaint", "report", "suggestion"]
CHANNELS = ["phone", "web", "sms"]
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Base:
    text: str
    words: tuple[str, ...]
    grams: tuple[str, ...]


def corpus() -> list[tuple[str, str]]:
    out = []
    for name in (
        "messages_unlabeled.csv",
        "messages_with_votes.csv",
        "replies.csv",
        "messages_raw_sample.csv",
    ):
        with (TIPDM / name).open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                out.append((r.get("subject") or "", r.get("detail") or ""))
    return [(s, d) for s, d in out if (s + d).strip()]


def replies() -> list[str]:
    with (TIPDM / "replies.csv").open(encoding="utf-8", newline="") as fh:
        return [r["reply"] for r in csv.DictReader(fh) if r["reply"].strip()]


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s)) - 1))] if s else 0.0


class Generator:
    def __init__(self, search: Search, rng: random.Random) -> None:
        from hotline.app import load_routing

        settings = load_settings(REPO / "config.toml", environ={})
        self.directory = load_routing(settings)
        self.rng = rng
        self.search = search
        started = time.perf_counter()
        messages = corpus()
        self.bases = [
            Base(f"{s}\n{d}", *_pair(search.analyzer.document(s, d))) for s, d in messages
        ]
        self.analysis_s = time.perf_counter() - started
        self.analysed_chars = sum(len(b.text) for b in self.bases)
        self.replies = [Base(r, *_pair(search.analyzer.document(r))) for r in replies()[:3000]]
        counties = [
            r for r in self.directory.regions.values() if r.parent and r.level.value == "county"
        ]
        self.places = []
        for c in counties:
            league = self.directory.regions[c.parent]  # type: ignore[index]
            a = search.analyzer.document(f"{league.name}{c.name}")
            self.places.append(([c.code, league.code], a.words, a.grams))
        self.departments = list(self.directory.departments)

    def order(self, i: int) -> Document:
        rng = self.rng
        b = self.bases[i % len(self.bases)]
        other = self.bases[rng.randrange(len(self.bases))]
        region, pw, pg = self.places[rng.randrange(len(self.places))]
        extra = rng.sample(other.words, min(3, len(other.words)))
        fields = {
            "number": f"{20250101000000 + i}",
            "status": rng.choice(STATUSES),
            "departments": rng.sample(self.departments, rng.choice((1, 1, 2))),
            "region": region,
            "kind": rng.choice(KINDS),
            "category": [],
            "channel": rng.choice(CHANNELS),
            "phone": f"13{rng.randrange(10**9):09d}",
            "confidential": rng.random() < 0.02,
            "answered": rng.random() < 0.6,
            "group": None,
            "created_at": T0 + timedelta(seconds=rng.randrange(2 * 365 * 86400)),
        }
        return Document(i + 1, "", joined((*pw, *b.words, *extra)), joined((*pg, *b.grams)), fields)

    def article(self, i: int) -> Document:
        rng = self.rng
        b = self.replies[i % len(self.replies)]
        title = self.bases[i % len(self.bases)].words[:6]
        fields = {
            "kind": rng.choice(("guide", "faq", "reply", "reply")),
            "code": None,
            "language": "zh-Hans",
            "department": rng.choice(self.departments),
            "status": "published",
            "valid_from": T0,
            "valid_until": None if rng.random() < 0.9 else T0 + timedelta(days=rng.randrange(900)),
            "updated_at": T0 + timedelta(seconds=rng.randrange(365 * 86400)),
        }
        return Document(i + 1, joined(title), joined(b.words), joined(b.grams), fields)

    def keyword_query(self) -> tuple[str, list[Filter]]:
        b = self.bases[self.rng.randrange(len(self.bases))]
        words = [w for w in b.words if len(w) >= 2] or list(b.words) or ["问题"]
        q = " ".join(self.rng.sample(words, min(self.rng.choice((2, 2, 3)), len(words))))
        filters = []
        if self.rng.random() < 0.3:
            filters.append(Filter("departments", (self.rng.choice(self.departments),)))
        return q, filters

    def long_query(self) -> str:
        return self.bases[self.rng.randrange(len(self.bases))].text[:600]


def _pair(a: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return a.words, a.grams


async def load(
    search: Search, collection: str, make: Any, n: int, batch: int, parallel: int
) -> float:
    """Bulk load into an empty index: FTS5 without per-id deletes and with automerge off (an
    optimize follows); Elasticsearch without refreshes and with an asynchronous translog
    (restored afterwards): what `hotline search reindex --fresh` on a quiet system amounts to."""
    backend: Any = search.backend
    es = backend.name == "elasticsearch"
    if es:
        await backend.client.indices.put_settings(
            index=backend.index(collection),
            settings={"refresh_interval": "-1", "translog.durability": "async"},
        )
    else:
        backend.run_sync(lambda c: backend.automerge_sync(c, collection, 0))
    started = time.perf_counter()
    sem = asyncio.Semaphore(parallel)
    loop = asyncio.get_running_loop()

    async def one(lo: int) -> None:
        async with sem:
            docs = [make(i) for i in range(lo, min(n, lo + batch))]
            if es:
                await backend.upsert(collection, docs)
                return

            def write() -> None:
                backend.run_sync(lambda c: backend.upsert_sync(c, collection, docs, new=True))

            await loop.run_in_executor(None, write)

    tasks = []
    for lo in range(0, n, batch):
        tasks.append(asyncio.create_task(one(lo)))
        if len(tasks) >= parallel * 2:
            await tasks.pop(0)
        if lo and lo % (batch * 20) == 0:
            rate = lo / (time.perf_counter() - started)
            print(f"  {collection}: {lo:,} / {n:,} ({rate:,.0f}/s)", file=sys.stderr, flush=True)
    await asyncio.gather(*tasks)
    took = time.perf_counter() - started
    if es:
        await backend.client.indices.put_settings(
            index=backend.index(collection),
            settings={"refresh_interval": "1s", "translog.durability": "request"},
        )
    else:
        backend.run_sync(lambda c: backend.automerge_sync(c, collection, 4))
    return took


async def latency(search: Search, gen: Generator, kind: str, n: int) -> dict[str, float]:
    took = []
    valid = [
        Filter("status", ("published",)),
        Filter("valid_until", gte=datetime.now(UTC), missing_ok=True),
    ]
    for i in range(n + 20):
        if kind == "orders":
            q, f = gen.keyword_query()
            start = time.perf_counter()
            await search.search(ORDERS, q, f, limit=20)
        elif kind == "articles":
            q, _ = gen.keyword_query()
            start = time.perf_counter()
            await search.search(ARTICLES, q, valid, limit=10)
        else:
            q = gen.long_query()
            start = time.perf_counter()
            await search.search(
                ORDERS, q, [Filter("answered", (True,))], limit=10, with_total=False
            )
        if i >= 20:  # warm-up excluded
            took.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(percentile(took, 50), 2),
        "p95_ms": round(percentile(took, 95), 2),
        "n": n,
    }


async def catch_up(
    backend_name: str, es_url: str | None, changes: int, workdir: Path
) -> dict[str, Any]:
    """Order changes queued while search was down, then drained by the real indexer."""
    from hotline.app import build_services, load_routing, load_triage_parts
    from hotline.bus import InProcessBus
    from hotline.db import open_database
    from hotline.search import build_search_services
    from tickets.model import Caller, Channel, NewTicket

    env = {
        "HOTLINE__DATABASE__URL": f"sqlite:///{workdir / 'catchup.db'}",
        "HOTLINE__SEARCH__PATH": str(workdir / "catchup-search.db"),
        "HOTLINE__SEARCH__INDEX_PREFIX": "bench-catchup",
        "HOTLINE__SEARCH__BATCH": "500",
    }
    if backend_name == "elasticsearch":
        env |= {"HOTLINE__SEARCH__BACKEND": "elasticsearch", "HOTLINE__SEARCH__URL": es_url or ""}
    settings = load_settings(REPO / "config.toml", environ=env)
    db = open_database(settings)
    bus = InProcessBus()
    services = build_services(settings, db, bus)
    gazetteer, _ = load_triage_parts(settings, load_routing(settings))
    svc = build_search_services(settings, db, bus, services, gazetteer)
    texts = corpus()
    # intake while search is down: the orders and their queue jobs are written, nothing indexed
    for i in range(changes):
        s, d = texts[i % len(texts)]
        await services.tickets.submit(
            NewTicket(Channel.WEB, f"{s}\n{d}"[:3000], Caller(phone=f"138{i:08d}"))
        )
    depth = (await svc.orders.queue.stats()).depth
    await svc.orders.search.backend.open()
    await svc.orders.search.backend.reset(ORDERS)
    started = time.perf_counter()
    wake = asyncio.Event()
    task = asyncio.create_task(svc.orders.run(wake))
    for _ in range(36_000):  # at most two hours, checked every 0.2 s
        if not (await svc.orders.queue.stats()).depth:
            break
        await asyncio.sleep(0.2)
    took = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await svc.orders.search.backend.close()
    db.close()
    return {
        "queued_jobs": depth,
        "catch_up_s": round(took, 1),
        "orders_per_s": round(changes / took, 1),
    }


async def run_backend(
    name: str, args: argparse.Namespace, gen_seed: int, es_url: str | None, workdir: Path
) -> dict[str, Any]:
    from hotline.app import load_routing, load_triage_parts
    from hotline.search import build_analyzer

    settings = load_settings(REPO / "config.toml", environ={})
    gazetteer, _ = load_triage_parts(settings, load_routing(settings))
    if name == "elasticsearch":
        from kb.search_es import ElasticSearch

        backend: Any = ElasticSearch(es_url or "", prefix="bench", timeout_s=120)
    else:
        from kb.fts_store import SqliteSearch

        backend = SqliteSearch(workdir / "bench-search.db")
    search = Search(backend, build_analyzer(gazetteer))
    await backend.open()
    out: dict[str, Any] = {}
    gen = Generator(search, random.Random(gen_seed))
    out["analysis_docs_per_s"] = round(len(gen.bases) / gen.analysis_s, 1)
    out["analysis_chars_per_s"] = round(gen.analysed_chars / gen.analysis_s)
    if not args.reuse:
        await backend.reset(ORDERS)
        await backend.reset(ARTICLES)
        parallel = 2 if name == "elasticsearch" else 1
        t = await load(search, ARTICLES, gen.article, args.articles, args.batch, parallel)
        out["index_articles"] = {
            "docs": args.articles,
            "s": round(t, 1),
            "docs_per_s": round(args.articles / t),
        }
        t = await load(search, ORDERS, gen.order, args.orders, args.batch, parallel)
        out["index_orders"] = {
            "docs": args.orders,
            "s": round(t, 1),
            "docs_per_s": round(args.orders / t),
        }
        started = time.perf_counter()
        if name == "embedded":
            backend.run_sync(lambda c: backend.optimize_sync(c, ORDERS))
            backend.run_sync(lambda c: backend.optimize_sync(c, ARTICLES))
        await backend.refresh(ORDERS)
        await backend.refresh(ARTICLES)
        out["merge_refresh_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        terms = await backend.warm(ORDERS) + await backend.warm(ARTICLES)  # as reindex ends
        out["warm"] = {"terms": terms, "s": round(time.perf_counter() - started, 1)}
    out["counts"] = {
        "orders": await backend.count(ORDERS),
        "articles": await backend.count(ARTICLES),
    }
    for kind in ("orders", "articles", "similar"):
        out[f"query_{kind}"] = await latency(search, gen, kind, args.queries)
        print(f"  {name} {kind}: {out[f'query_{kind}']}", file=sys.stderr, flush=True)
    await backend.close()
    if args.catch_up:
        out["catch_up"] = await catch_up(name, es_url, args.catch_up, workdir)
    return out


def retrieval(backends: list[str], es_url: str | None) -> dict[str, Any]:
    import subprocess

    data = str(TIPDM / "replies.csv")
    out = {}
    base = subprocess.run(
        [sys.executable, str(REPO / "bench" / "search_baseline.py"), "--data", data],
        capture_output=True,
        text=True,
        check=True,
    )
    out["tfidf_baseline"] = json.loads(base.stdout)
    hotline = str(Path(sys.executable).with_name("hotline"))
    for name in backends:
        env = dict(__import__("os").environ)
        if name == "elasticsearch":
            env |= {
                "HOTLINE__SEARCH__BACKEND": "elasticsearch",
                "HOTLINE__SEARCH__URL": es_url or "",
            }
        done = subprocess.run(
            [hotline, "kb", "eval", "--data", data],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        out[name] = json.loads(done.stdout)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="embedded,elasticsearch")
    p.add_argument("--orders", type=int, default=1_000_000)
    p.add_argument("--articles", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--batch", type=int, default=5000)
    p.add_argument("--catch-up", type=int, default=10_000, help="order changes queued (0: skip)")
    p.add_argument("--es-url", help="use this cluster instead of starting a node")
    p.add_argument("--es-heap-mb", type=int, default=2048)
    p.add_argument("--workdir", help="keep the embedded index here (default: a temp folder)")
    p.add_argument("--reuse", action="store_true", help="query the indices already loaded")
    p.add_argument("--retrieval", action="store_true", help="also run kb eval and the baseline")
    p.add_argument("--seed", type=int, default=20261203)
    args = p.parse_args()
    backends = [b for b in args.backends.split(",") if b]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hotline-bench-search-"))
    workdir.mkdir(parents=True, exist_ok=True)
    node = None
    es_url = args.es_url
    if "elasticsearch" in backends and not es_url:
        from tests.esnode import EsNode
        from tests.ports import free_port

        node = EsNode(
            free_port(udp=False), home=workdir / "es", heap_mb=args.es_heap_mb, fast_start=False
        )
        node.home.mkdir(exist_ok=True)
        node.start()
        es_url = node.url
    result: dict[str, Any] = {
        "orders": args.orders,
        "articles": args.articles,
        "queries": args.queries,
        "at": datetime.now(UTC).isoformat(),
    }
    try:
        for name in backends:
            print(f"== {name}", file=sys.stderr, flush=True)
            result[name] = asyncio.run(run_backend(name, args, args.seed, es_url, workdir))
        if args.retrieval:
            result["retrieval"] = retrieval(backends, es_url)
    finally:
        if node is not None:
            node.stop()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
