"""The SQL store: migrations, append-only audit table, daily numbers, UTC times, group commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

import telephony.tables  # noqa: F401 - registers the calls table in the shared metadata
from agent_ui.tables import metadata as accounts_metadata
from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import MIGRATIONS, downgrade, upgrade
from tickets.db import Database
from tickets.model import Actor, Caller, Channel, NewTicket, Role, TicketEvent
from tickets.service import TicketService, utcnow
from tickets.tables import UTCDateTime, events, numbers, tickets
from tickets.tables import metadata as tickets_metadata

PHONE = "13812345678"
SCHEMA = {
    "tickets",
    "ticket_assignments",
    "ticket_events",
    "ticket_numbers",
    "users",
    "sessions",
    "calls",
    "sms_inbox",
    "sms_outbox",
    "sms_blocklist",
    "sms_optout",
    "work_queue",
}


class NullPublisher:
    async def publish(self, events: Sequence[TicketEvent]) -> None:
        return None


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_service(
    settings: Settings,
    db: Database,
    clock: Callable[[], datetime] = utcnow,
    zone: str | None = None,
) -> TicketService:
    """The app's ticket service (directory and time limits from the composition root)."""
    app = build_services(settings, db, InProcessBus()).tickets
    return TicketService(
        db,
        app.directory,
        app.deadlines,
        NullPublisher(),
        clock=clock,
        timezone=zone or settings.locale.timezone,
    )


def request(content: str = "噪音扰民") -> NewTicket:
    return NewTicket(Channel.WEB, content, Caller(phone=PHONE))


@pytest.fixture
def bare_db(db_url: str) -> Iterator[Database]:
    """A Database on an empty schema: the test runs the migrations itself."""
    db = Database(db_url)
    try:
        yield db
    finally:
        db.close()


@pytest.fixture
def fresh_engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine of its own: a new connection that shares nothing with the app's pool."""
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


# -- migrations ---------------------------------------------------------------------------------
def head_revision() -> str:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def table_names(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def assert_schema_matches_tables(db: Database) -> None:
    """The migrations build exactly the columns and indexes tickets/ and agent_ui/ declare."""
    inspector = sa.inspect(db.engine)
    for metadata in (tickets_metadata, accounts_metadata):
        for table in metadata.sorted_tables:
            got = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            want = {c.name: c.nullable for c in table.columns}
            assert got == want, table.name
            got_indexes = {i["name"] for i in inspector.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= got_indexes, table.name
    version = db.run_read(
        lambda c: c.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    )
    assert version == [head_revision()]


def test_migrations_upgrade_downgrade_upgrade(bare_db: Database, settings: Settings) -> None:
    assert table_names(bare_db) == set()
    upgrade(bare_db)
    built = table_names(bare_db)
    assert SCHEMA | {"alembic_version"} <= built
    assert_schema_matches_tables(bare_db)

    downgrade(bare_db, "base")
    assert table_names(bare_db) == {"alembic_version"}
    count = sa.text("SELECT count(*) FROM alembic_version")
    assert bare_db.run_read(lambda c: c.execute(count).scalar_one()) == 0

    upgrade(bare_db)
    assert table_names(bare_db) == built
    assert_schema_matches_tables(bare_db)
    # the rebuilt schema works, append-only trigger included
    service = make_service(settings, bare_db)
    ticket = asyncio.run(service.submit(request()))
    assert ticket.number.endswith("000001")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        bare_db.run_write(lambda c: c.execute(events.delete()))


def test_upgrade_twice_is_a_no_op(bare_db: Database) -> None:
    upgrade(bare_db)
    built = table_names(bare_db)
    upgrade(bare_db)
    assert table_names(bare_db) == built
    assert_schema_matches_tables(bare_db)


# -- the audit trail is append-only in the database itself --------------------------------------
async def test_ticket_events_refuse_update_and_delete(
    settings: Settings, database: Database
) -> None:
    service = make_service(settings, database)
    desk = Actor(Role.DISPATCHER, 7, "派单员")
    t = await service.submit(request())
    await service.dispatch(desk, t.id, t.version, lead="150100-housing")

    def snapshot(c: Connection) -> list[tuple[Any, ...]]:
        rows = c.execute(sa.select(events).order_by(events.c.id)).all()
        return [tuple(r) for r in rows]

    before = database.run_read(snapshot)
    assert [r.action for r in database.run_read(lambda c: c.execute(sa.select(events)).all())] == [
        "create",
        "dispatch",
    ]
    attempts: list[Callable[[Connection], Any]] = [
        lambda c: c.execute(events.update().values(reason="篡改")),
        lambda c: c.execute(events.update().where(events.c.action == "dispatch").values(new={})),
        lambda c: c.execute(events.delete()),
        lambda c: c.execute(events.delete().where(events.c.action == "create")),
        lambda c: c.execute(sa.text("UPDATE ticket_events SET actor_name = 'x'")),
        lambda c: c.execute(sa.text("DELETE FROM ticket_events")),
    ]
    if database.engine.dialect.name == "postgresql":
        attempts.append(lambda c: c.execute(sa.text("TRUNCATE ticket_events")))
    for attempt in attempts:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            database.run_write(attempt)
    # and through the group-commit writer, as the app writes
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await database.write(lambda c: c.execute(events.delete()))
    assert database.run_read(snapshot) == before
    # appending still works
    await service.urge(desk, t.id, t.version + 1)
    assert len(database.run_read(snapshot)) == 3


# -- daily numbers on the local (Asia/Shanghai) date --------------------------------------------
async def test_daily_sequence_restarts_at_local_midnight(
    settings: Settings, database: Database
) -> None:
    clock = Clock(datetime(2026, 11, 27, 15, 59, 59, tzinfo=UTC))  # 23:59:59 in Shanghai
    service = make_service(settings, database, clock)
    first = await service.submit(request())
    second = await service.submit(request())
    clock.now = datetime(2026, 11, 27, 16, 0, 1, tzinfo=UTC)  # 00:00:01 on the 28th
    third = await service.submit(request())
    fourth = await service.submit(request())
    clock.now = datetime(2026, 11, 27, 15, 59, 59, 500000, tzinfo=UTC)  # a late one for the 27th
    late = await service.submit(request())

    assert [t.number for t in (first, second, third, fourth, late)] == [
        "20261127000001",
        "20261127000002",
        "20261128000001",
        "20261128000002",
        "20261127000003",
    ]
    assert first.created_at == datetime(2026, 11, 27, 15, 59, 59, tzinfo=UTC)
    assert third.created_at == datetime(2026, 11, 27, 16, 0, 1, tzinfo=UTC)
    assert late.created_at == datetime(2026, 11, 27, 15, 59, 59, 500000, tzinfo=UTC)
    rows = database.run_read(lambda c: c.execute(sa.select(numbers).order_by(numbers.c.day)).all())
    assert [tuple(r) for r in rows] == [("20261127", 3), ("20261128", 2)]


async def test_daily_sequence_follows_the_configured_timezone(
    settings: Settings, database: Database
) -> None:
    clock = Clock(datetime(2026, 11, 27, 16, 0, 1, tzinfo=UTC))
    service = make_service(settings, database, clock, zone="UTC")
    assert (await service.submit(request())).number == "20261127000001"


# -- UTC in storage -----------------------------------------------------------------------------
def test_utc_datetime_refuses_naive_and_normalises_aware() -> None:
    column = UTCDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(datetime(2026, 11, 27, 12, 0), dialect)
    beijing = datetime(2026, 11, 28, 0, 0, 1, tzinfo=timezone(timedelta(hours=8)))
    assert column.process_bind_param(beijing, dialect) == datetime(2026, 11, 27, 16, 0, 1)
    assert column.process_bind_param(None, dialect) is None
    back = column.process_result_value(datetime(2026, 11, 27, 16, 0, 1), dialect)
    assert back == beijing
    assert back is not None and back.tzinfo is UTC


async def test_naive_time_is_refused_and_nothing_is_kept(
    settings: Settings, database: Database
) -> None:
    clock = Clock(datetime(2026, 11, 27, 12, 0))  # naive: a bug in the caller
    service = make_service(settings, database, clock)
    with pytest.raises(ValueError, match="naive"):
        await service.submit(request())
    assert (
        database.run_read(
            lambda c: c.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one()
        )
        == 0
    )
    assert database.run_read(lambda c: c.execute(sa.select(numbers)).all()) == []

    clock.now = datetime(2026, 11, 28, 0, 0, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
    t = await service.submit(request())
    assert t.number == "20261128000001"  # the failed one took no number
    stored = await service.get(Actor(Role.DISPATCHER, 1, "派单员"), t.id)
    assert stored.created_at == datetime(2026, 11, 27, 16, 0, 1, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC


# -- the group-commit writer ------------------------------------------------------------------
@pytest.fixture
def one_writer(db_url: str) -> Iterator[Database]:
    """One writer thread, so a batch is predictable on PostgreSQL too."""
    db = Database(db_url, writers=1)
    upgrade(db)
    try:
        yield db
    finally:
        db.close()


class Boom(Exception):
    pass


async def test_group_commit_keeps_the_other_jobs_of_a_batch(
    one_writer: Database, fresh_engine: sa.Engine
) -> None:
    db = one_writer
    db.run_write(lambda c: c.execute(numbers.insert().values(day="TAKEN", last=0)))
    started, release = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> str:
        started.set()
        release.wait(60)
        return "blocker"

    first = asyncio.ensure_future(db.write(blocker))
    assert await asyncio.to_thread(started.wait, 60)  # the writer thread is busy now

    seen: list[tuple[int, bool]] = []

    def job(i: int) -> Callable[[Connection], int]:
        def fn(conn: Connection) -> int:
            seen.append((id(conn), conn.in_nested_transaction()))
            conn.execute(numbers.insert().values(day=f"J{i:05d}", last=i))
            if i % 4 == 1:
                raise Boom(f"job {i}")
            if i % 4 == 2:  # a database error: the primary key is taken
                conn.execute(numbers.insert().values(day="TAKEN", last=i))
            return i

        return fn

    jobs = [asyncio.ensure_future(db.write(job(i))) for i in range(24)]
    await asyncio.sleep(0)  # one loop turn: every job is queued behind the blocker
    release.set()
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert await first == "blocker"

    # all 24 ran in one batch (one connection, each in its own savepoint)
    assert len(seen) == 24
    assert len({conn for conn, _ in seen}) == 1
    assert all(nested for _, nested in seen)
    for i, result in enumerate(results):
        if i % 4 == 1:
            assert isinstance(result, Boom) and str(result) == f"job {i}"
        elif i % 4 == 2:
            assert isinstance(result, sa.exc.IntegrityError), result
        else:
            assert result == i
    kept = [i for i in range(24) if i % 4 in (0, 3)]
    with fresh_engine.connect() as conn:
        rows = conn.execute(sa.select(numbers).order_by(numbers.c.day)).all()
    assert [tuple(r) for r in rows] == [(f"J{i:05d}", i) for i in kept] + [("TAKEN", 0)]


async def test_failed_single_write_leaves_nothing_and_the_writer_carries_on(
    one_writer: Database, fresh_engine: sa.Engine
) -> None:
    def failing(conn: Connection) -> None:
        conn.execute(numbers.insert().values(day="GONE", last=1))
        raise Boom("single")

    with pytest.raises(Boom):
        await one_writer.write(failing)

    def kept(conn: Connection) -> str:
        conn.execute(numbers.insert().values(day="KEPT", last=2))
        return "ok"

    assert await one_writer.write(kept) == "ok"
    with fresh_engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.select(numbers)).all()] == [("KEPT", 2)]


async def test_acknowledged_write_is_visible_from_a_new_connection(
    settings: Settings, database: Database, fresh_engine: sa.Engine
) -> None:
    service = make_service(settings, database)
    many = await asyncio.gather(*(service.submit(request(f"诉求{i}")) for i in range(30)))
    with fresh_engine.connect() as conn:
        stored = conn.execute(
            sa.select(tickets.c.number, tickets.c.status).order_by(tickets.c.number)
        ).all()
        created = conn.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.action == "create")
        ).scalar_one()
    assert [tuple(r) for r in stored] == sorted((t.number, "new") for t in many)
    assert created == 30


async def test_write_after_close_is_refused(db_url: str) -> None:
    db = Database(db_url)
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        await db.write(lambda c: None)


def test_postgres_sessions_run_without_jit_unless_configured(pg_server: Any) -> None:
    """The platform's PostgreSQL sessions turn JIT compilation off (it slowed the statistics'
    reads); `[database] postgres_jit = true` leaves the server's default (on)."""
    pg_server.create_database("jit")
    show = "SHOW jit"
    try:
        for jit, expected in ((False, "off"), (True, "on")):
            db = Database(pg_server.url("jit"), postgres_jit=jit)
            try:
                # the session's first transaction fails and is rolled back: the setting stays
                with pytest.raises(sa.exc.DBAPIError):
                    db.run_read(lambda c: c.exec_driver_sql("SELECT 1 / 0").scalar_one())
                assert db.run_read(lambda c: c.exec_driver_sql(show).scalar_one()) == expected
            finally:
                db.close()
    finally:
        pg_server.drop_database("jit")
