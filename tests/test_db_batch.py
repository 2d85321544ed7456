"""Work a write batch's jobs hand to its end (tickets.db.defer): kept only for the jobs that
succeeded, run once before the commit, and a failure there fails nothing it should not; on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
import sqlalchemy as sa

from tickets.db import Database, _Job, defer


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url, writers=1)
    database.run_write(lambda c: c.exec_driver_sql("CREATE TABLE seen (item text)"))
    try:
        yield database
    finally:
        database.close()


flushes: list[list[Any]] = []


def record(conn: Any, items: list[Any]) -> None:
    flushes.append(list(items))
    for item in items:
        conn.execute(sa.text("INSERT INTO seen VALUES (:i)"), {"i": item})


def deferring(item: str, fail: BaseException | None = None) -> Any:
    def fn(conn: Any) -> str:
        assert defer(conn, "seen", record, item)
        if fail is not None:
            raise fail
        return item

    return fn


def run_batch(db: Database, *fns: Any) -> list[Any]:
    """Run `fns` as one write batch; each one's result or exception."""
    batch = [_Job(fn, None, Future()) for fn in fns]
    db._run_batch(batch)  # what the writer thread runs for queued writes
    return [j.future.exception(10) or j.future.result(10) for j in batch]


def stored(db: Database) -> list[str]:
    return sorted(db.run_read(lambda c: c.exec_driver_sql("SELECT item FROM seen").scalars().all()))


def test_a_batch_flushes_once_what_its_succeeded_jobs_deferred(db: Database) -> None:
    flushes.clear()
    bad = ValueError("illegal")
    assert run_batch(db, deferring("a"), deferring("b", bad), deferring("c")) == ["a", bad, "c"]
    assert flushes == [["a", "c"]]  # once, in the jobs' order, without the failed job's
    assert stored(db) == ["a", "c"]


def test_a_single_write_defers_too(db: Database) -> None:
    flushes.clear()
    assert run_batch(db, deferring("a")) == ["a"]
    bad = ValueError("illegal")
    assert run_batch(db, deferring("b", bad)) == [bad]
    assert flushes == [["a"]]
    assert stored(db) == ["a"]


def test_outside_a_batch_the_caller_does_the_work(db: Database) -> None:
    assert db.run_write(lambda c: defer(c, "seen", record, "x")) is False


def test_a_failing_flush_runs_the_batch_one_by_one(db: Database) -> None:
    """A flush that fails for one job's item (here: a NOT NULL) fails that job only."""
    db.run_write(lambda c: c.exec_driver_sql("CREATE TABLE strict (item text NOT NULL)"))

    def strict(conn: Any, items: list[Any]) -> None:
        for item in items:
            conn.execute(sa.text("INSERT INTO strict VALUES (:i)"), {"i": item})

    def fn(item: str | None) -> Any:
        def job(conn: Any) -> str | None:
            defer(conn, "strict", strict, item)
            return item

        return job

    out = run_batch(db, fn("a"), fn(None), fn("c"))
    assert out[0] == "a" and out[2] == "c"
    assert isinstance(out[1], sa.exc.IntegrityError)
    rows = db.run_read(lambda c: c.exec_driver_sql("SELECT item FROM strict").scalars().all())
    assert sorted(rows) == ["a", "c"]
