"""Database engine and the two ways to use it from asyncio: parallel reads, group-committed writes.

Writes go through writer threads that take a batch of queued jobs, run each in its own SAVEPOINT
inside one transaction and commit once. A job's future resolves only after that commit, so a
request acknowledged to a client is already on disk (SQLite WAL with synchronous=FULL, or
PostgreSQL's commit). One SQLite writer thread also means no lock contention inside the process;
BEGIN IMMEDIATE makes other processes (the CLI) wait on busy_timeout instead of failing.
Updates of rows that every write touches (the statistics cubes) are handed to the end of the
batch (`defer`): summed, written once, in one order in every process. A batch that PostgreSQL
aborts as a deadlock victim is rolled back whole and run again.

When the database is away (PostgreSQL down or restarting, SQLite's disk full or locked too
long), read() and write() raise DatabaseUnavailable (a 503 for the web layer) instead of the
driver's error, and the outage is logged twice: once when it starts, once when it ends.
Nothing is acknowledged that was not committed: a write's future resolves only after COMMIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from tickets.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def create_db_engine(
    url: str, *, pool_size: int = 8, echo: bool = False, postgres_jit: bool = False
) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            echo=echo,
            pool_size=pool_size + 2,
            max_overflow=4,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        _sqlite_pragmas(engine)
        return engine
    engine = sa.create_engine(
        url,
        echo=echo,
        pool_size=pool_size + 2,
        max_overflow=4,
        pool_pre_ping=True,  # after an outage, dead pooled connections are replaced
        pool_timeout=POOL_TIMEOUT_S,
        # an unreachable host (packets dropped, not refused) fails in seconds, not minutes
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    if not postgres_jit:
        _no_jit(engine)
    return engine


def _no_jit(engine: Engine) -> None:
    """PostgreSQL compiles a query it estimates as costly (the statistics' aggregate reads at
    a million orders) before running it; on these short reads the compilation costs more than
    it saves (bench/stats.py at 1,000,000 orders: 10–20 % off most aggregate rows with it
    off). Off for the platform's own sessions, whatever the server's default."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET jit = off")
        dbapi_conn.commit()  # a SET in a transaction rolled back would be undone with it


CONNECT_TIMEOUT_S = 5
POOL_TIMEOUT_S = 10
# SQLite's operational errors that mean "not now" rather than a bug in a statement
_SQLITE_OUTAGE = ("locked", "busy", "disk i/o", "disk is full", "unable to open", "readonly")
_MESSAGE = "数据库暂时不可用，请稍后重试"


def is_outage(exc: BaseException) -> bool:
    """True for errors that say the database is away or cannot take the work just now (a
    refused or lost connection, an administrator's shutdown, a pool with no connection to
    give, a locked or full SQLite file), as opposed to a bad statement or a constraint."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig).lower()
        return any(word in text for word in _SQLITE_OUTAGE)
    if isinstance(exc, sa_exc.OperationalError):
        return True  # PostgreSQL: connection refused or lost, shutting down, starting up
    return type(orig).__module__.startswith("psycopg") and type(orig).__name__ in (
        "OperationalError",
        "InterfaceError",
    )


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # take transaction control from pysqlite so BEGIN IMMEDIATE and SAVEPOINT work
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("sqlite_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop | None
    future: Any  # asyncio.Future or concurrent.futures.Future


_STOP = object()


class Database:
    """Owns the engine, a read pool and the writer threads."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        write_batch: int = 64,
        writers: int | None = None,
        echo: bool = False,
        postgres_jit: bool = False,
    ) -> None:
        self.url = url
        self.engine = create_db_engine(
            url, pool_size=pool_size, echo=echo, postgres_jit=postgres_jit
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_batch = write_batch
        self._readers = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="db-read")
        self._queue: queue.Queue[Any] = queue.Queue()
        n = 1 if self.is_sqlite else (writers or 2)
        self._writers = [
            threading.Thread(target=self._writer_loop, name=f"db-write-{i}", daemon=True)
            for i in range(n)
        ]
        for t in self._writers:
            t.start()
        self._closed = False
        self._down_since: float | None = None  # monotonic time the current outage began
        self._last_failure = 0.0
        self._health: tuple[float, bool] | None = None  # (checked at, reachable)
        self._health_lock: asyncio.Lock | None = None

    # -- asyncio side -------------------------------------------------------------------------
    async def read(self, fn: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._readers, self.run_read, fn)
        except Exception as exc:
            if is_outage(exc):
                raise self._outage(exc) from exc
            raise
        self._reachable()
        return result

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a write transaction; returns after the commit is durable."""
        if self._closed:
            raise RuntimeError("database closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, loop, fut))
        try:
            result = await fut
        except Exception as exc:
            if is_outage(exc):
                raise self._outage(exc) from exc
            raise
        self._reachable()
        return result

    @property
    def unavailable(self) -> bool:
        """True from the first failure of an outage until the database has answered again."""
        return self._down_since is not None

    async def ping(self, timeout_s: float = 2.0, max_age_s: float = 1.0) -> bool:
        """Is the database reachable (a SELECT 1 within `timeout_s`)? The answer is kept for
        `max_age_s`, and one check runs at a time, so health probes cost next to nothing."""
        if self._health is not None and time.monotonic() - self._health[0] < max_age_s:
            return self._health[1]
        if self._health_lock is None:
            self._health_lock = asyncio.Lock()
        async with self._health_lock:
            if self._health is not None and time.monotonic() - self._health[0] < max_age_s:
                return self._health[1]
            try:
                async with asyncio.timeout(timeout_s):
                    await self.read(lambda c: c.execute(sa.select(1)).scalar_one())
                ok = not self.unavailable  # writes may still fail (a full disk)
            except (DatabaseUnavailable, TimeoutError):
                ok = False
            self._health = (time.monotonic(), ok)
            return ok

    def _outage(self, exc: Exception) -> DatabaseUnavailable:
        """The error to raise for an outage; logged when the outage starts, not per request."""
        now = time.monotonic()
        self._last_failure = now
        if self._down_since is None:
            self._down_since = now
            self._health = None
            log.error(
                "数据库不可用，请求答 503 直到恢复（其间不再逐条记录）: %s: %s",
                type(exc).__name__,
                _first_line(exc),
            )
        return DatabaseUnavailable(_MESSAGE)

    def _reachable(self) -> None:
        # a success right after a failure may be a read while writes still fail (a full
        # disk): the outage ends after a second without failures
        if self._down_since is None or time.monotonic() - self._last_failure < 1.0:
            return
        log.warning("数据库已恢复（不可用约 %.0f 秒）", time.monotonic() - self._down_since)
        self._down_since = None
        self._health = None

    # -- synchronous side (CLI, tests, benchmarks) ----------------------------------------------
    def run_read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn, conn.begin():
            return fn(conn)

    def run_write(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect().execution_options(sqlite_write=True) as conn, conn.begin():
            return fn(conn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._writers:
            self._queue.put(_STOP)
        for t in self._writers:
            t.join(timeout=30)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    # -- writer thread ------------------------------------------------------------------------
    def _writer_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch: list[_Job] = [item]
            stop = False
            while len(batch) < self._write_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job], attempt: int = 1) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with (
                self.engine.connect().execution_options(sqlite_write=True) as conn,
                conn.begin(),
                _deferring(conn) as deferred,
            ):
                for job in batch:
                    if len(batch) == 1:
                        outcomes.append((True, job.fn(conn)))
                        deferred.job_done(True)
                        continue
                    sp = conn.begin_nested()
                    try:
                        result = job.fn(conn)
                    except Exception as exc:
                        if _transient(exc):
                            raise  # the whole transaction goes: see below
                        sp.rollback()
                        deferred.job_done(False)
                        outcomes.append((False, exc))
                    else:
                        sp.commit()
                        deferred.job_done(True)
                        outcomes.append((True, result))
                deferred.flush(conn)
        except Exception as exc:  # a deadlock, the single job failed, or the commit itself
            log.debug("write batch of %d failed: %r", len(batch), exc)
            if _transient(exc) and attempt < _ATTEMPTS:
                # PostgreSQL chose this transaction as a deadlock victim (another process's
                # batch locked the same rows in another order). Rolling back only the job's
                # savepoint would keep the locks the batch's earlier jobs took, which are part
                # of the cycle: every later job touching those rows would be chosen again, a
                # deadlock_timeout (1 s) each, while the other batch waits. So the whole
                # transaction is rolled back, which lets the other one finish, and runs again.
                self._run_batch(batch, attempt + 1)
                return
            if len(batch) > 1:
                # nothing of the batch is stored (commit or savepoint failed): retry one by one
                for job in batch:
                    self._run_batch([job])
                return
            outcomes = [(False, exc)]
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            _resolve(job, ok, value)


_ATTEMPTS = 5  # runs of a batch (or of one write) chosen as a deadlock victim again and again

Flush = Callable[[Connection, list[Any]], None]
_DEFERRED = "hotline_deferred"  # the conn.info key of the running write batch's _Deferred


class _Deferred:
    """What the jobs of a write batch hand to its end (`defer`): kept per job until the job's
    savepoint is released, dropped with a job that failed."""

    def __init__(self) -> None:
        self.kept: dict[str, tuple[Flush, list[Any]]] = {}
        self.job: list[tuple[str, Flush, Any]] = []

    def job_done(self, ok: bool) -> None:
        if ok:
            for key, flush, item in self.job:
                self.kept.setdefault(key, (flush, []))[1].append(item)
        self.job = []

    def flush(self, conn: Connection) -> None:
        for key in sorted(self.kept):  # one order in every process
            flush, items = self.kept[key]
            flush(conn, items)


@contextlib.contextmanager
def _deferring(conn: Connection) -> Iterator[_Deferred]:
    deferred = conn.info[_DEFERRED] = _Deferred()
    try:
        yield deferred
    finally:
        conn.info.pop(_DEFERRED, None)


def defer(conn: Connection, key: str, flush: Flush, item: Any) -> bool:
    """Inside a write batch (Database.write): hand `item` to `flush`, which runs once, at the
    end of the batch's transaction, with the items of every job of the batch that succeeded,
    in their order, and is then the last thing the transaction locks. For the hot rows every
    write updates (the statistics cubes): one upsert per row and batch instead of one per
    write, and one lock order in every process, so two processes' batches cannot deadlock on
    them. Returns False outside a batch (run_write, the CLI): the caller does the work now."""
    deferred: _Deferred | None = conn.info.get(_DEFERRED)
    if deferred is None:
        return False
    deferred.job.append((key, flush, item))
    return True


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


def _transient(exc: BaseException) -> bool:
    """Deadlock detected (40P01) or serialization failure (40001): safe to retry whole."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) in ("40P01", "40001")


def _resolve(job: _Job, ok: bool, value: Any) -> None:
    def settle() -> None:
        if job.future.done():
            return
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)

    if job.loop is None:
        settle()
    elif not job.loop.is_closed():
        job.loop.call_soon_threadsafe(settle)
