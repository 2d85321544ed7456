"""The search port: collections, documents, queries; the facade that analyses text for both
adapters and reports itself degraded when its backend is away.

Adapters (SearchBackend): kb/fts_store.py (SQLite FTS5, embedded, no server) and
kb/search_es.py (Elasticsearch). Both index the analysed tokens of kb/analysis.py and rank with
BM25 over three text fields (title ×2, words ×1, character bigrams ×0.5); one contract suite
(tests/test_search_contract.py) runs over both.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from kb.analysis import Analyzed, Analyzer, joined

log = logging.getLogger(__name__)
T = TypeVar("T")


class FieldType(StrEnum):
    KEYWORD = "keyword"  # one value, filtered by equality
    KEYWORDS = "keywords"  # several values (departments, region path), any of them matches
    BOOL = "bool"
    DATE = "date"  # aware datetime, filtered by range, newest first when there is no text


ORDERS = "orders"
ARTICLES = "articles"
SCHEMAS: dict[str, dict[str, FieldType]] = {
    ORDERS: {
        "number": FieldType.KEYWORD,
        "status": FieldType.KEYWORD,
        "departments": FieldType.KEYWORDS,  # every department ever assigned (access)
        "region": FieldType.KEYWORDS,  # the region and the regions above it
        "kind": FieldType.KEYWORD,
        "category": FieldType.KEYWORDS,  # each level of the category path
        "channel": FieldType.KEYWORD,
        "phone": FieldType.KEYWORD,
        "confidential": FieldType.BOOL,
        "answered": FieldType.BOOL,
        "group": FieldType.KEYWORD,  # the main order's number of its 多人同诉 group
        "created_at": FieldType.DATE,
    },
    ARTICLES: {
        "kind": FieldType.KEYWORD,
        "code": FieldType.KEYWORD,
        "language": FieldType.KEYWORD,
        "department": FieldType.KEYWORD,
        "status": FieldType.KEYWORD,
        "valid_from": FieldType.DATE,
        "valid_until": FieldType.DATE,
        "updated_at": FieldType.DATE,
    },
}
# the date a text-less query sorts by, newest first
SORT_FIELD = {ORDERS: "created_at", ARTICLES: "updated_at"}
# BM25 field weights, the same in both adapters
WEIGHTS = {"title": 2.0, "words": 1.0, "grams": 0.5}
TOTAL_CAP = 1000  # totals are counted up to here ("1000+")
STATS_TTL_S = 600.0
STATS_CACHE = 200_000


@dataclass(frozen=True, slots=True)
class Document:
    """What the facade hands an adapter: ids are the rows' integer ids."""

    id: int
    title: str  # analysed tokens, space-separated
    words: str
    grams: str
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Filter:
    """`values`: any of them (keywords, bools); `gte`/`lte`: a date range; `missing_ok`: a
    document without the field passes too (an article without an end of validity)."""

    field: str
    values: tuple[Any, ...] = ()
    gte: datetime | None = None
    lte: datetime | None = None
    missing_ok: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    words: tuple[str, ...] = ()
    grams: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    exclude: tuple[int, ...] = ()
    limit: int = 10
    offset: int = 0
    with_total: bool = True  # count the matches (up to TOTAL_CAP); suggestions skip it


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    score: float


@dataclass(frozen=True, slots=True)
class Result:
    hits: list[Hit]
    total: int
    total_capped: bool = False  # at least `total` matches
    took_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class TermStats:
    """How many documents hold each term (0 when unknown); `docs` the collection's size."""

    docs: int
    words: Mapping[str, int]
    grams: Mapping[str, int]


class SearchBackend(Protocol):
    """One search engine. Writes are idempotent upserts/deletes by id."""

    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def healthy(self) -> bool: ...
    async def upsert(self, collection: str, docs: Sequence[Document]) -> None: ...
    async def delete(self, collection: str, ids: Sequence[int]) -> None: ...
    async def search(self, collection: str, query: Query) -> Result: ...
    async def count(self, collection: str) -> int: ...
    async def term_stats(
        self, collection: str, words: Sequence[str], grams: Sequence[str], cap: int | None = None
    ) -> TermStats:
        """`cap`: counts may stop there (a term in more documents is common, whatever its
        exact count)."""
        ...

    async def reset(self, collection: str) -> None: ...
    async def drop(self, collection: str) -> None: ...
    async def refresh(self, collection: str) -> None: ...
    async def warm(self, collection: str) -> int:
        """After a bulk load or a reindex: prepare what the first queries would otherwise
        compute one by one; how many items were prepared (0: the engine needs nothing)."""
        ...


class SearchUnavailable(Exception):
    """The backend did not answer; callers report degraded search, never fail intake."""


@dataclass(slots=True)
class Health:
    backend: str
    ok: bool = True
    since: float | None = None  # monotonic time it went down
    error: str | None = None
    changes: int = 0  # how often it flipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "status": "ok" if self.ok else "degraded",
            "error": self.error,
            "down_for_s": round(time.monotonic() - self.since, 1) if self.since else None,
        }


@dataclass(slots=True)
class Search:
    """The search facade: analysis in, ids and scores out; one Health for the process."""

    backend: SearchBackend
    analyzer: Analyzer
    # a longer query (a whole request as the text of suggestions) keeps its most telling terms
    # (query frequency × idf): at most this many distinct words and bigrams, whose document
    # frequencies add up to at most max_postings (the posting lists the engine walks and
    # scores: common words cost the most and tell the least); a term may repeat up to
    # max_repeat times (query term frequency). A query of at most short_words words (and twice
    # as many bigrams) keeps them all, without asking the backend for statistics.
    max_words: int = 48
    max_grams: int = 48
    max_postings: int = 1_000
    max_repeat: int = 3
    short_words: int = 4
    # text analysis is CPU-bound Python (jieba): it runs here, off the event loop
    executor: Executor | None = None
    health: Health = field(init=False)
    # document frequencies the backend reported, for STATS_TTL_S: terms recur from request to
    # request (the common ones most), so most of a long query's are known already
    _stats: dict[tuple[str, str, str], tuple[int, int, float]] = field(
        init=False, default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        self.health = Health(self.backend.name)

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn` (analysis work) on the executor, or inline without one (CLI, tests)."""
        if self.executor is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # -- health -------------------------------------------------------------------------------
    def mark_down(self, exc: BaseException) -> None:
        if self.health.ok:
            log.warning(
                "搜索后端不可用（%s）：检索降级，索引待恢复后补齐: %s", self.backend.name, exc
            )
            self.health.ok = False
            self.health.since = time.monotonic()
            self.health.changes += 1
        self.health.error = f"{type(exc).__name__}: {exc}"[:300]

    def mark_up(self) -> None:
        if not self.health.ok:
            log.info("搜索后端已恢复（%s）", self.backend.name)
            self.health.ok = True
            self.health.since = None
            self.health.error = None
            self.health.changes += 1

    async def probe(self) -> bool:
        try:
            ok = await self.backend.healthy()
        except Exception as exc:  # any failure to answer is "down"
            self.mark_down(exc)
            return False
        if ok:
            self.mark_up()
        else:
            self.mark_down(SearchUnavailable("not healthy"))
        return ok

    # -- documents ----------------------------------------------------------------------------
    def document(
        self, doc_id: int, title: str | None, body: Sequence[str | None], fields: Mapping[str, Any]
    ) -> Document:
        t = self.analyzer.document(title)
        b = self.analyzer.document(*body)
        return Document(
            doc_id, joined(t.words), joined(b.words), joined((*t.grams, *b.grams)), fields
        )

    async def upsert(self, collection: str, docs: Sequence[Document]) -> None:
        await self._call(self.backend.upsert(collection, docs))

    async def delete(self, collection: str, ids: Sequence[int]) -> None:
        await self._call(self.backend.delete(collection, ids))

    # -- queries ------------------------------------------------------------------------------
    def analyze(self, text: str | None) -> Analyzed:
        return self.analyzer.query(text or "")

    async def _focus(self, collection: str, a: Analyzed) -> Analyzed:
        """Keep a long query's most telling terms (see the fields above)."""
        words, grams = Counter(a.words), Counter(a.grams)
        if len(words) <= self.short_words and len(grams) <= 2 * self.short_words:
            return Analyzed(self._repeat(words), self._repeat(grams))
        stats = await self._term_stats(collection, list(words), [], self.max_postings + 1)
        kept_words, budget = self._select(words, stats.words, stats.docs, self.max_words, 1)
        # the bigrams share what the words left of the budget: counted only that far (a
        # bigram in more documents would not fit), and not at all when nothing is left
        kept_grams: Counter[str] = Counter()
        # a bigram of a word is in every document of that word (both come from its text; but
        # for a term the segmenter joins across a stop word, rare): one of a word in more
        # documents than the budget left would not fit either, and is not counted (a third
        # of a whole request's bigrams at 1,000,000 orders; each count costs a seek)
        common = {
            w[i : i + 2] for w, f in stats.words.items() if f > budget for i in range(len(w) - 1)
        }
        grams = Counter({g: n for g, n in grams.items() if g not in common})
        if budget > 0 and grams:
            stats = await self._term_stats(collection, [], list(grams), budget + 1)
            kept_grams, _ = self._select(grams, stats.grams, stats.docs, self.max_grams, 0, budget)
        return Analyzed(self._repeat(kept_words), self._repeat(kept_grams))

    async def _term_stats(
        self, collection: str, words: list[str], grams: list[str], cap: int
    ) -> TermStats:
        """The backend's statistics for the terms not seen within STATS_TTL_S (the size of the
        collection comes with them, or is the last one known). Counts may stop at `cap`: one
        counted to a lower cap and reaching it is counted again."""
        now = time.monotonic()
        known: dict[str, dict[str, int]] = {"w": {}, "g": {}}
        todo: dict[str, list[str]] = {"w": [], "g": []}
        for kind, terms in (("w", words), ("g", grams)):
            for t in terms:
                hit = self._stats.get((collection, kind, t))
                if (
                    hit is not None
                    and now - hit[2] < STATS_TTL_S
                    and (hit[0] < hit[1] or hit[1] >= cap)
                ):
                    known[kind][t] = hit[0]
                else:
                    todo[kind].append(t)
        size = self._stats.get((collection, "docs", ""))
        if todo["w"] or todo["g"] or size is None:
            got = await self._call(self.backend.term_stats(collection, todo["w"], todo["g"], cap))
            if len(self._stats) > STATS_CACHE:
                self._stats.clear()
            for kind, fresh in (("w", got.words), ("g", got.grams)):
                for t in todo[kind]:
                    known[kind][t] = fresh.get(t, 0)
                    self._stats[(collection, kind, t)] = (known[kind][t], cap, now)
            size = (got.docs, 0, now)
            self._stats[(collection, "docs", "")] = size
        return TermStats(size[0], known["w"], known["g"])

    def _select(
        self,
        counts: Counter[str],
        df: Mapping[str, int],
        docs: int,
        k: int,
        at_least: int,
        budget: int | None = None,
    ) -> tuple[Counter[str], int]:
        """The best `k` terms by query frequency × idf whose document frequencies fit in the
        budget (max_postings); when fewer than `at_least` fit, the best others up to that
        many, whatever they cost; and what is left of the budget.

        A term that does not fit was counted only to the cap (budget + 1): its weight here
        is its best possible, not its own. Were it ranked with the others, a common word a
        request repeats (小区 three times) would outrank the rare words, be taken as the
        first whatever it cost, and spend the whole budget on its own."""
        n = max(docs, 1)
        left = self.max_postings if budget is None else budget

        def weight(t: str) -> float:
            f = df.get(t, 0)
            return min(counts[t], self.max_repeat) * math.log(1 + (n - f + 0.5) / (f + 0.5))

        order = sorted(counts, key=lambda t: (-weight(t), t))
        kept: Counter[str] = Counter()
        for t in order:
            if len(kept) >= k:
                break
            f = df.get(t, 0)
            if f <= left:
                kept[t] = counts[t]
                left -= f
        for t in order:  # too few fit: every term is common
            if len(kept) >= min(at_least, k):
                break
            if t not in kept:
                kept[t] = counts[t]
                left -= df.get(t, 0)
        return kept, max(left, 0)

    def _repeat(self, counts: Counter[str]) -> tuple[str, ...]:
        return tuple(t for t, c in counts.items() for _ in range(min(c, self.max_repeat)))

    async def search(
        self,
        collection: str,
        text: str | None,
        filters: Sequence[Filter] = (),
        *,
        limit: int = 10,
        offset: int = 0,
        exclude: Sequence[int] = (),
        with_total: bool = True,
    ) -> Result:
        a = await self._focus(collection, await self.run(lambda: self.analyze(text)))
        query = Query(a.words, a.grams, tuple(filters), tuple(exclude), limit, offset, with_total)
        start = time.perf_counter()
        result: Result = await self._call(self.backend.search(collection, query))
        took = (time.perf_counter() - start) * 1000
        return Result(result.hits, result.total, result.total_capped, took)

    async def _call(self, aw: Any) -> Any:
        try:
            out = await aw
        except SearchUnavailable as exc:
            self.mark_down(exc)
            raise
        self.mark_up()
        return out
