"""SQL of the call-centre statistics: hourly counts kept in the transaction of every call record
change (the difference of what the record counts for before and after), agents' signed-in and
busy time, and reading hours back. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from telephony.model import CallRecord
from telephony.tables import CALL_HOUR_MEASURES, call_hours, calls

ANSWER_TARGET_S = 15  # GB/T 33358: answer within 15 seconds
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HourCounts = dict[int, dict[str, int]]


def hour_of(value: datetime) -> int:
    return int((value - EPOCH).total_seconds() // 3600)


def hour_start(hour: int) -> datetime:
    return EPOCH + timedelta(hours=hour)


def call_counts(rec: CallRecord | None) -> HourCounts:
    """What one call record counts for, in the hour it was offered (the same definitions as
    telephony.store.call_stats: waits of answered and abandoned callers)."""
    if rec is None:
        return {}
    c: dict[str, int] = {}
    if rec.direction == "in":
        c["offered"] = 1
        if rec.queued_at is not None:
            c["queued"] = 1
            if rec.answered_at is not None:
                wait = (rec.answered_at - rec.queued_at).total_seconds()
                c.update(answered=1, waits=1, wait_ms=round(wait * 1000))
                c["answered_fast"] = int(wait <= ANSWER_TARGET_S)
            elif rec.outcome == "abandoned":
                c["abandoned"] = 1
                if rec.ended_at is not None:
                    wait = (rec.ended_at - rec.queued_at).total_seconds()
                    c.update(waits=1, wait_ms=round(wait * 1000))
            elif rec.outcome == "voicemail":
                c["voicemail"] = 1
        elif rec.outcome == "voicemail":
            c["voicemail"] = 1  # after hours: straight to voicemail
        if rec.answered_at is not None and rec.ended_at is not None:
            talk = (rec.ended_at - rec.answered_at).total_seconds()
            c.update(talks=1, talk_ms=round(talk * 1000))
    elif rec.purpose == "callback":
        c["callbacks"] = 1
        c["callbacks_answered"] = int(rec.answered_at is not None)
    elif rec.purpose == "survey":
        c["surveys"] = 1
    return {hour_of(rec.offered_at): {k: v for k, v in c.items() if v}}


def add_hours(conn: Connection, counts: Mapping[int, Mapping[str, int]]) -> None:
    rows = []
    for hour, values in sorted(counts.items()):
        if any(values.values()):
            rows.append({"hour": hour, **{m: int(values.get(m, 0)) for m in CALL_HOUR_MEASURES}})
    if not rows:
        return
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(call_hours)
    stmt = stmt.on_conflict_do_update(
        index_elements=[call_hours.c.hour],
        set_={m: call_hours.c[m] + stmt.excluded[m] for m in CALL_HOUR_MEASURES},
    )
    conn.execute(stmt, rows)


def apply_change(conn: Connection, before: CallRecord | None, after: CallRecord | None) -> None:
    """Move the hourly counts by what a call record change made of it."""
    delta: dict[int, dict[str, int]] = {}
    for sign, counts in ((-1, call_counts(before)), (1, call_counts(after))):
        for hour, values in counts.items():
            acc = delta.setdefault(hour, {})
            for m, v in values.items():
                acc[m] = acc.get(m, 0) + sign * v
    add_hours(conn, delta)


def add_agent_time(conn: Connection, start: datetime, end: datetime, busy: bool) -> None:
    """An agent's signed-in interval [start, end), split into hours."""
    counts: dict[int, dict[str, int]] = {}
    cur = start
    while cur < end:
        hour = hour_of(cur)
        stop = min(end, hour_start(hour + 1))
        ms = round((stop - cur).total_seconds() * 1000)
        acc = counts.setdefault(hour, {})
        acc["staffed_ms"] = acc.get("staffed_ms", 0) + ms
        if busy:
            acc["busy_ms"] = acc.get("busy_ms", 0) + ms
        cur = stop
    add_hours(conn, counts)


def sum_by_hour_of_day(
    conn: Connection, first: int, last: int, offset_hours: int
) -> dict[int, dict[str, int]]:
    """Counts of hours first..last summed per local hour of day (a zone at a fixed offset)."""
    hour_of_day = ((call_hours.c.hour + offset_hours) % 24).label("hod")
    stmt = (
        sa.select(hour_of_day, *[sa.func.sum(call_hours.c[m]) for m in CALL_HOUR_MEASURES])
        .where(call_hours.c.hour >= first, call_hours.c.hour <= last)
        .group_by(hour_of_day)
    )
    return {
        int(r[0]): {m: int(v or 0) for m, v in zip(CALL_HOUR_MEASURES, r[1:], strict=True)}
        for r in conn.execute(stmt)
    }


def list_hours(conn: Connection, first: int, last: int) -> HourCounts:
    """Counts of hours first..last (inclusive) that have any."""
    rows = conn.execute(
        sa.select(call_hours).where(call_hours.c.hour >= first, call_hours.c.hour <= last)
    )
    return {r.hour: {m: int(r._mapping[m]) for m in CALL_HOUR_MEASURES} for r in rows}


def recount_calls(conn: Connection) -> HourCounts:
    """The call counts of every record, from scratch (for checks and the rebuild)."""
    from telephony.store import _record

    out: dict[int, dict[str, int]] = {}
    for row in conn.execute(sa.select(calls)):
        for hour, values in call_counts(_record(row)).items():
            acc = out.setdefault(hour, {})
            for m, v in values.items():
                acc[m] = acc.get(m, 0) + v
    return out


def rebuild_calls(conn: Connection) -> None:
    """Recount the call counts (agents' time is kept: it is not in the call records)."""
    keep = [m for m in CALL_HOUR_MEASURES if m not in ("staffed_ms", "busy_ms")]
    conn.execute(call_hours.update().values(dict.fromkeys(keep, 0)))
    add_hours(conn, recount_calls(conn))
