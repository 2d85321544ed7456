"""The embedded search adapter: SQLite FTS5 over the analysed tokens, in its own database file.

Per collection: an FTS5 table (title, words, grams, tags) ranked by bm25() with the port's field
weights, and a table of its dates and keyword tags for ranges, filters and newest-first order.
Keyword filters are tags (`departments=150100-housing`), kept twice: as tokens of the FTS5
`tags` column and in the meta table.

Where a text query's time goes, and what bounds it (bench/search.py, README "Search at scale"):
- bm25() first counts every phrase of the query over its whole posting list (its idf), filter
  tags included: a filter value found in most documents (`answered=1`) would cost a scan of
  most of the index per query. So a selective filter value (a department) joins the MATCH
  (FTS5 intersects the posting lists), a common one is checked on the meta row of each text
  match instead, where most rows pass.
- bm25() then scores every match: a text query ranks its newest RANK_WINDOW matches (FTS5 walks
  the posting lists newest first and stops there), then keeps the best. A query of words found
  in a large part of the index (问题, 领导) ranks among recent orders, not all of them.
- A date range that holds few documents bounds the rowids the MATCH walks (near-duplicate checks
  look at the last few days only).
The facade (kb/search.py) keeps a long query to its most telling terms, from term_stats().
The index is derived data: `hotline search reindex` rebuilds it from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from kb.search import (
    SCHEMAS,
    SORT_FIELD,
    TOTAL_CAP,
    WEIGHTS,
    Document,
    FieldType,
    Hit,
    Query,
    Result,
    SearchUnavailable,
    TermStats,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
_TAG_UNSAFE = re.compile(r"[^\w\-]")
# tokens are letters, digits and these (tags are `field=value`)
_TOKENIZE = "unicode61 remove_diacritics 0 tokenchars '=-_'"
_READERS = 4
# document frequencies are counted up to here (or the caller's cap): a term in this many
# documents is common whatever its exact count (counting walks its posting list); a text query
# scores only its terms that are not common, if it has any (see search_sync)
DF_CAP = 2_000
DF_TTL_S = 600.0
DF_CACHE = 200_000
# A count that reached its cap is kept in the index file ({c}_df) as a lower bound for
# DF_KEEP_S, read by every process that opens the index: a common term then costs a B-tree
# lookup instead of a walk of its postings, also in a process just started or after DF_TTL_S.
# Counts grow with the index; deleting or purging documents can leave a bound a little high
# until it expires, which only nudges which terms a long query keeps.
DF_KEEP_S = 86_400.0
# only text columns: their counts grow with the index (a tag's falls as orders move on)
_TEXT_COLS = ("{title words}", "{grams}")
# warm() keeps the counts of the words and bigrams in at least this many documents (a rarer
# term is cheap to count: its postings are short)
WARM_FLOOR = 100
BOUNDS_FLUSH_S = 1.0  # new bounds are written at most this often, in one transaction
_BOUNDS_PER_STATEMENT = 500
# a text query ranks at most this many of its matches, the newest (see the module docstring)
RANK_WINDOW = 1_000
# a filter whose values are in at most this share of the documents (or this many) is matched
# by FTS5 with the text: bm25() walks its postings once, where a check on the meta rows would
# walk 1/share text matches per result (and per counted match)
INLINE_FILTER_SHARE = 0.1
INLINE_FILTER_MIN = 2_000
# a date range holding at most this many documents bounds the rowids a query walks
ID_RANGE_MAX = 20_000
# a bound only rises; one no higher than the kept one leaves it to expire
_KEEP_BOUND = (
    "INSERT INTO {c}_df (cols, term, n, at) VALUES (?, ?, ?, ?) ON CONFLICT (cols, term) "
    "DO UPDATE SET n = excluded.n, at = excluded.at WHERE excluded.n >= n"
)
_COUNTS_PER_STATEMENT = 200  # under SQLite's limit of 500 terms in a compound SELECT


def tag(field: str, value: Any) -> str:
    if isinstance(value, bool):
        value = int(value)
    return f"{field}={_TAG_UNSAFE.sub('_', str(value))}".lower()


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _sql(template: str, c: str) -> str:
    """A statement for collection `c`: table names cannot be bound as parameters, so they are
    put in here, and only ever the fixed collection names of the schema."""
    if c not in SCHEMAS:
        raise ValueError(f"unknown collection {c!r}")
    return template.replace("{c}", c)


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, its lock taken at once, rolled back on any error (a connection
    left inside a failed transaction would refuse the next BEGIN)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _dates(collection: str) -> list[str]:
    return [f for f, t in SCHEMAS[collection].items() if t is FieldType.DATE]


class SqliteSearch:
    """SearchBackend on SQLite FTS5 (one writer thread, a few reader threads)."""

    name = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fts-write")
        self._readers = ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="fts-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._df: dict[tuple[str, str, str], tuple[int, int, float]] = {}
        # lower bounds waiting for the writer: (collection, cols, term) -> (count, wall time)
        self._bounds: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._bounds_timer: threading.Timer | None = None  # set while a write is queued

    # -- connections --------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.isolation_level = None
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # derived data: rebuilt by reindex if lost
        conn.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(self._conn()))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "unable to open" in str(exc) or "disk" in str(exc):
                raise SearchUnavailable(str(exc)) from exc
            raise

    def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For the CLI and benchmarks: run on the caller's thread."""
        return fn(self._conn())

    # -- lifecycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._run(self._writer, self._create_all)

    def _create_all(self, conn: sqlite3.Connection) -> None:
        for collection in SCHEMAS:
            self._create(conn, collection)

    def _create(self, conn: sqlite3.Connection, c: str) -> None:
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {c}_fts USING fts5("
            f'title, words, grams, tags, tokenize="{_TOKENIZE}")'
        )
        cols = "".join(f", {d} REAL" for d in _dates(c))
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {c}_meta (id INTEGER PRIMARY KEY{cols}, tags TEXT)"
        )
        for d in _dates(c):
            conn.execute(f"CREATE INDEX IF NOT EXISTS {c}_meta_{d} ON {c}_meta ({d})")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {c}_df (cols TEXT NOT NULL, term TEXT NOT NULL, "
            "n INTEGER NOT NULL, at REAL NOT NULL, PRIMARY KEY (cols, term)) WITHOUT ROWID"
        )
        self._add_meta_tags(conn, c)

    def _add_meta_tags(self, conn: sqlite3.Connection, c: str) -> None:
        """An index built before the meta table held the tags: copy them over from FTS5."""
        columns = {r[1] for r in conn.execute(_sql("PRAGMA table_info({c}_meta)", c))}
        if "tags" in columns:
            return
        log.info("搜索索引升级：%s 的过滤标签写入 meta 表", c)
        with _immediate(conn):
            conn.execute(_sql("ALTER TABLE {c}_meta ADD COLUMN tags TEXT", c))
            conn.execute(
                _sql(
                    "UPDATE {c}_meta SET tags = ' ' || "
                    "(SELECT f.tags FROM {c}_fts f WHERE f.rowid = {c}_meta.id) || ' '",
                    c,
                )
            )

    async def close(self) -> None:
        if self._bounds_timer is not None:
            self._bounds_timer.cancel()
        with contextlib.suppress(RuntimeError):  # closed before
            self._writer.submit(self._write_bounds)  # what the timer would have written
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    async def healthy(self) -> bool:
        return await self._run(self._readers, lambda c: c.execute("SELECT 1").fetchone() == (1,))

    # -- writes -------------------------------------------------------------------------------
    async def upsert(self, collection: str, docs: Sequence[Document]) -> None:
        if docs:
            await self._run(self._writer, lambda c: self.upsert_sync(c, collection, docs))

    def upsert_sync(
        self, conn: sqlite3.Connection, c: str, docs: Sequence[Document], *, new: bool = False
    ) -> None:
        """`new`: the ids are not in the index yet (a bulk load into an empty index)."""
        schema = SCHEMAS[c]
        dates = _dates(c)
        rows = []
        metas = []
        for d in docs:
            tags: list[str] = []
            for name, value in d.fields.items():
                kind = schema[name]
                if kind is FieldType.DATE or value is None:
                    continue
                values = value if kind is FieldType.KEYWORDS else [value]
                tags.extend(tag(name, v) for v in values)
            rows.append((d.id, d.title, d.words, d.grams, " ".join(tags)))
            # padded: a filter looks for " field=value " in it
            metas.append((d.id, *(_epoch(d.fields.get(x)) for x in dates), f" {' '.join(tags)} "))
        ids = [(d.id,) for d in docs]
        marks = "(" + ", ".join("?" * (2 + len(dates))) + ")"
        with _immediate(conn):
            conn.executemany(_sql("DELETE FROM {c}_fts WHERE rowid = ?", c), ids)
            conn.executemany(
                _sql(
                    "INSERT INTO {c}_fts (rowid, title, words, grams, tags) VALUES (?,?,?,?,?)", c
                ),
                rows,
            )
            # (id, dates…, tags): also the order of an index upgraded by _add_meta_tags
            conn.executemany(_sql("INSERT OR REPLACE INTO {c}_meta VALUES ", c) + marks, metas)

    async def delete(self, collection: str, ids: Sequence[int]) -> None:
        c = collection

        def tx(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                rows = [(i,) for i in ids]
                conn.executemany(_sql("DELETE FROM {c}_fts WHERE rowid = ?", c), rows)
                conn.executemany(_sql("DELETE FROM {c}_meta WHERE id = ?", c), rows)

        if ids:
            await self._run(self._writer, tx)

    async def term_stats(
        self, collection: str, words: Sequence[str], grams: Sequence[str], cap: int | None = None
    ) -> TermStats:
        return await self._run(
            self._readers, lambda c: self.term_stats_sync(c, collection, words, grams, cap)
        )

    def term_stats_sync(
        self,
        conn: sqlite3.Connection,
        c: str,
        words: Sequence[str],
        grams: Sequence[str],
        cap: int | None = None,
    ) -> TermStats:
        """Document frequencies counted up to `cap` (DF_CAP without one) and cached for DF_TTL_S:
        terms recur from query to query, the common ones most (and they cost the most to
        count)."""
        cap = cap or DF_CAP
        docs = self._dfs(conn, c, "", [""], cap)[""]
        return TermStats(
            docs,
            self._dfs(conn, c, "{title words}", words, cap),
            self._dfs(conn, c, "{grams}", grams, cap),
        )

    def _dfs(
        self, conn: sqlite3.Connection, c: str, cols: str, terms: Sequence[str], cap: int
    ) -> dict[str, int]:
        """Capped document frequencies of `terms` in `cols` ("": the collection's size), the
        uncached ones counted in a few statements rather than one per term."""
        now = time.monotonic()
        out: dict[str, int] = {}
        todo: list[str] = []
        for t in dict.fromkeys(terms):
            hit = self._df.get((c, cols, t))
            # a count answers when it is exact (under the cap it was counted to) or that cap
            # was at least this one
            if hit is not None and now - hit[2] < DF_TTL_S and (hit[0] < hit[1] or hit[1] >= cap):
                out[t] = hit[0]
            else:
                todo.append(t)
        if not todo:
            return out
        if len(self._df) + len(todo) > DF_CACHE:
            self._df.clear()
        if todo == [""]:
            counted = [int(conn.execute(_sql("SELECT count(*) FROM {c}_meta", c)).fetchone()[0])]
        else:
            wall = time.time()
            kept = cols in _TEXT_COLS  # a tag's count falls as orders move on (status=new)
            if kept:
                for t, n in self._lower_bounds(conn, c, cols, todo, cap, wall).items():
                    out[t] = n
                    self._df[(c, cols, t)] = (n, n, now)  # answers any cap up to n
                todo = [t for t in todo if t not in out]
            one = "SELECT {i}, count(*) FROM (SELECT 1 FROM {c}_fts WHERE {c}_fts MATCH ? LIMIT ?)"
            counted = [0] * len(todo)
            for lo in range(0, len(todo), _COUNTS_PER_STATEMENT):
                part = range(lo, min(len(todo), lo + _COUNTS_PER_STATEMENT))
                sql = _sql(" UNION ALL ".join(one.replace("{i}", str(i)) for i in part), c)
                args = [x for i in part for x in (f"{cols} : {_quote(todo[i])}", cap)]
                for i, n in conn.execute(sql, args):
                    counted[i] = int(n)
            if kept:
                reached = [(t, n) for t, n in zip(todo, counted, strict=True) if n >= cap]
                self._keep_bounds(c, cols, reached, wall)
        exact = cap if cols else 2**62  # the collection's size is counted whole
        for t, n in zip(todo, counted, strict=True):
            out[t] = n
            self._df[(c, cols, t)] = (n, exact, now)
        return out

    def _lower_bounds(
        self,
        conn: sqlite3.Connection,
        c: str,
        cols: str,
        terms: Sequence[str],
        cap: int,
        wall: float,
    ) -> dict[str, int]:
        """The terms with a lower bound of at least `cap` kept in the index (see DF_KEEP_S)."""
        found: dict[str, int] = {}
        for lo in range(0, len(terms), _BOUNDS_PER_STATEMENT):
            part = terms[lo : lo + _BOUNDS_PER_STATEMENT]
            marks = ", ".join("?" * len(part))
            sql = _sql(
                "SELECT term, n FROM {c}_df "  # noqa: S608 - placeholders only
                f"WHERE cols = ? AND n >= ? AND at > ? AND term IN ({marks})",
                c,
            )
            try:
                rows = conn.execute(sql, [cols, cap, wall - DF_KEEP_S, *part]).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                return found  # an index from before the bounds, not opened (created) here
            found.update((t, int(n)) for t, n in rows)
        return found

    def _keep_bounds(
        self, c: str, cols: str, bounds: Sequence[tuple[str, int]], wall: float
    ) -> None:
        """Queue counts that reached their cap for the writer, which writes what is queued in
        one transaction when it gets to it; queries never wait for it."""
        if not bounds:
            return
        with self._lock:
            for t, n in bounds:
                self._bounds[(c, cols, t)] = (n, wall)
            if self._bounds_timer is not None:
                return
            timer = self._bounds_timer = threading.Timer(BOUNDS_FLUSH_S, self._queue_bounds)
            timer.daemon = True
        timer.start()

    def _queue_bounds(self) -> None:
        try:
            self._writer.submit(self._write_bounds)
        except RuntimeError:  # closed: the bounds are only an optimisation
            with self._lock:
                self._bounds_timer = None

    def _write_bounds(self) -> None:
        with self._lock:
            bounds, self._bounds = self._bounds, {}
            self._bounds_timer = None
        if not bounds:
            return
        by_collection: dict[str, list[tuple[str, str, int, float]]] = {}
        for (c, cols, t), (n, wall) in bounds.items():
            by_collection.setdefault(c, []).append((cols, t, n, wall))
        conn = self._conn()
        try:
            with _immediate(conn):
                for c, rows in by_collection.items():
                    conn.executemany(_sql(_KEEP_BOUND, c), rows)
        except sqlite3.Error as exc:  # a full disk, a dropped table: counted again next time
            log.debug("搜索索引：词频下限未写入（%s）", exc)

    async def reset(self, collection: str) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            self._drop(conn, collection)
            self._create(conn, collection)

        await self._run(self._writer, tx)

    async def drop(self, collection: str) -> None:
        await self._run(self._writer, lambda c: self._drop(c, collection))

    def _drop(self, conn: sqlite3.Connection, collection: str) -> None:
        conn.execute(_sql("DROP TABLE IF EXISTS {c}_fts", collection))
        conn.execute(_sql("DROP TABLE IF EXISTS {c}_meta", collection))
        conn.execute(_sql("DROP TABLE IF EXISTS {c}_df", collection))
        with self._lock:  # bounds counted on what is dropped
            self._bounds = {k: v for k, v in self._bounds.items() if k[0] != collection}

    async def refresh(self, collection: str) -> None:
        return None  # committed writes are visible at once

    async def count(self, collection: str) -> int:
        return await self._run(
            self._readers,
            lambda conn: int(
                conn.execute(_sql("SELECT count(*) FROM {c}_meta", collection)).fetchone()[0]
            ),
        )

    async def warm(self, collection: str) -> int:
        return await self._run(self._writer, lambda c: self.warm_sync(c, collection))

    def warm_sync(self, conn: sqlite3.Connection, c: str) -> int:
        """Keep the counts of every word and bigram found in at least WARM_FLOOR documents as
        bounds (see DF_KEEP_S), read from FTS5's own vocabulary in one pass over the index
        (1,000,000 orders: 8–18 s), so that the first long queries after a bulk load or a
        reindex do not count them one by one. A term of the title and the words is in at least
        as many documents as in the larger of the two."""
        vocab = (
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.{c}_vocab USING fts5vocab(main, {c}_fts, col)"
        )
        conn.execute(_sql(vocab, c))
        sql = (
            "SELECT term, col, doc FROM temp.{c}_vocab "
            "WHERE col IN ('title', 'words', 'grams') AND doc >= ?"
        )
        bounds: dict[tuple[str, str], int] = {}
        for term, col, n in conn.execute(_sql(sql, c), (WARM_FLOOR,)):
            key = ("{grams}" if col == "grams" else "{title words}", term)
            bounds[key] = max(bounds.get(key, 0), min(int(n), DF_CAP))
        wall = time.time()
        rows = [(cols, t, n, wall) for (cols, t), n in bounds.items()]
        with _immediate(conn):  # counted just now: they replace older bounds, higher or not
            conn.executemany(_sql("INSERT OR REPLACE INTO {c}_df VALUES (?, ?, ?, ?)", c), rows)
        return len(rows)

    def optimize_sync(self, conn: sqlite3.Connection, collection: str) -> None:
        """Merge the FTS5 segments (after a bulk load)."""
        conn.execute(_sql("INSERT INTO {c}_fts ({c}_fts) VALUES ('optimize')", collection))

    def automerge_sync(self, conn: sqlite3.Connection, collection: str, level: int) -> None:
        """FTS5's incremental merging: 0 while bulk loading (optimize afterwards), 4 normally."""
        conn.execute(
            _sql("INSERT INTO {c}_fts ({c}_fts, rank) VALUES ('automerge', ?)", collection),
            (level,),
        )

    # -- queries ------------------------------------------------------------------------------
    async def search(self, collection: str, query: Query) -> Result:
        return await self._run(self._readers, lambda c: self.search_sync(c, collection, query))

    def search_sync(self, conn: sqlite3.Connection, c: str, q: Query) -> Result:
        text = []
        words, grams, common = self._scored(conn, c, q)  # common: a MATCH clause, or ""
        if words:
            text.append(f"{{title words}} : ({' OR '.join(_quote(w) for w in words)})")
        if grams:
            text.append(f"{{grams}} : ({' OR '.join(_quote(g) for g in grams)})")
        match = ["(" + " OR ".join(text) + ")"] if text else []
        if common:
            match.append(common)
        where: list[str] = []  # conditions on the meta row (m)
        params: list[Any] = []
        for f in q.filters:
            kind = SCHEMAS[c][f.field]
            if kind is FieldType.DATE:
                for op, bound in ((">=", f.gte), ("<=", f.lte)):
                    if bound is not None:
                        missing = f" OR m.{f.field} IS NULL" if f.missing_ok else ""
                        where.append(f"(m.{f.field} {op} ?{missing})")
                        params.append(bound.timestamp())
                continue
            tags = [tag(f.field, v) for v in f.values]
            if not tags:
                return Result([], 0)  # any of no values: nothing
            if not text or self._selective(conn, c, tags):
                match.append(f"{{tags}} : ({' OR '.join(_quote(t) for t in tags)})")
            else:  # common values: checked on the text's matches, not counted by bm25()
                where.append("(" + " OR ".join("instr(m.tags, ?)" for _ in tags) + ")")
                params.extend(f" {t} " for t in tags)
        ids = f"{c}_fts.rowid" if match else "m.id"  # the same on the rows joined
        # so far: dates and common filter values; without text, the date sorted by
        on_meta = bool(where) or not (text or common)
        if q.exclude:
            where.append(f"{ids} NOT IN ({', '.join('?' * len(q.exclude))})")
            params.extend(q.exclude)
        bounds = self._id_range(conn, c, q)
        if bounds is not None:
            if bounds[0] > bounds[1]:
                return Result([], 0)
            where.append(f"{ids} BETWEEN ? AND ?")
            params.extend(bounds)
        if match:
            # the meta row only when a condition needs it: a lookup per match
            join = f" JOIN {c}_meta m ON m.id = {c}_fts.rowid" if on_meta else ""
            where.insert(0, f"{c}_fts MATCH ?")
            params.insert(0, " AND ".join(match))
            base = f"FROM {c}_fts{join}"
        else:
            base = f"FROM {c}_meta m"
        if where:
            base += " WHERE " + " AND ".join(where)
        if common:
            sql = f"SELECT {ids}, 0.0 {base} ORDER BY {ids} DESC LIMIT ? OFFSET ?"
        elif text:
            rank = "bm25({t}_fts, {title}, {words}, {grams}, 0.0)".format(t=c, **WEIGHTS)
            window = max(RANK_WINDOW, q.offset + q.limit)
            # names and numbers from code only (_sql checks the collection)
            sql = (
                f"SELECT id, r FROM (SELECT {ids} AS id, {rank} AS r {base} "  # noqa: S608
                f"ORDER BY {c}_fts.rowid DESC LIMIT {window}) ORDER BY r LIMIT ? OFFSET ?"
            )
        else:
            sql = f"SELECT m.id, 0.0 {base} ORDER BY m.{SORT_FIELD[c]} DESC LIMIT ? OFFSET ?"
        rows = conn.execute(sql, [*params, q.limit, q.offset]).fetchall()
        hits = [Hit(int(r[0]), -float(r[1]) if r[1] else 0.0) for r in rows]
        if not q.with_total:
            return Result(hits, len(hits) + q.offset)
        counted = "SELECT count(*) FROM (SELECT 1 {base} LIMIT ?)".replace("{base}", base)
        total = conn.execute(counted, [*params, TOTAL_CAP + 1]).fetchone()[0]
        return Result(hits, min(total, TOTAL_CAP), total > TOTAL_CAP)

    def _selective(self, conn: sqlite3.Connection, c: str, tags: list[str]) -> bool:
        docs = self._dfs(conn, c, "", [""], DF_CAP)[""]
        most = max(INLINE_FILTER_MIN, int(docs * INLINE_FILTER_SHARE))
        return sum(self._dfs(conn, c, "{tags}", tags, most + 1).values()) <= most

    def _scored(
        self, conn: sqlite3.Connection, c: str, q: Query
    ) -> tuple[list[str], list[str], str]:
        """The words and bigrams bm25() scores: those in fewer than DF_CAP documents. bm25()
        walks the whole posting list of each (its idf) and a common one is long (问题 is in a
        third of all requests) while it tells little. A query of common terms only is not
        scored: it finds the documents that have all its words, newest first (the clause)."""
        if not q.words and not q.grams:
            return [], [], ""
        df_w = self._dfs(conn, c, "{title words}", q.words, DF_CAP)
        df_g = self._dfs(conn, c, "{grams}", q.grams, DF_CAP)
        words = [w for w in q.words if df_w[w] < DF_CAP]
        grams = [g for g in q.grams if df_g[g] < DF_CAP]
        if words or grams:
            return words, grams, ""
        cols, terms = ("{title words}", q.words) if q.words else ("{grams}", q.grams)
        return [], [], f"{cols} : ({' AND '.join(_quote(t) for t in dict.fromkeys(terms))})"

    def _id_range(self, conn: sqlite3.Connection, c: str, q: Query) -> tuple[int, int] | None:
        """The rowids (first, last) a query may find when one of its date ranges holds at most
        ID_RANGE_MAX documents (first > last: a range holds none); None: no such range."""
        out: tuple[int, int] | None = None
        for f in q.filters:
            if f.missing_ok or (f.gte is None and f.lte is None):
                continue
            cond = " AND ".join(
                f"{f.field} {op} ?" for op, b in ((">=", f.gte), ("<=", f.lte)) if b is not None
            )
            args = [b.timestamp() for b in (f.gte, f.lte) if b is not None]
            sub = f"SELECT id FROM {c}_meta WHERE {cond} LIMIT {ID_RANGE_MAX + 1}"  # noqa: S608 - names from the schema
            sql = _sql("SELECT count(*), min(id), max(id) FROM ({sub})", c).replace("{sub}", sub)
            n, first, last = conn.execute(sql, args).fetchone()
            if n == 0:
                return (1, 0)
            if n <= ID_RANGE_MAX:
                out = (first, last) if out is None else (max(out[0], first), min(out[1], last))
        return out
