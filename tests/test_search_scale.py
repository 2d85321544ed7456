"""What keeps search fast on a large index, checked on a small one: the facade's choice of a
long query's terms, and the embedded adapter's bounds (common terms, common filter values, the
rank window, date ranges), forced on here by lowering its thresholds."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kb import fts_store
from kb.analysis import Analyzer
from kb.fts_store import SqliteSearch
from kb.search import ORDERS, Filter, Query, Result, Search, TermStats

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


class StatsBackend:
    """A backend that knows document frequencies and records the queries it is sent."""

    name = "fake"

    def __init__(self, df: dict[str, int], docs: int = 10_000) -> None:
        self.df = df
        self.docs = docs
        self.queries: list[Query] = []
        self.stats_calls = 0
        self.asked_grams: list[str] = []

    async def term_stats(
        self, collection: str, words: Sequence[str], grams: Sequence[str], cap: int | None = None
    ) -> TermStats:
        self.stats_calls += 1
        self.asked_grams += grams
        top = cap or 2**62  # counted as far as the cap, as both adapters do
        return TermStats(
            self.docs,
            {w: min(self.df.get(w, 0), top) for w in words},
            {g: min(self.df.get(g, 0), top) for g in grams},
        )

    async def search(self, collection: str, query: Query) -> Result:
        self.queries.append(query)
        return Result([], 0)


class Words:
    def tokens(self, text: str) -> list[str]:
        return text.split()


def fake_search(df: dict[str, int], **fields: Any) -> tuple[Search, StatsBackend]:
    backend = StatsBackend(df)
    search = Search(backend, Analyzer(Words()), **fields)  # type: ignore[arg-type]
    return search, backend


async def test_focus_long_query_keeps_rare_terms_within_the_budget() -> None:
    df = {"井盖": 3, "丢失": 40, "光明路": 8, "问题": 5_000, "你好": 4_000, "反映": 900}
    search, backend = fake_search(df, max_postings=100, short_words=2)
    await search.search(ORDERS, "你好 问题 反映 光明路 井盖 丢失 问题")
    words = set(backend.queries[0].words)
    assert {"井盖", "光明路", "丢失"} <= words  # 51 postings in all
    # each alone over the budget; 问题, twice in the request and counted only to the cap (as
    # if in 101 documents), outweighs 井盖 on that count, and was once kept first, alone
    assert not words & {"问题", "你好", "反映"}


async def test_focus_keeps_the_best_word_of_common_ones_and_caps_the_count() -> None:
    search, backend = fake_search({"问题": 5_000, "你好": 4_000}, max_postings=100, short_words=1)
    await search.search(ORDERS, "你好 问题 问题")
    # none fits: the best one is kept all the same (both counted to the cap, 问题 is twice)
    assert backend.queries[0].words == ("问题", "问题")
    many = " ".join(f"词{i}" for i in range(60))
    await search.search(ORDERS, many)
    assert len(set(backend.queries[1].words)) == search.max_words


async def test_focus_short_query_keeps_every_term_without_statistics() -> None:
    search, backend = fake_search({"问题": 5_000})
    await search.search(ORDERS, "路灯 问题")
    assert backend.stats_calls == 0
    assert set(backend.queries[0].words) == {"路灯", "问题"}


# -- the embedded adapter's bounds ------------------------------------------------------------
TEXTS = [
    "小区 停车 收费 太高",  # 1
    "小区 停车 位 不够",  # 2
    "小区 绿化 差",  # 3
    "小区 停车 井盖 丢失",  # 4
    "小区 停车 噪音",  # 5
    "道路 井盖 破损",  # 6
    "学校 门口 拥堵",  # 7
]


@pytest.fixture
async def small(tmp_path: Path) -> Any:
    backend = SqliteSearch(tmp_path / "search.db")
    await backend.open()
    search = Search(backend, Analyzer(Words()))
    docs = [
        search.document(
            i,
            None,
            [text],
            {
                "status": "new",
                "departments": ["urban"] if i % 2 else ["housing", "urban"],
                "region": [],
                "category": [],
                "answered": i != 3,
                "created_at": T0 + timedelta(days=i),
            },
        )
        for i, text in enumerate(TEXTS, 1)
    ]
    await search.upsert(ORDERS, docs)
    yield search
    await backend.close()


async def ids(search: Search, text: str | None, *filters: Filter, **kw: Any) -> list[int]:
    return [h.id for h in (await search.search(ORDERS, text, filters, **kw)).hits]


def low(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    for name, value in values.items():
        monkeypatch.setattr(fts_store, name, value)


async def test_embedded_common_filter_value_is_checked_on_the_meta_row(
    small: Search, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = Filter("answered", (True,))
    housing = Filter("departments", ("housing",))
    inline = (await ids(small, "小区 井盖", answered), await ids(small, "小区", housing))
    low(monkeypatch, INLINE_FILTER_MIN=1)  # every value now common: checked after the match
    monkeypatch.setattr(fts_store, "INLINE_FILTER_SHARE", 0.0)
    small.backend._df.clear()  # type: ignore[attr-defined]
    assert (await ids(small, "小区 井盖", answered), await ids(small, "小区", housing)) == inline
    assert 3 not in inline[0] and sorted(inline[1]) == [2, 4]
    total = await small.search(ORDERS, "小区", [answered])
    assert total.total == 4


async def test_embedded_common_words_are_not_scored_and_alone_need_all(
    small: Search, monkeypatch: pytest.MonkeyPatch
) -> None:
    low(monkeypatch, DF_CAP=4)  # 小区 (5 documents) and 停车 (4) are common now
    # with a rarer word: matched and ranked by it alone
    assert sorted(await ids(small, "小区 井盖")) == [4, 6]
    # common words only: the documents with all of them, newest first
    assert await ids(small, "小区 停车") == [5, 4, 2, 1]


async def test_embedded_ranks_the_newest_matches_of_the_window(
    small: Search, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sorted(await ids(small, "停车")) == [1, 2, 4, 5]
    low(monkeypatch, RANK_WINDOW=2)
    assert sorted(await ids(small, "停车", limit=2)) == [4, 5]
    # a page past the window widens it to the page's end
    assert sorted(await ids(small, "停车", limit=3)) == [2, 4, 5]


async def test_embedded_date_range_bounds_the_rowids_walked(
    small: Search, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = Filter("created_at", gte=T0 + timedelta(days=2), lte=T0 + timedelta(days=5))
    bounded = sorted(await ids(small, "小区 井盖", window, exclude=[4]))
    assert bounded == [2, 3, 5]
    low(monkeypatch, ID_RANGE_MAX=1)  # too wide to bound: the same answer the long way
    assert sorted(await ids(small, "小区 井盖", window, exclude=[4])) == bounded
    empty = Filter("created_at", gte=T0 + timedelta(days=30))
    assert await ids(small, "小区", empty) == []


async def test_embedded_index_without_meta_tags_is_upgraded_at_open(tmp_path: Path) -> None:
    path = tmp_path / "search.db"
    backend = SqliteSearch(path)
    await backend.open()
    search = Search(backend, Analyzer(Words()))
    doc = search.document(1, None, ["井盖 丢失"], {"status": "new", "departments": ["urban"]})
    await search.upsert(ORDERS, [doc])
    await backend.close()
    with sqlite3.connect(path) as conn:  # the layout before the tags column
        conn.execute("ALTER TABLE orders_meta DROP COLUMN tags")
    backend = SqliteSearch(path)
    await backend.open()
    try:
        row = backend.run_sync(lambda c: c.execute("SELECT tags FROM orders_meta").fetchone())
        assert "departments=urban" in row[0].split()
        urban = Filter("departments", ("urban",))
        assert (await backend.search(ORDERS, Query(("井盖",), (), (urban,)))).hits[0].id == 1
    finally:
        await backend.close()


async def test_focus_asks_the_backend_only_for_terms_not_seen_lately() -> None:
    search, backend = fake_search({"井盖": 3}, short_words=1)
    await search.search(ORDERS, "井盖 丢失 危险")
    asked = backend.stats_calls  # the words, then the bigrams with what is left of the budget
    await search.search(ORDERS, "丢失 井盖")
    assert backend.stats_calls == asked  # every term of the second query is known
    await search.search(ORDERS, "井盖 破损")
    assert backend.stats_calls > asked


async def test_focus_does_not_count_the_bigrams_of_a_common_word() -> None:
    df = {"小区门口": 5_000, "井盖": 3, "丢失": 40, "井盖丢": 0}
    search, backend = fake_search(df, max_postings=100, short_words=1)
    await search.search(ORDERS, "小区门口 井盖丢失")
    # 小区门口 is in more documents than the budget, and so is each bigram of it
    assert not {"小区", "区门", "门口"} & set(backend.asked_grams)
    assert {"井盖", "盖丢", "丢失"} <= set(backend.asked_grams)
    assert not {"小区", "区门", "门口"} & set(backend.queries[0].grams)


async def test_focus_does_not_ask_for_bigrams_when_the_words_used_the_budget() -> None:
    df = {"井盖": 50, "丢失": 50}  # 100 postings: the whole budget
    search, backend = fake_search(df, max_postings=100, short_words=1)
    await search.search(ORDERS, "井盖 丢失")
    assert backend.stats_calls == 1
    assert backend.queries[0].grams == ()


async def test_embedded_term_stats_count_to_the_cap_and_remember(small: Search) -> None:
    backend: Any = small.backend
    for _ in range(2):  # counted, then from the cache
        stats = await backend.term_stats(ORDERS, ["小区", "井盖"], ["小区"], 3)
        assert stats.docs == len(TEXTS)  # the collection's size is never capped
        assert stats.words == {"小区": 3, "井盖": 2}  # 小区 (5 documents) stops at the cap
    assert (await backend.term_stats(ORDERS, ["小区"], [], 10)).words == {"小区": 5}


async def test_embedded_counts_that_reach_the_cap_are_kept_for_other_processes(
    small: Search, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "search.db"
    first: Any = small.backend
    await first.term_stats(ORDERS, ["小区", "井盖"], ["小区"], 3)  # 小区 (5 documents) reaches 3
    low(
        monkeypatch, INLINE_FILTER_MIN=1
    )  # answered=1 (6 documents) is counted to 2, and reaches it
    assert await ids(small, "井盖", Filter("answered", (True,))) == [6, 4]
    await first.close()  # writes what its timer had not written yet
    with sqlite3.connect(path) as conn:
        kept = conn.execute("SELECT cols, term, n FROM orders_df ORDER BY cols").fetchall()
        # not 井盖 (exact), nor the tag: a status's count falls as orders move on
        assert kept == [("{grams}", "小区", 3), ("{title words}", "小区", 3)]
        conn.execute("DELETE FROM orders_fts")  # what is counted from now on finds nothing
    second = SqliteSearch(path)  # another process: nothing in memory
    await second.open()
    try:
        stats = await second.term_stats(ORDERS, ["小区", "井盖"], ["小区"], 3)
        assert stats.words == {"小区": 3, "井盖": 0}  # the bound answers, 井盖 is counted
        assert stats.grams == {"小区": 3}
        # a bound answers caps up to its count only: a higher one is counted
        assert (await second.term_stats(ORDERS, ["小区"], [], 10)).words == {"小区": 0}
    finally:
        await second.close()
    monkeypatch.setattr(fts_store, "DF_KEEP_S", 0.0)  # every bound has expired
    third = SqliteSearch(path)
    await third.open()
    try:
        assert (await third.term_stats(ORDERS, [], ["小区"], 3)).grams == {"小区": 0}
        await third.reset(ORDERS)
    finally:
        await third.close()
    with sqlite3.connect(path) as conn:  # a rebuilt index starts without bounds
        assert conn.execute("SELECT count(*) FROM orders_df").fetchone() == (0,)


async def test_embedded_index_without_the_bounds_table_is_still_read(small: Search) -> None:
    backend: Any = small.backend
    with sqlite3.connect(backend.path) as conn:
        conn.execute("DROP TABLE orders_df")  # an index written before the bounds
    reader = SqliteSearch(backend.path)  # not opened: nothing creates the table
    try:
        assert (await reader.term_stats(ORDERS, ["小区"], [], 3)).words == {"小区": 3}
    finally:
        await reader.close()


async def test_embedded_warm_keeps_the_counts_of_common_terms_from_the_vocabulary(
    small: Search, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend: Any = small.backend
    low(monkeypatch, WARM_FLOOR=4)  # 小区 is in 5 documents, 停车 in 4, 井盖 in 2
    assert await backend.warm(ORDERS) == 4  # both, as words and as bigrams
    with sqlite3.connect(backend.path) as conn:
        kept = conn.execute("SELECT cols, term, n FROM orders_df ORDER BY cols, term").fetchall()
        assert kept == [
            ("{grams}", "停车", 4),
            ("{grams}", "小区", 5),
            ("{title words}", "停车", 4),
            ("{title words}", "小区", 5),
        ]
        conn.execute("DELETE FROM orders_fts")  # what is counted from now on finds nothing
    reader = SqliteSearch(backend.path)
    try:
        stats = await reader.term_stats(ORDERS, ["小区", "停车", "井盖"], ["停车"], 4)
        assert stats.words == {"小区": 5, "停车": 4, "井盖": 0}
        assert stats.grams == {"停车": 4}
    finally:
        await reader.close()


async def test_embedded_failed_write_leaves_the_writer_usable(small: Search) -> None:
    backend: Any = small.backend
    with sqlite3.connect(backend.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON orders_meta "
            "BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    with pytest.raises(sqlite3.IntegrityError):
        await backend.delete(ORDERS, [1])
    with sqlite3.connect(backend.path) as conn:
        conn.execute("DROP TRIGGER refuse")
    await backend.delete(ORDERS, [1])  # the writer's connection is not left in the failed one
    assert await ids(small, "绿化") == [3]
    assert await ids(small, "收费") == []
