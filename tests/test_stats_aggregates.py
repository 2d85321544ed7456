"""The aggregates kept in every order change's transaction equal a from-scratch recount, after a
random mix of lifecycle actions (merges, reopenings, re-dispatches, extensions, overdue clocks
fired by the watcher, corrections of kind and category), on SQLite and PostgreSQL; and the
rebuild reproduces them."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.config import Settings
from tests.test_store import NullPublisher
from tickets import stats_store
from tickets.db import Database
from tickets.errors import DomainError
from tickets.model import (
    CITIZEN,
    Actor,
    Caller,
    Channel,
    Kind,
    NewTicket,
    Role,
    Satisfaction,
    Status,
    Ticket,
    Urgency,
)
from tickets.service import TicketService

TZ = ZoneInfo("Asia/Shanghai")
DEPARTMENTS = ("150100-housing", "150100-urban", "150102-housing", "150200-ecology")
AGENT = Actor(Role.AGENT, 1, "话务员")
DISPATCHER = Actor(Role.DISPATCHER, 2, "派单员")
CATEGORIES = ("城乡建设", "环境保护", "交通运输", "")
REGIONS = ("150102", "150203", None)


class SteppingClock:
    """Time moves on by `step` per action, and jumps days when the test says so."""

    def __init__(self, start: datetime, step: timedelta = timedelta(minutes=7)) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now.astimezone(UTC)


def department(code: str) -> Actor:
    return Actor(Role.DEPARTMENT, 10, code, department=code)


def make_service(settings: Settings, db: Database, clock: SteppingClock) -> TicketService:
    from hotline.app import build_services
    from hotline.bus import InProcessBus

    app = build_services(settings, db, InProcessBus()).tickets
    return TicketService(
        db, app.directory, app.deadlines, NullPublisher(), clock=clock, timezone="Asia/Shanghai"
    )


Step = Callable[[TicketService, Ticket, random.Random], Awaitable[Any]]


async def _department_step(svc: TicketService, t: Ticket, rng: random.Random) -> Any:
    live = [a for a in t.assignments if a.active]
    if not live:
        return None
    a = rng.choice(live)
    actor = department(a.department)
    roll = rng.random()
    if a.state.value == "pending":
        if roll < 0.75:
            return await svc.sign(actor, t.id, t.version)
        if roll < 0.9:
            return await svc.return_(actor, t.id, t.version, "不属于本单位职责")
        return await svc.forward(actor, t.id, t.version, "150102-housing")
    if roll < 0.3 and a.role.value == "lead":
        until = max(datetime.now(UTC), a.reply_due or t.created_at) + timedelta(days=5)
        return await svc.request_extension(actor, t.id, t.version, until, "需现场勘查")
    if roll < 0.38:
        return await svc.return_(actor, t.id, t.version, "需其他单位办理")
    return await svc.reply(actor, t.id, t.version, "已现场处理，问题已解决。")


async def act(svc: TicketService, t: Ticket, rng: random.Random, masters: list[str]) -> Any:
    """One plausible action on `t` (illegal ones raise and are skipped by the caller)."""
    s = t.status
    roll = rng.random()
    if s is Status.NEW or s is Status.RETURNED or s is Status.REOPENED:
        if roll < 0.1 and masters:
            return await svc.merge(AGENT, t.id, t.version, rng.choice(masters))
        if roll < 0.2:
            return await svc.answer(AGENT, t.id, t.version, "已直接答复市民。")
        if roll < 0.3:
            changes = {"kind": rng.choice(list(Kind)).value, "category": [rng.choice(CATEGORIES)]}
            if not changes["category"][0]:
                changes.pop("category")
            return await svc.edit(AGENT, t.id, t.version, changes)
        lead = rng.choice(DEPARTMENTS)
        assists = [d for d in DEPARTMENTS if d != lead and rng.random() < 0.25][:1]
        return await svc.dispatch(DISPATCHER, t.id, t.version, lead, assists)
    if s in (Status.DISPATCHED, Status.ACCEPTED, Status.REWORK):
        asked = any(a.active and a.extension_state.value == "requested" for a in t.assignments)
        if asked and roll < 0.6:
            return await svc.decide_extension(DISPATCHER, t.id, t.version, rng.random() < 0.7)
        if roll < 0.12 and s is Status.DISPATCHED:
            return await svc.dispatch(DISPATCHER, t.id, t.version, rng.choice(DEPARTMENTS))
        return await _department_step(svc, t, rng)
    if s is Status.REPLIED:
        if roll < 0.3:
            return await svc.review(DISPATCHER, t.id, t.version, False, "答复不完整")
        return await svc.review(DISPATCHER, t.id, t.version, True)
    if s in (Status.ANSWERED, Status.REVIEWED):
        sat = rng.choice(list(Satisfaction))
        resolved = rng.choice([True, False, None])
        who = CITIZEN if rng.random() < 0.5 else AGENT
        return await svc.revisit(who, t.id, t.version, sat, None, resolved)
    if s is Status.REVISITED:
        if roll < 0.2:
            return await svc.reopen(AGENT, t.id, t.version, "市民再次来电反映")
        return await svc.close(AGENT, t.id, t.version)
    if s is Status.CLOSED and roll < 0.1:
        return await svc.reopen(AGENT, t.id, t.version, "问题复发")
    return None


async def drive(svc: TicketService, clock: SteppingClock, rng: random.Random, steps: int) -> None:
    ids: list[int] = []
    masters: list[str] = []
    for i in range(steps):
        if not ids or rng.random() < 0.2:
            t = await svc.submit(
                NewTicket(
                    rng.choice(list(Channel)),
                    f"第{i}号诉求：小区供暖不达标",
                    Caller(phone="13812345678"),
                    kind=rng.choice(list(Kind)),
                    urgency=rng.choice([Urgency.NORMAL] * 4 + [Urgency.URGENT]),
                    category=(rng.choice(CATEGORIES),) if rng.random() < 0.5 else (),
                    region=rng.choice(REGIONS),
                )
            )
            ids.append(t.id)
            if len(masters) < 3:
                masters.append(t.number)
            continue
        if rng.random() < 0.08:
            clock.now += timedelta(days=rng.choice([1, 2, 4, 9]))  # across weekends and limits
            await svc.fire_due_clocks(10_000)
            continue
        t = await svc.get(AGENT, rng.choice(ids))
        # an illegal pick (e.g. merging into a closed master) raises and writes nothing
        with contextlib.suppress(DomainError):
            await act(svc, t, rng, [m for m in masters if m != t.number])


def assert_aggregates_equal_recount(db: Database) -> None:
    kept = db.run_read(stats_store.read_cubes)
    fresh = db.run_read(lambda c: stats_store.recount(c, TZ))
    for name in fresh:
        assert kept[name] == fresh[name], name


# (filters, group by) that more than one cube can answer
QUERIES: list[tuple[dict[str, list[str]], tuple[str, ...]]] = [
    ({"region": ["150102", "150203"]}, ()),
    ({"region": ["150102"]}, ("channel",)),
    ({"department": ["150100-housing", "150102-housing"]}, ()),
    ({"department": ["150100-urban"]}, ("kind",)),
    ({"kind": ["complaint"]}, ("department",)),
    ({}, ("region",)),
    ({"channel": ["phone"]}, ("category",)),
]


def test_the_smallest_cube_with_a_usable_key_answers() -> None:
    def chosen(filters: set[str], group_by: tuple[str, ...]) -> str:
        return stats_store.choose_cube(filters, group_by).name

    assert chosen({"region"}, ()) == "rk"  # not rg: its category rows are ~7× as many
    assert chosen({"region"}, ("channel",)) == "rk"
    assert chosen({"region"}, ("category",)) == "rg"
    assert chosen({"department"}, ()) == "dd"  # not dp
    assert chosen({"department"}, ("category",)) == "dp"
    assert chosen({"kind"}, ("department",)) == "dk"  # its lead: channel and kind, as IN lists
    assert chosen(set(), ("region", "category")) == "rg"
    assert chosen(set(), ("channel",)) == "ck"


@pytest.mark.parametrize("seed", [1, 2])
async def test_aggregates_equal_a_recount_after_random_lifecycles(
    settings: Settings, database: Database, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SteppingClock(datetime(2026, 9, 28, 9, 0, tzinfo=TZ))  # into the National Day week
    svc = make_service(settings, database, clock)
    rng = random.Random(seed)
    await drive(svc, clock, rng, 260)
    assert_aggregates_equal_recount(database)
    # a quarter's rows hold what its three months hold (the rankings read quarters)
    from datetime import date

    from tickets.stats_store import CubeQuery, decompose

    def by_department(quarters: bool) -> Any:
        pieces = decompose(date(2026, 10, 1), date(2027, 1, 1), quarters=quarters)
        q = CubeQuery(pieces, {}, ("department",))
        return dict(database.run_read(lambda c: stats_store.sum_cube(c, q, stats_store.CUBES[0])))

    assert by_department(True) == by_department(False)
    # every cube that has a query's dimensions gives the same figures: which one is read
    # (tickets/stats_store.choose_cube) is a matter of speed only
    pieces = decompose(date(2026, 9, 28), date(2026, 11, 20))
    for filters, group_by in QUERIES:
        q = CubeQuery(pieces, filters, group_by, ("received", "concluded", "open"), by_period=True)
        answers = {
            cube.name: sorted(
                database.run_read(lambda c, q=q, cube=cube: stats_store.sum_cube(c, q, cube))
            )
            for cube in stats_store.CUBES
            if set(filters) | set(group_by) <= set(cube.dims)
        }
        assert len(answers) >= 2 and all(a == answers["dp"] for a in answers.values()), answers
        assert any(answers["dp"]), (filters, group_by)  # something was counted
    # and the rebuild (the CLI's and the migration's backfill) gives the same cubes, through
    # PostgreSQL's bulk path (COPY and one merge) for every batch
    monkeypatch.setattr(stats_store, "COPY_ABOVE", 0)
    before = database.run_read(stats_store.read_cubes)
    lo, hi = database.run_read(stats_store.id_bounds)

    def rebuild(c: Any) -> None:
        stats_store.clear(c)
        stats_store.rebuild_range(c, lo, hi + 1, TZ, datetime.now(UTC))

    database.run_write(rebuild)
    assert database.run_read(stats_store.read_cubes) == before


async def test_aggregates_equal_a_recount_when_writes_share_batches(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four drivers at once: the writer threads group their writes into batches, whose cube
    deltas are summed and written once at the batch's end (tickets/db.py defer), those of the
    writes that failed left out."""
    sums: list[int] = []
    apply_sum = stats_store._apply_sum

    def counting(conn: Any, accs: list[Any]) -> None:
        sums.append(len(accs))
        apply_sum(conn, accs)

    monkeypatch.setattr(stats_store, "_apply_sum", counting)
    clock = SteppingClock(datetime(2026, 9, 28, 9, 0, tzinfo=TZ))
    svc = make_service(settings, database, clock)
    await asyncio.gather(*(drive(svc, clock, random.Random(10 + k), 70) for k in range(4)))
    assert max(sums) > 1  # batches did share one sum
    assert_aggregates_equal_recount(database)


async def test_stats_rebuild_cli_recounts_what_the_hooks_kept(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hotline.cli import main
    from hotline.db import open_database
    from tests.conftest import make_settings

    settings = make_settings(sqlite_url)
    db = open_database(settings)
    try:
        clock = SteppingClock(datetime(2026, 1, 20, 9, 0, tzinfo=TZ))  # Spring Festival ahead
        await drive(make_service(settings, db, clock), clock, random.Random(5), 120)
        kept = db.run_read(stats_store.read_cubes)
    finally:
        db.close()
    monkeypatch.setenv("HOTLINE__DATABASE__URL", sqlite_url)
    assert main(["stats", "rebuild", "--batch", "7"]) == 0
    assert "统计汇总已重算" in capsys.readouterr().out
    db = open_database(settings)
    try:
        assert db.run_read(stats_store.read_cubes) == kept
    finally:
        db.close()


def test_series_read_their_cube_from_its_key_alone_on_postgresql(pg_server: Any) -> None:
    """On PostgreSQL the cubes that series, breakdowns and hot topics read keep `received` and
    `concluded` in their primary key (migration 0730, `Cube.covers`), so those sums are
    index-only scans: without it each row the key finds costs a heap page, and a league's year
    of weeks took ~3× as long at 1,000,000 orders (README, Statistics)."""
    from datetime import date

    import sqlalchemy as sa

    from hotline.db import open_database
    from tests.conftest import make_settings
    from tickets.stats_store import CubeQuery, decompose
    from tickets.stats_tables import COVERS, CUBES

    name = "covers"
    pg_server.create_database(name)
    db = open_database(make_settings(pg_server.url(name)))
    try:
        with db.engine.connect() as conn:
            for cube in CUBES:  # the migrated schema is the one the tables declare
                definition = conn.scalar(
                    sa.text("SELECT pg_get_indexdef(CAST(:i AS regclass))"),
                    {"i": f"pk_stats_{cube.name}"},
                )
                include = f" INCLUDE ({', '.join(cube.covers)})" if cube.covers else ""
                assert definition.endswith(f"({', '.join(cube.key)}){include}"), definition
        assert [c.name for c in CUBES if c.covers] == ["ck", "rk", "rg", "dp"]
        statements: list[tuple[str, Any]] = []

        def seen(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            statements.append((statement, params))

        pieces = decompose(date(2026, 1, 5), date(2026, 12, 27))  # weeks, as the series read
        for cube in CUBES:
            if not cube.covers:
                continue
            filters = {d: ["x"] for d in cube.lead}
            q = CubeQuery(pieces, filters, (), COVERS, by_period=True)
            statements.clear()
            sa.event.listen(db.engine, "before_cursor_execute", seen)
            try:
                db.run_read(lambda c, q=q, cube=cube: stats_store.sum_cube(c, q, cube))
            finally:
                sa.event.remove(db.engine, "before_cursor_execute", seen)
            assert statements
            with db.engine.connect() as conn:
                # an empty table would be read sequentially: ask for the plan an index allows
                conn.exec_driver_sql("SET enable_seqscan = off")
                conn.exec_driver_sql("SET enable_bitmapscan = off")
                for statement, params in statements:
                    plan = "\n".join(
                        r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params)
                    )
                    assert f"Index Only Scan using pk_stats_{cube.name}" in plan, plan
    finally:
        db.close()
        pg_server.drop_database(name)
