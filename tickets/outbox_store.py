"""SQL of the durable work queue (tickets/outbox.py): insert, claim under a lease, finish."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tickets.tables import work_queue

_ERROR_CHARS = 300  # the column's size


def insert_jobs(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(work_queue.insert(), list(rows))


def claim(
    conn: Connection, topic: str, now: datetime, until: datetime, token: str, limit: int
) -> list[Any]:
    """Take up to `limit` due jobs of `topic`, oldest due first, until `until`. On PostgreSQL
    rows another consumer is claiming are skipped (FOR UPDATE SKIP LOCKED); SQLite has one
    writer. A job whose consumer died is due again when its lease runs out."""
    q = work_queue.c
    due = (
        sa.select(q.id)
        .where(q.topic == topic, q.next_at <= now)
        .order_by(q.next_at, q.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        work_queue.update()
        .where(q.id.in_(due.scalar_subquery()))
        .values(lease=token, next_at=until, attempts=q.attempts + 1)
        .returning(work_queue)
    )
    return sorted(conn.execute(stmt).all(), key=lambda r: (r.created_at, r.id))


def delete_claimed(conn: Connection, ids: Sequence[int], token: str) -> int:
    """Done: only while the claim is still ours (an expired lease may have passed it on)."""
    q = work_queue.c
    return conn.execute(work_queue.delete().where(q.id.in_(list(ids)), q.lease == token)).rowcount


def release_claimed(
    conn: Connection, ids: Sequence[int], token: str, next_at: datetime, error: str | None
) -> int:
    """Failed (or put back): due again at `next_at`, keeping the attempt count."""
    q = work_queue.c
    stmt = (
        work_queue.update()
        .where(q.id.in_(list(ids)), q.lease == token)
        .values(lease=None, next_at=next_at, last_error=(error or "")[:_ERROR_CHARS] or None)
    )
    return conn.execute(stmt).rowcount


def held(
    conn: Connection, claims: Sequence[tuple[int, str]], now: datetime
) -> set[tuple[int, str]]:
    """Those of the (id, lease) pairs whose row is still claimed under that lease, unexpired."""
    q = work_queue.c
    rows = conn.execute(
        sa.select(q.id, q.lease, q.next_at).where(q.id.in_([i for i, _ in claims]))
    ).all()
    wanted = set(claims)
    return {(r.id, r.lease) for r in rows if (r.id, r.lease) in wanted and r.next_at > now}


def make_due(conn: Connection, topic: str, now: datetime) -> int:
    """Every waiting (unclaimed) job of `topic` due now: its consumer's backend is back."""
    q = work_queue.c
    stmt = (
        work_queue.update()
        .where(q.topic == topic, q.lease.is_(None), q.next_at > now)
        .values(next_at=now)
    )
    return conn.execute(stmt).rowcount


def stats(conn: Connection, topic: str) -> tuple[int, datetime | None, int]:
    """(jobs waiting or claimed, the oldest one's creation time, most attempts of one job)."""
    q = work_queue.c
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.min(q.created_at), sa.func.max(q.attempts)).where(
            q.topic == topic
        )
    ).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite hands aggregates of the TypeDecorator back raw
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest, int(row[2] or 0)
