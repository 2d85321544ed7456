"""SQL for call records: insert on offer, update on each step, list and the call-centre KPIs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from telephony import call_stats_store
from telephony.model import CallRecord, CallStats
from telephony.tables import calls

_FIELDS = {c.name for c in calls.columns}


def insert_call(conn: Connection, rec: CallRecord) -> None:
    conn.execute(calls.insert().values(_values(rec)))
    call_stats_store.apply_change(conn, None, rec)  # hourly statistics, same transaction


def update_call(conn: Connection, call_id: str, values: dict[str, Any]) -> bool:
    unknown = set(values) - _FIELDS
    if unknown:
        raise ValueError(f"unknown call fields {sorted(unknown)}")
    before = get_call(conn, call_id)
    done = conn.execute(calls.update().where(calls.c.id == call_id).values(values)).rowcount == 1
    if done:
        call_stats_store.apply_change(conn, before, get_call(conn, call_id))
    return done


def get_call(conn: Connection, call_id: str) -> CallRecord | None:
    row = conn.execute(sa.select(calls).where(calls.c.id == call_id)).first()
    return _record(row) if row is not None else None


def list_calls(
    conn: Connection,
    *,
    call_id: str | None = None,
    caller: str | None = None,
    ticket_id: int | None = None,
    outcome: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CallRecord]:
    stmt = sa.select(calls)
    if call_id is not None:
        stmt = stmt.where(calls.c.id == call_id)
    if caller is not None:
        stmt = stmt.where(calls.c.caller == caller)
    if ticket_id is not None:
        stmt = stmt.where(calls.c.ticket_id == ticket_id)
    if outcome is not None:
        stmt = stmt.where(calls.c.outcome == outcome)
    stmt = stmt.order_by(calls.c.offered_at.desc(), calls.c.id).limit(limit).offset(offset)
    return [_record(r) for r in conn.execute(stmt)]


def list_recordings_before(conn: Connection, before: datetime, limit: int) -> list[CallRecord]:
    stmt = (
        sa.select(calls)
        .where(
            calls.c.offered_at < before,
            calls.c.recording.is_not(None),
            calls.c.recording_purged.is_(False),
        )
        .order_by(calls.c.offered_at)
        .limit(limit)
    )
    return [_record(r) for r in conn.execute(stmt)]


def call_stats(conn: Connection, since: datetime, until: datetime, answer_s: float) -> CallStats:
    """Inbound intake calls offered in [since, until): the GB/T 33358 style call-centre KPIs."""
    rows = conn.execute(
        sa.select(calls.c.outcome, calls.c.queued_at, calls.c.answered_at, calls.c.ended_at).where(
            calls.c.direction == "in",
            calls.c.offered_at >= since,
            calls.c.offered_at < until,
        )
    ).all()
    offered = len(rows)
    queued = answered = fast = abandoned = voicemail = 0
    waits: list[float] = []
    for outcome, queued_at, answered_at, ended_at in rows:
        if queued_at is None:
            continue
        queued += 1
        if answered_at is not None:
            answered += 1
            wait = (answered_at - queued_at).total_seconds()
            waits.append(wait)
            fast += wait <= answer_s
        elif outcome == "abandoned":
            abandoned += 1
            if ended_at is not None:
                waits.append((ended_at - queued_at).total_seconds())
        elif outcome == "voicemail":
            voicemail += 1
    return CallStats(
        offered=offered,
        queued=queued,
        answered=answered,
        answered_within=fast,
        abandoned=abandoned,
        voicemail=voicemail,
        average_wait_s=sum(waits) / len(waits) if waits else 0.0,
    )


def _values(rec: CallRecord) -> dict[str, Any]:
    return {k: getattr(rec, k) for k in _FIELDS}


def _record(row: Any) -> CallRecord:
    return CallRecord(**{k: row._mapping[k] for k in _FIELDS})


def count_recordings_before(conn: Connection, before: datetime) -> int:
    stmt = sa.select(sa.func.count()).where(
        calls.c.offered_at < before,
        calls.c.recording.is_not(None),
        calls.c.recording_purged.is_(False),
    )
    return int(conn.execute(stmt).scalar_one())


def redact_old_numbers(conn: Connection, before: datetime, mark: str, *, dry_run: bool) -> int:
    """Call records older than `before`: the citizen's number (the caller of an inbound call,
    the number dialled on an outbound one) replaced by `mark`; the rest (times, outcome, agent,
    the order) stays for the call-centre statistics."""
    n = 0
    for direction, column in (("in", calls.c.caller), ("out", calls.c.dialled)):
        where = sa.and_(calls.c.offered_at < before, calls.c.direction == direction, column != mark)
        if dry_run:
            n += int(conn.execute(sa.select(sa.func.count()).where(where)).scalar_one())
        else:
            n += int(conn.execute(calls.update().where(where).values({column.name: mark})).rowcount)
    return n
