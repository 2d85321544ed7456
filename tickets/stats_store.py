"""All SQL of the statistics: keep the aggregate cubes up to date in the transaction of every
order change, rebuild them from scratch, and sum them over any period. Callers own the
transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tickets import store
from tickets.indicators import (
    DUE_MEASURES,
    MEASURES,
    SNAPSHOT_MEASURES,
    ClockFact,
    Facts,
    OrderDims,
    order_facts,
)
from tickets.model import Channel, ClockKind, ClockState, Kind, Ticket, TicketEvent
from tickets.stats_tables import CUBES, DIMS, Cube, Grain, cube_tables
from tickets.stats_tables import order_facts as facts_t
from tickets.tables import assignments, clocks, events, tickets

N = len(MEASURES)
CubeKey = tuple[Any, ...]  # (grain, period, *cube dims in cube.dims order)
Deltas = dict[str, dict[CubeKey, list[int]]]


# -- periods ----------------------------------------------------------------------------------
def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _grains(day: int, measure: int) -> Iterator[tuple[Grain, int]]:
    if measure in SNAPSHOT_MEASURES:
        yield Grain.SNAPSHOT, 0
    elif measure in DUE_MEASURES:
        yield Grain.DUE, day
    else:
        d = date.fromordinal(day)
        yield Grain.DAY, day
        yield Grain.WEEK, week_start(d).toordinal()
        yield Grain.MONTH, month_start(d).toordinal()


def decompose(since: date, until: date) -> dict[Grain, list[int]]:
    """[since, until) as whole months, whole weeks and single days (period ordinals)."""
    out: dict[Grain, list[int]] = {Grain.DAY: [], Grain.WEEK: [], Grain.MONTH: []}
    if until <= since:
        return out
    first = since if since.day == 1 else next_month(since)
    m = first
    while next_month(m) <= until:
        out[Grain.MONTH].append(m.toordinal())
        m = next_month(m)
    fragments = [(since, until)] if not out[Grain.MONTH] else [(since, first), (m, until)]
    for a, b in fragments:
        d = a
        while d < b:
            if d.weekday() == 0 and d + timedelta(days=7) <= b:
                out[Grain.WEEK].append(d.toordinal())
                d += timedelta(days=7)
            else:
                out[Grain.DAY].append(d.toordinal())
                d += timedelta(days=1)
    return out


# -- keeping the cubes up to date ---------------------------------------------------------------
def _accumulate(acc: Deltas, dims: OrderDims, cells: Facts, sign: int) -> None:
    base = {"region": dims.region, "channel": dims.channel, "kind": dims.kind}
    base["category"] = dims.category
    for (day, department, measure), count in cells.items():
        values = {**base, "department": department}
        for grain, period in _grains(day, measure):
            for cube in CUBES:
                key = (int(grain), period, *(values[d] for d in cube.dims))
                row = acc[cube.name].get(key)
                if row is None:
                    row = acc[cube.name][key] = [0] * N
                row[measure] += sign * count


def new_deltas() -> Deltas:
    return {c.name: {} for c in CUBES}


def _upsert(conn: Connection, cube: Cube, rows: dict[CubeKey, list[int]]) -> None:
    live = sorted((k, v) for k, v in rows.items() if any(v))  # one lock order for all writers
    if not live:
        return
    names = ("grain", "period", *cube.dims)
    params = [
        dict(zip(names, k, strict=True)) | dict(zip(MEASURES, v, strict=True)) for k, v in live
    ]
    conn.execute(_upsert_statement(conn.dialect.name, cube), params)


_STATEMENTS: dict[tuple[str, str], Any] = {}


def _upsert_statement(dialect: str, cube: Cube) -> Any:
    cached = _STATEMENTS.get((dialect, cube.name))
    if cached is not None:
        return cached
    table = cube_tables[cube.name]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in cube.key],
        set_={m: table.c[m] + stmt.excluded[m] for m in MEASURES},
    )
    _STATEMENTS[(dialect, cube.name)] = stmt
    return stmt


def apply(conn: Connection, acc: Deltas) -> None:
    for cube in CUBES:
        _upsert(conn, cube, acc[cube.name])


def _encode(dims: OrderDims, cells: Facts) -> tuple[list[str], list[list[Any]]]:
    return (
        [dims.region, dims.channel, dims.kind, dims.category],
        [[day, dept, m, n] for (day, dept, m), n in sorted(cells.items())],
    )


def _decode(dims: Sequence[str], cells: Sequence[Sequence[Any]]) -> tuple[OrderDims, Facts]:
    return OrderDims(*dims), {(int(d), str(dept), int(m)): int(n) for d, dept, m, n in cells}


def list_clock_facts(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, list[ClockFact]]:
    out: dict[int, list[ClockFact]] = {i: [] for i in ticket_ids}
    if not ticket_ids:
        return out
    rows = conn.execute(
        sa.select(
            clocks.c.id,
            clocks.c.ticket_id,
            clocks.c.clock,
            clocks.c.assignment_id,
            clocks.c.state,
            clocks.c.due_at,
            clocks.c.stopped_at,
        ).where(clocks.c.ticket_id.in_(list(ticket_ids)))
    )
    for r in rows:
        out[r.ticket_id].append(
            ClockFact(
                r.id,
                ClockKind(r.clock),
                r.assignment_id,
                ClockState(r.state),
                r.due_at,
                r.stopped_at,
            )
        )
    return out


def refresh(conn: Connection, t: Ticket, tz: ZoneInfo, now: datetime) -> None:
    """Recompute what `t` counts for and move the cubes by the difference (the hook called in
    the transaction of every order change)."""
    clock_facts = list_clock_facts(conn, [t.id])[t.id]
    dims, cells = order_facts(t, clock_facts, store.list_events(conn, t.id), tz)
    row = conn.execute(
        sa.select(facts_t.c.dims, facts_t.c.cells).where(facts_t.c.ticket_id == t.id)
    ).first()
    acc = new_deltas()
    if row is not None:
        old_dims, old_cells = _decode(row.dims, row.cells)
        if old_dims == dims and old_cells == cells:
            return
        _accumulate(acc, old_dims, old_cells, -1)
    _accumulate(acc, dims, cells, +1)
    apply(conn, acc)
    enc_dims, enc_cells = _encode(dims, cells)
    values = {"dims": enc_dims, "cells": enc_cells, "updated_at": now}
    if row is None:
        conn.execute(facts_t.insert().values(ticket_id=t.id, **values))
    else:
        conn.execute(facts_t.update().where(facts_t.c.ticket_id == t.id).values(values))


def refresh_id(conn: Connection, ticket_id: int, tz: ZoneInfo, now: datetime) -> None:
    t = store.get_ticket(conn, ticket_id)
    if t is not None:
        refresh(conn, t, tz, now)


def record_new(conn: Connection, t: Ticket, created: TicketEvent, tz: ZoneInfo) -> None:
    """The intake path: a new order has no clocks and one event; nothing to read back."""
    dims, cells = order_facts(t, (), (created,), tz)
    acc = new_deltas()
    _accumulate(acc, dims, cells, +1)
    apply(conn, acc)
    enc_dims, enc_cells = _encode(dims, cells)
    conn.execute(
        facts_t.insert().values(
            ticket_id=t.id, dims=enc_dims, cells=enc_cells, updated_at=t.created_at
        )
    )


# -- rebuilding from scratch --------------------------------------------------------------------
def iter_orders(
    conn: Connection, lo: int, hi: int
) -> Iterator[tuple[Ticket, list[ClockFact], list[TicketEvent]]]:
    """Orders with ids in [lo, hi), with their clocks and events, read in four range scans."""
    rows = conn.execute(
        sa.select(tickets).where(tickets.c.id >= lo, tickets.c.id < hi).order_by(tickets.c.id)
    ).all()
    if not rows:
        return
    per_assign: dict[int, list[Any]] = defaultdict(list)
    for r in conn.execute(
        sa.select(assignments)
        .where(assignments.c.ticket_id >= lo, assignments.c.ticket_id < hi)
        .order_by(assignments.c.id)
    ):
        per_assign[r.ticket_id].append(store._assignment_from_row(r))
    per_event: dict[int, list[Any]] = defaultdict(list)
    for r in conn.execute(
        sa.select(events)
        .where(events.c.ticket_id >= lo, events.c.ticket_id < hi)
        .order_by(events.c.id)
    ):
        per_event[r.ticket_id].append(r)
    ids = [r.id for r in rows]
    clock_facts = _clock_facts_range(conn, lo, hi, ids)
    for r in rows:
        yield (
            store._ticket_from_row(r, per_assign.get(r.id, [])),
            clock_facts[r.id],
            store._events(per_event.get(r.id, [])),
        )


def _clock_facts_range(
    conn: Connection, lo: int, hi: int, ids: Sequence[int]
) -> dict[int, list[ClockFact]]:
    out: dict[int, list[ClockFact]] = {i: [] for i in ids}
    rows = conn.execute(
        sa.select(
            clocks.c.id,
            clocks.c.ticket_id,
            clocks.c.clock,
            clocks.c.assignment_id,
            clocks.c.state,
            clocks.c.due_at,
            clocks.c.stopped_at,
        ).where(clocks.c.ticket_id >= lo, clocks.c.ticket_id < hi)
    )
    for r in rows:
        out.setdefault(r.ticket_id, []).append(
            ClockFact(
                r.id,
                ClockKind(r.clock),
                r.assignment_id,
                ClockState(r.state),
                r.due_at,
                r.stopped_at,
            )
        )
    return out


def id_bounds(conn: Connection) -> tuple[int, int]:
    lo, hi = conn.execute(sa.select(sa.func.min(tickets.c.id), sa.func.max(tickets.c.id))).one()
    return int(lo or 0), int(hi or 0)


def clear(conn: Connection) -> None:
    for table in (*cube_tables.values(), facts_t):
        conn.execute(table.delete())


def rebuild_range(conn: Connection, lo: int, hi: int, tz: ZoneInfo, now: datetime) -> int:
    """Facts and cube counts of the orders with ids in [lo, hi) (their old ones cleared)."""
    acc = new_deltas()
    rows = []
    for t, clock_facts, evs in iter_orders(conn, lo, hi):
        dims, cells = order_facts(t, clock_facts, evs, tz)
        _accumulate(acc, dims, cells, +1)
        enc_dims, enc_cells = _encode(dims, cells)
        rows.append({"ticket_id": t.id, "dims": enc_dims, "cells": enc_cells, "updated_at": now})
    if rows:
        conn.execute(facts_t.insert(), rows)
        apply(conn, acc)
    return len(rows)


def recount(conn: Connection, tz: ZoneInfo) -> Deltas:
    """Every cube's rows computed from scratch in memory (for checks; small databases)."""
    acc = new_deltas()
    lo, hi = id_bounds(conn)
    step = 2000
    for start in range(lo, hi + 1, step):
        for t, clock_facts, evs in iter_orders(conn, start, start + step):
            dims, cells = order_facts(t, clock_facts, evs, tz)
            _accumulate(acc, dims, cells, +1)
    return {name: {k: v for k, v in rows.items() if any(v)} for name, rows in acc.items()}


def read_cubes(conn: Connection) -> Deltas:
    """Every cube's stored rows that are not all zero."""
    out = new_deltas()
    for cube in CUBES:
        table = cube_tables[cube.name]
        names = ("grain", "period", *cube.dims)
        for r in conn.execute(sa.select(table)):
            values = [int(r._mapping[m]) for m in MEASURES]
            if any(values):
                out[cube.name][tuple(r._mapping[n] for n in names)] = values
    return out


# -- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CubeQuery:
    """Sum `measures` over `pieces` of time, rows matching `filters`, grouped by `group_by`
    (and by period when `by_period`)."""

    pieces: Mapping[Grain, Sequence[int]]
    filters: Mapping[str, Sequence[str]]
    group_by: Sequence[str]
    measures: Sequence[str] = MEASURES
    by_period: bool = False


def choose_cube(filters: Iterable[str], group_by: Iterable[str]) -> Cube:
    """The cheapest cube that has every dimension asked for, preferring one whose leading key
    dimensions are all filtered (a range scan) over one that must be read across a period."""
    wanted = set(filters) | set(group_by)
    filtered = set(filters)
    covering = [c for c in CUBES if wanted <= set(c.dims)]
    if not covering:
        raise ValueError(f"no statistics cube has the dimensions {sorted(wanted)}")
    for c in covering:
        if c.lead and set(c.lead) <= filtered:
            return c
    for c in covering:
        if not c.lead or set(c.lead) <= {"channel", "kind"}:
            return c
    return covering[0]


# leading dimensions with a small domain are read as IN lists, so their index is used
DOMAINS: dict[str, tuple[str, ...]] = {
    "channel": tuple(c.value for c in Channel),
    "kind": tuple(k.value for k in Kind),
}


def sum_cube(
    conn: Connection, q: CubeQuery, cube: Cube | None = None
) -> list[tuple[tuple[Any, ...], dict[str, int]]]:
    """[(group values (with grain, period first when by_period), {measure: sum})]."""
    cube = cube or choose_cube(q.filters, q.group_by)
    table = cube_tables[cube.name]
    group_cols = [table.c[d] for d in q.group_by]
    if q.by_period:
        group_cols = [table.c.grain, table.c.period, *group_cols]
    sums = [sa.func.sum(table.c[m]).label(m) for m in q.measures]
    out: dict[tuple[Any, ...], dict[str, int]] = {}
    for grain, periods in q.pieces.items():
        if not periods:
            continue
        stmt = sa.select(*group_cols, *sums).where(table.c.grain == int(grain))
        for d in cube.lead:
            values = q.filters.get(d) or DOMAINS.get(d)
            if values:
                stmt = stmt.where(table.c[d].in_(list(values)))
        stmt = stmt.where(_periods_clause(table.c.period, grain, periods))
        for d, values in q.filters.items():
            if d not in cube.lead:
                stmt = stmt.where(table.c[d].in_(list(values)))
        if group_cols:
            stmt = stmt.group_by(*group_cols)
        for r in conn.execute(stmt):
            m = r._mapping
            key = tuple(m[c.name] for c in group_cols)
            acc = out.setdefault(key, dict.fromkeys(q.measures, 0))
            for name in q.measures:
                acc[name] += int(m[name] or 0)
    return list(out.items())


def _periods_clause(col: Any, grain: Grain, periods: Sequence[int]) -> Any:
    ordered = sorted(set(periods))
    if len(ordered) == 1:
        return col == ordered[0]
    if len(ordered) <= 64:
        return col.in_(ordered)
    # long series: contiguous runs read as ranges (the same rows, a shorter statement)
    runs: list[tuple[int, int]] = []
    for p in ordered:
        if runs and p == _following(grain, runs[-1][1]):
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    return sa.or_(*(sa.and_(col >= a, col <= b) for a, b in runs))


def _following(grain: Grain, period: int) -> int:
    if grain is Grain.MONTH:
        return next_month(date.fromordinal(period)).toordinal()
    return period + (7 if grain is Grain.WEEK else 1)


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["DIMS", "CubeQuery", "choose_cube", "decompose", "refresh", "sum_cube"]
