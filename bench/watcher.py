#!/usr/bin/env python3
"""Deadline watcher at scale: one pass over the clocks of a million open orders, timed.

1. builds a database (a temp SQLite file by default, or a throwaway durable PostgreSQL from
   tests/pgserver.py with --postgres), migrated with hotline.db.upgrade;
2. fills it with --orders open orders (default 1,000,000), each dispatched to one department
   (待签收) with its running sign (签收) and reply (办结) clocks in ticket_clocks: warnings spread
   over the next two days (sign) and four weeks (reply), the warning at [sla] warn_ratio of the
   limit. --due of the clocks (default 1000), picked at random, are already due at the chosen
   "now": about half at their warning point, half past their deadline. The fill (SQLAlchemy Core
   executemany on SQLite, COPY on PostgreSQL, --chunk orders per transaction; then VACUUM
   ANALYZE on PostgreSQL, as autovacuum would, and a checkpoint) is timed and printed
   separately: it is not what is measured. SQLite gets no ANALYZE, since the app never runs
   one;
3. with the TicketService of hotline.app.build_services, its clock set to "now", measures
   - one watcher pass, DeadlineWatcher(service, batch=--batch).run_once(): time, clocks fired,
     fired/s;
   - idle passes once nothing is due (median of --idle-repeats): about constant however many
     orders are open, because the due-clocks query reads the partial index ix_clocks_next;
   - the plan of the due-clocks query exactly as the watcher sent it (EXPLAIN QUERY PLAN on
     SQLite, EXPLAIN on PostgreSQL);
4. verifies that exactly the --due chosen clocks changed state (to warned or overdue as
   planned), one event was written and published per fired clock, overdue sign clocks urged
   (催办) and overdue reply clocks supervised (督办) their orders, and a second pass fires 0.

Prints a human-readable block and then ONE JSON line: backend, orders, clocks, due, fill_s,
pass_s, fired, fired_per_s, idle_pass_ms (median), idle_pass_ms_max, plan (lines),
index_used, verified. Exit status 1 if the verification fails.

Run from the repository root:

    .venv/bin/python bench/watcher.py [--postgres] [--orders 1000000] [--due 1000]
    .venv/bin/python bench/watcher.py --orders 100000 --due 5000 --batch 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from _common import REPO_ROOT, bench_workdir, database_url_for, random_mobile
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings, load_settings
from hotline.db import open_database, upgrade
from routing.directory import Department, Level
from routing.watcher import DeadlineWatcher
from tickets.db import Database, create_db_engine
from tickets.model import (
    AssignmentRole,
    AssignmentState,
    Channel,
    ClockKind,
    ClockState,
    ExtensionState,
    Kind,
    Status,
    Urgency,
)
from tickets.tables import UTCDateTime, assignments, clocks, events, numbers, tickets

Row = tuple[Any, ...]
Chunk = list[tuple[sa.Table, tuple[str, ...], list[Row]]]

# a Tuesday morning in a working week, so the numbers of the orders look like a real week's
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
SIGN_HORIZON_S = 2 * 86400
REPLY_HORIZON_S = 28 * 86400
ORDERS_PER_DAY = 150_000  # sets the span of creation times, hence the daily order numbers

TICKET_COLS = (
    "id", "number", "version", "status", "channel", "kind", "urgency", "title", "content",
    "category", "region", "address", "language", "caller_name", "caller_phone",
    "caller_confidential", "attachments", "supervised", "urge_count", "rework_count",
    "reply_due", "created_at", "updated_at",
)  # fmt: skip
ASSIGNMENT_COLS = (
    "id", "ticket_id", "department", "role", "state", "created_at", "sign_due", "reply_due",
    "extension_state",
)  # fmt: skip
CLOCK_COLS = (
    "id", "ticket_id", "assignment_id", "clock", "state", "start_at", "warn_at", "due_at",
    "next_at",
)  # fmt: skip

SUBJECTS = (
    ("小区供暖温度不达标", "城乡建设"),
    ("道路施工噪音扰民", "生态环境"),
    ("物业违规收取停车费", "物业管理"),
    ("公交线路调整后出行不便", "交通运输"),
    ("农民工工资被拖欠", "劳动保障"),
    ("楼道堆放杂物存在消防隐患", "应急管理"),
    ("自来水水质浑浊", "供水"),
    ("路灯损坏多日无人维修", "市政设施"),
)
STREETS = ("新华大街", "中山路", "昭君路", "钢铁大街", "鄂尔多斯大街", "锡林大街", "民族街")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋"
CHANNELS = (Channel.PHONE, Channel.WEB, Channel.SMS, Channel.WALK_IN)
CHANNEL_WEIGHTS = (70, 20, 6, 4)
KINDS = tuple(Kind)
URGENCIES = (Urgency.NORMAL, Urgency.URGENT, Urgency.EMERGENCY)
URGENCY_WEIGHTS = (90, 8, 2)


# -- the synthetic population -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Population:
    """Orders 1..N; order i has assignment i, sign clock 2i-1 and reply clock 2i."""

    orders: int
    now: datetime
    warning: frozenset[int]  # clock ids due at their warning point
    overdue: frozenset[int]  # clock ids past their deadline

    @property
    def clocks(self) -> int:
        return 2 * self.orders

    @property
    def due(self) -> int:
        return len(self.warning) + len(self.overdue)


def choose_population(orders: int, due: int, now: datetime, rng: random.Random) -> Population:
    chosen = rng.sample(range(1, 2 * orders + 1), due)
    return Population(orders, now, frozenset(chosen[1::2]), frozenset(chosen[::2]))


class OrderFactory:
    """Rows of open orders in creation order, oldest first, numbered per local day."""

    def __init__(
        self,
        pop: Population,
        departments: Sequence[Department],
        warn_ratio: float,
        tz: ZoneInfo,
        rng: random.Random,
    ) -> None:
        self.pop = pop
        self.departments = departments
        self.ratio = warn_ratio
        self.tz = tz
        self.rng = rng
        span = timedelta(days=max(7, -(-pop.orders // ORDERS_PER_DAY)))
        self.first = pop.now - span
        # the newest order is an hour old, so its dispatch (≤ 30 min later) is in the past
        self.step = (span - timedelta(hours=1)) / pop.orders
        self.last_number: dict[str, int] = {}

    def chunk(self, lo: int, hi: int) -> Chunk:
        """Orders lo..hi-1 (1-based ids) as rows of tickets, assignments and clocks."""
        rng = self.rng
        ticket_rows: list[Row] = []
        assignment_rows: list[Row] = []
        clock_rows: list[Row] = []
        pending, running = AssignmentState.PENDING.value, ClockState.RUNNING.value
        sign, reply = ClockKind.SIGN.value, ClockKind.REPLY.value
        for i in range(lo, hi):
            created = self.first + self.step * (i - 1)
            dispatched = created + timedelta(seconds=rng.randint(60, 1800))
            day = created.astimezone(self.tz).strftime("%Y%m%d")
            seq = self.last_number[day] = self.last_number.get(day, 0) + 1
            sign_warn, sign_due = self._times(dispatched, 2 * i - 1, SIGN_HORIZON_S)
            reply_warn, reply_due = self._times(created, 2 * i, REPLY_HORIZON_S)
            dept = rng.choice(self.departments)
            subject, category = rng.choice(SUBJECTS)
            address = f"{rng.choice(STREETS)}{rng.randint(1, 300)}号"
            name = (
                rng.choice(SURNAMES) + rng.choice(("先生", "女士")) if rng.random() < 0.8 else None
            )
            ticket_rows.append(
                (
                    i,
                    f"{day}{seq:06d}",
                    2,  # created, then dispatched
                    Status.DISPATCHED.value,
                    rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0].value,
                    rng.choice(KINDS).value,
                    rng.choices(URGENCIES, URGENCY_WEIGHTS)[0].value,
                    subject,
                    f"{address}附近{subject}，已持续{rng.randint(2, 40)}天，恳请相关部门尽快处理。",
                    [category],
                    dept.region,
                    address,
                    "zh-Hans",
                    name,
                    random_mobile(rng),
                    rng.random() < 0.03,
                    [],
                    False,
                    0,
                    0,
                    reply_due,
                    created,
                    dispatched,
                )
            )
            assignment_rows.append(
                (
                    i,
                    i,
                    dept.code,
                    AssignmentRole.LEAD.value,
                    pending,
                    dispatched,
                    sign_due,
                    reply_due,
                    ExtensionState.NONE.value,
                )
            )
            clock_rows.append(
                (2 * i - 1, i, i, sign, running, dispatched, sign_warn, sign_due, sign_warn)
            )
            clock_rows.append(
                (2 * i, i, i, reply, running, created, reply_warn, reply_due, reply_warn)
            )
        return [
            (tickets, TICKET_COLS, ticket_rows),
            (assignments, ASSIGNMENT_COLS, assignment_rows),
            (clocks, CLOCK_COLS, clock_rows),
        ]

    def _times(self, start: datetime, clock_id: int, horizon_s: int) -> tuple[datetime, datetime]:
        """(warn_at, due_at) of a clock started at `start`, warning at warn_ratio of the limit."""
        now, rng = self.pop.now, self.rng
        if clock_id in self.pop.overdue:
            due = now - (now - start) * rng.uniform(0.05, 0.5)
            return start + (due - start) * self.ratio, due
        if clock_id in self.pop.warning:
            warn = now - timedelta(seconds=rng.randint(1, 900))
            return warn, max(start + (warn - start) / self.ratio, now + timedelta(minutes=1))
        warn = now + timedelta(seconds=rng.randint(60, horizon_s))
        return warn, start + (warn - start) / self.ratio


# -- filling ------------------------------------------------------------------------------------
@dataclass(slots=True)
class FillTimes:
    rows_s: float = 0.0
    finish_s: float = 0.0  # order numbers, sequences, VACUUM ANALYZE, checkpoint
    size_mb: float = 0.0  # the database afterwards

    @property
    def total_s(self) -> float:
        return self.rows_s + self.finish_s


def fill(url: str, factory: OrderFactory, chunk: int) -> FillTimes:
    """Insert the population with its own engine (so its big page cache dies with it)."""
    times = FillTimes()
    orders = factory.pop.orders
    engine = create_db_engine(url, pool_size=1)
    postgres = engine.dialect.name == "postgresql"
    try:
        t0 = time.perf_counter()
        for lo in range(1, orders + 1, chunk):
            rows = factory.chunk(lo, min(lo + chunk, orders + 1))
            if postgres:
                _copy_chunk(engine, rows)
            else:
                _insert_chunk(engine, rows)
            done = min(lo + chunk, orders + 1) - 1
            print(f"  filled {done:,} / {orders:,} orders", file=sys.stderr, end="\r")
        print(file=sys.stderr)
        times.rows_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _finish(engine, factory)
        times.finish_s = time.perf_counter() - t0
        times.size_mb = _size_bytes(engine) / 2**20
    finally:
        engine.dispose()
    return times


def _insert_chunk(engine: Engine, rows: Chunk) -> None:
    with engine.connect().execution_options(sqlite_write=True) as conn, conn.begin():
        conn.exec_driver_sql("PRAGMA cache_size=-524288")  # 512 MiB, this connection only
        for table, cols, chunk_rows in rows:
            conn.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in chunk_rows])


def _copy_chunk(engine: Engine, rows: Chunk) -> None:
    raw = engine.raw_connection()
    try:
        pg: Any = raw.driver_connection  # psycopg.Connection
        with pg.cursor() as cur:
            for table, cols, chunk_rows in rows:
                when = [i for i, c in enumerate(cols) if isinstance(table.c[c].type, UTCDateTime)]
                docs = [i for i, c in enumerate(cols) if isinstance(table.c[c].type, sa.JSON)]
                with cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                    for r in chunk_rows:
                        out = list(r)
                        for i in when:  # what UTCDateTime stores: naive UTC (or NULL)
                            if out[i] is not None:
                                out[i] = out[i].replace(tzinfo=None)
                        for i in docs:
                            out[i] = json.dumps(out[i], ensure_ascii=False)
                        copy.write_row(out)
        pg.commit()
    finally:
        raw.close()


def _finish(engine: Engine, factory: OrderFactory) -> None:
    with engine.connect().execution_options(sqlite_write=True) as conn, conn.begin():
        conn.execute(
            numbers.insert(), [{"day": d, "last": n} for d, n in factory.last_number.items()]
        )
        if conn.dialect.name == "postgresql":
            # the ids were given explicitly: move the sequences past them
            for table in (tickets, assignments, clocks):
                conn.execute(
                    sa.text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                    {"t": table.name, "n": conn.scalar(sa.select(sa.func.max(table.c.id)))},
                )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            # flush the fill's dirty pages now, not in a checkpoint during the measured pass
            conn.exec_driver_sql("CHECKPOINT")
    else:
        raw = engine.raw_connection()  # outside any transaction, or the WAL can't be reset
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def _size_bytes(engine: Engine) -> int:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return int(
                conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
            )
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
        return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())


# -- measuring ----------------------------------------------------------------------------------
class DueQueryCapture:
    """Records the first due-clocks query the watcher sends, to EXPLAIN exactly that."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statement: str | None = None
        self.parameters: Any = None
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if (
            self.statement is None
            and "FROM ticket_clocks" in statement
            and "ORDER BY ticket_clocks.next_at" in statement
        ):
            self.statement, self.parameters = statement, parameters

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def explain(db: Database, statement: str, parameters: Any) -> list[str]:
    def tx(conn: Connection) -> list[str]:
        if db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            return [str(r[-1]) for r in rows]
        rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        return [str(r[0]) for r in rows]

    return db.run_read(tx)


@dataclass(slots=True)
class Passes:
    pass_s: float = 0.0
    fired: int = 0
    second: int = -1
    idle_ms: list[float] = field(default_factory=list)
    idle_fired: int = 0


async def run_passes(watcher: DeadlineWatcher, idle_repeats: int) -> Passes:
    out = Passes()
    t0 = time.perf_counter()
    out.fired = await watcher.run_once()
    out.pass_s = time.perf_counter() - t0
    out.second = await watcher.run_once()
    for _ in range(idle_repeats):
        t0 = time.perf_counter()
        out.idle_fired += await watcher.run_once()
        out.idle_ms.append((time.perf_counter() - t0) * 1000)
    return out


def verify(db: Database, pop: Population, passes: Passes, published: int) -> list[str]:
    """What went wrong (empty when the pass did exactly what it should)."""
    problems: list[str] = []
    if passes.fired != pop.due:
        problems.append(f"the pass fired {passes.fired} clocks, {pop.due} were due")
    if passes.second != 0 or passes.idle_fired != 0:
        problems.append(f"a second pass fired {passes.second}, idle passes {passes.idle_fired}")

    def tx(conn: Connection) -> tuple[list[Any], int, int, int]:
        changed = conn.execute(
            sa.select(clocks.c.id, clocks.c.ticket_id, clocks.c.clock, clocks.c.state).where(
                clocks.c.state != ClockState.RUNNING.value
            )
        ).all()
        n_events = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
        urged = conn.execute(sa.select(sa.func.sum(tickets.c.urge_count))).scalar_one()
        supervised = conn.execute(
            sa.select(sa.func.count()).select_from(tickets).where(tickets.c.supervised)
        ).scalar_one()
        return list(changed), int(n_events), int(urged or 0), int(supervised)

    changed, n_events, urged, supervised = db.run_read(tx)
    state = {r.id: r.state for r in changed}
    expected = {i: ClockState.WARNED.value for i in pop.warning}
    expected.update({i: ClockState.OVERDUE.value for i in pop.overdue})
    if state != expected:
        wrong = sorted(set(state.items()) ^ set(expected.items()))[:10]
        problems.append(
            f"{len(state)} clocks changed state, {pop.due} expected; first differences "
            f"(id, state): {wrong}"
        )
    if n_events != pop.due or published != pop.due:
        problems.append(f"{n_events} events written, {published} published, {pop.due} expected")
    overdue = [r for r in changed if r.state == ClockState.OVERDUE.value]
    want_urged = sum(1 for r in overdue if r.clock == ClockKind.SIGN.value)
    want_supervised = len({r.ticket_id for r in overdue if r.clock == ClockKind.REPLY.value})
    if (urged, supervised) != (want_urged, want_supervised):
        problems.append(
            f"urge_count sum {urged} (want {want_urged}), supervised orders {supervised} "
            f"(want {want_supervised})"
        )
    return problems


# -- the run ------------------------------------------------------------------------------------
def benchmark(args: argparse.Namespace, url: str) -> int:
    backend = "postgresql" if args.postgres else "sqlite"
    settings: Settings = load_settings(
        REPO_ROOT / "config.toml", environ={"HOTLINE__DATABASE__URL": url}
    )
    db = open_database(settings, migrate=False)
    try:
        upgrade(db)
        bus = InProcessBus()
        services = build_services(settings, db, bus)
        service = services.tickets
        tz = ZoneInfo(settings.locale.timezone)
        rng = random.Random(args.seed)
        pop = choose_population(args.orders, args.due, NOW, rng)
        departments = [
            d for d in services.directory.departments.values() if d.level is not Level.REGION
        ]
        factory = OrderFactory(pop, departments, settings.sla.warn_ratio, tz, rng)
        print(
            f"filling {backend}: {pop.orders:,} open orders, {pop.clocks:,} running clocks, "
            f"{pop.due:,} due at {pop.now.astimezone(tz):%Y-%m-%d %H:%M %Z}",
            file=sys.stderr,
        )
        filled = fill(db.url, factory, args.chunk)

        service.clock = lambda: pop.now
        watcher = DeadlineWatcher(service, batch=args.batch)
        capture = DueQueryCapture(db.engine)
        try:
            passes = asyncio.run(run_passes(watcher, args.idle_repeats))
        finally:
            capture.close()
        plan: list[str] = []
        if capture.statement is not None:
            plan = explain(db, capture.statement, capture.parameters)
        problems = verify(db, pop, passes, bus.published)
    finally:
        db.close()

    index_used = any("ix_clocks_next" in line for line in plan)
    if not index_used:
        problems.append("the due-clocks query does not read ix_clocks_next")
    idle_ms = statistics.median(passes.idle_ms) if passes.idle_ms else None
    fired_per_s = passes.fired / passes.pass_s if passes.pass_s > 0 else None
    report(args, backend, pop, filled, passes, idle_ms, fired_per_s, plan, problems)
    print(
        json.dumps(
            {
                "backend": backend,
                "orders": pop.orders,
                "clocks": pop.clocks,
                "due": pop.due,
                "batch": args.batch,
                "fill_s": round(filled.total_s, 2),
                "db_mb": round(filled.size_mb),
                "pass_s": round(passes.pass_s, 4),
                "fired": passes.fired,
                "fired_per_s": round(fired_per_s, 1) if fired_per_s else None,
                "idle_pass_ms": round(idle_ms, 3) if idle_ms is not None else None,
                "idle_pass_ms_max": round(max(passes.idle_ms), 3) if passes.idle_ms else None,
                "plan": plan,
                "index_used": index_used,
                "verified": not problems,
            },
            ensure_ascii=False,
        )
    )
    return 1 if problems else 0


def report(
    args: argparse.Namespace,
    backend: str,
    pop: Population,
    filled: FillTimes,
    passes: Passes,
    idle_ms: float | None,
    fired_per_s: float | None,
    plan: Sequence[str],
    problems: Sequence[str],
) -> None:
    finish = "VACUUM ANALYZE, CHECKPOINT" if backend == "postgresql" else "WAL checkpoint"
    idle = (
        f"{idle_ms:.2f} ms median of {len(passes.idle_ms)} "
        f"(min {min(passes.idle_ms):.2f}, max {max(passes.idle_ms):.2f})"
        if idle_ms is not None
        else "not measured"
    )
    lines = [
        f"deadline watcher benchmark ({backend})",
        f"  open orders      {pop.orders:,} ({pop.clocks:,} running clocks)",
        f"  fill             {filled.total_s:.1f} s (rows {filled.rows_s:.1f} s, "
        f"{finish} {filled.finish_s:.1f} s) - not part of the measurement",
        f"  database         {filled.size_mb:,.0f} MiB after the fill",
        f"  due now          {pop.due:,} ({len(pop.warning):,} at their warning, "
        f"{len(pop.overdue):,} past their deadline)",
        f"  watcher pass     {passes.pass_s:.3f} s, {passes.fired:,} fired, "
        + (f"{fired_per_s:,.0f} fired/s" if fired_per_s else "-")
        + f" (batch {args.batch})",
        f"  second pass      {passes.second} fired",
        f"  idle pass        {idle}",
        "  due-clocks plan  " + "\n                   ".join(plan or ["(query not seen)"]),
    ]
    if problems:
        lines.append("  VERIFICATION FAILED")
        lines += [f"    - {p}" for p in problems]
    else:
        lines.append(
            f"  verified         exactly {pop.due:,} clocks changed state, as planned; "
            "one event each; second pass fired 0"
        )
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--postgres", action="store_true", help="throwaway PostgreSQL")
    parser.add_argument("--orders", type=int, default=1_000_000, help="open orders")
    parser.add_argument("--due", type=int, default=1000, help="clocks already due now")
    parser.add_argument("--batch", type=int, default=500, help="watcher batch size")
    parser.add_argument("--chunk", type=int, default=100_000, help="orders per fill transaction")
    parser.add_argument("--idle-repeats", type=int, default=20, help="idle passes timed")
    parser.add_argument("--seed", type=int, default=12345, help="random seed of the data")
    parser.add_argument("--keep", action="store_true", help="keep the SQLite temp dir")
    args = parser.parse_args(argv)
    if args.orders < 1 or args.batch < 1 or args.chunk < 1 or args.idle_repeats < 0:
        parser.error("--orders, --batch and --chunk must be positive")
    if not 0 <= args.due <= 2 * args.orders:
        parser.error("--due must be between 0 and 2 × --orders (each order has two clocks)")
    with (
        bench_workdir(args.keep, prefix="hotline-watcher-") as workdir,
        database_url_for(workdir, args.postgres) as url,
    ):
        return benchmark(args, url)


if __name__ == "__main__":
    sys.exit(main())
