"""The embedded search adapter: SQLite FTS5 over the analysed tokens, in its own database file.

Per collection: an FTS5 table (title, words, grams, tags) ranked by bm25() with the port's field
weights, and a table of its dates for ranges and newest-first order. Keyword filters are tokens
of the `tags` column (`departments=150100-housing`) matched together with the text, weighted 0.
The index is derived data: `hotline search reindex` rebuilds it from the store.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
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
_TAG_UNSAFE = re.compile(r"[^\w\-]")
# tokens are letters, digits and these (tags are `field=value`)
_TOKENIZE = "unicode61 remove_diacritics 0 tokenchars '=-_'"
_READERS = 4
DF_CAP = 2000
DF_TTL_S = 600.0
DF_CACHE = 200_000


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
        self._df: dict[tuple[str, str, str], tuple[int, float]] = {}

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
        conn.execute(f"CREATE TABLE IF NOT EXISTS {c}_meta (id INTEGER PRIMARY KEY{cols})")
        for d in _dates(c):
            conn.execute(f"CREATE INDEX IF NOT EXISTS {c}_meta_{d} ON {c}_meta ({d})")

    async def close(self) -> None:
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
            metas.append((d.id, *(_epoch(d.fields.get(x)) for x in dates)))
        ids = [(d.id,) for d in docs]
        marks = "(" + ", ".join("?" * (1 + len(dates))) + ")"
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_sql("DELETE FROM {c}_fts WHERE rowid = ?", c), ids)
            conn.executemany(
                _sql(
                    "INSERT INTO {c}_fts (rowid, title, words, grams, tags) VALUES (?,?,?,?,?)", c
                ),
                rows,
            )
            conn.executemany(_sql("INSERT OR REPLACE INTO {c}_meta VALUES ", c) + marks, metas)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def delete(self, collection: str, ids: Sequence[int]) -> None:
        c = collection

        def tx(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_sql("DELETE FROM {c}_fts WHERE rowid = ?", c), [(i,) for i in ids])
            conn.executemany(_sql("DELETE FROM {c}_meta WHERE id = ?", c), [(i,) for i in ids])
            conn.execute("COMMIT")

        if ids:
            await self._run(self._writer, tx)

    async def term_stats(
        self, collection: str, words: Sequence[str], grams: Sequence[str]
    ) -> TermStats:
        return await self._run(
            self._readers, lambda c: self.term_stats_sync(c, collection, words, grams)
        )

    def term_stats_sync(
        self, conn: sqlite3.Connection, c: str, words: Sequence[str], grams: Sequence[str]
    ) -> TermStats:
        """Document frequencies counted up to DF_CAP (a term in more documents is common
        whatever its exact count) and cached for DF_TTL_S: terms recur from query to query."""
        now = time.monotonic()
        docs = self._cached(conn, c, "", "", now)
        out_w = {t: self._cached(conn, c, "{title words}", t, now) for t in words}
        out_g = {t: self._cached(conn, c, "{grams}", t, now) for t in grams}
        return TermStats(docs, out_w, out_g)

    def _cached(self, conn: sqlite3.Connection, c: str, cols: str, term: str, now: float) -> int:
        key = (c, cols, term)
        hit = self._df.get(key)
        if hit is not None and now - hit[1] < DF_TTL_S:
            return hit[0]
        if not term:
            n = int(conn.execute(_sql("SELECT count(*) FROM {c}_meta", c)).fetchone()[0])
        else:
            sql = _sql(
                "SELECT count(*) FROM (SELECT 1 FROM {c}_fts WHERE {c}_fts MATCH ? LIMIT ?)", c
            )
            n = int(conn.execute(sql, (f"{cols} : {_quote(term)}", DF_CAP)).fetchone()[0])
        if len(self._df) > DF_CACHE:
            self._df.clear()
        self._df[key] = (n, now)
        return n

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

    async def refresh(self, collection: str) -> None:
        return None  # committed writes are visible at once

    async def count(self, collection: str) -> int:
        return await self._run(
            self._readers,
            lambda conn: int(
                conn.execute(_sql("SELECT count(*) FROM {c}_meta", collection)).fetchone()[0]
            ),
        )

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
        if q.words:
            words = " OR ".join(_quote(w) for w in q.words)
            text.append(f"{{title words}} : ({words})")
        if q.grams:
            text.append(f"{{grams}} : ({' OR '.join(_quote(g) for g in q.grams)})")
        match = []
        if text:
            match.append("(" + " OR ".join(text) + ")")
        where: list[str] = []
        params: list[Any] = []
        for f in q.filters:
            kind = SCHEMAS[c][f.field]
            if kind is FieldType.DATE:
                if f.gte is not None:
                    where.append(
                        f"(m.{f.field} >= ?"
                        + (f" OR m.{f.field} IS NULL)" if f.missing_ok else ")")
                    )
                    params.append(f.gte.timestamp())
                if f.lte is not None:
                    where.append(
                        f"(m.{f.field} <= ?"
                        + (f" OR m.{f.field} IS NULL)" if f.missing_ok else ")")
                    )
                    params.append(f.lte.timestamp())
            else:
                alts = " OR ".join(_quote(tag(f.field, v)) for v in f.values) or '"-"'
                match.append(f"{{tags}} : ({alts})")
        if q.exclude:
            where.append(f"m.id NOT IN ({', '.join('?' * len(q.exclude))})")
            params.extend(q.exclude)
        if match:
            expr = " AND ".join(match)
            rank = "bm25({t}_fts, {title}, {words}, {grams}, 0.0)".format(t=c, **WEIGHTS)
            order = "rank" if text else f"m.{SORT_FIELD[c]} DESC"
            base = (
                f"FROM {c}_fts JOIN {c}_meta m ON m.id = {c}_fts.rowid "
                f"WHERE {c}_fts MATCH ?" + "".join(f" AND {w}" for w in where)
            )
            args = [expr, *params]
            sql = f"SELECT m.id, {rank} AS rank {base} ORDER BY {order} LIMIT ? OFFSET ?"
        else:
            base = f"FROM {c}_meta m" + (" WHERE " + " AND ".join(where) if where else "")
            args = list(params)
            sql = f"SELECT m.id, 0.0 {base} ORDER BY m.{SORT_FIELD[c]} DESC LIMIT ? OFFSET ?"
        rows = conn.execute(sql, [*args, q.limit, q.offset]).fetchall()
        hits = [Hit(int(r[0]), -float(r[1]) if r[1] else 0.0) for r in rows]
        if not q.with_total:
            return Result(hits, len(hits) + q.offset)
        counted = "SELECT count(*) FROM (SELECT 1 {base} LIMIT ?)".replace("{base}", base)
        total = conn.execute(counted, [*args, TOTAL_CAP + 1]).fetchone()[0]
        return Result(hits, min(total, TOTAL_CAP), total > TOTAL_CAP)
