"""SQL that feeds the search index and hot spots: orders in bulk, by id or by time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tickets.model import Ticket
from tickets.store import _assignments_of, _ticket_from_row
from tickets.tables import tickets


def get_tickets(conn: Connection, ids: Sequence[int]) -> list[Ticket]:
    """The orders with these ids that exist, in the order of `ids`."""
    if not ids:
        return []
    rows = conn.execute(sa.select(tickets).where(tickets.c.id.in_(list(ids)))).all()
    assigned = _assignments_of(conn, [r.id for r in rows])
    by_id = {r.id: _ticket_from_row(r, assigned[r.id]) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def tickets_after(conn: Connection, after_id: int, limit: int) -> list[Ticket]:
    """The next `limit` orders by id (reindexing walks the whole table this way)."""
    rows = conn.execute(
        sa.select(tickets).where(tickets.c.id > after_id).order_by(tickets.c.id).limit(limit)
    ).all()
    assigned = _assignments_of(conn, [r.id for r in rows])
    return [_ticket_from_row(r, assigned[r.id]) for r in rows]


def tickets_between(conn: Connection, since: datetime, until: datetime, limit: int) -> list[Ticket]:
    """The newest `limit` orders received in [since, until), oldest first, without merged
    duplicates' tasks. The newest: a window holding more than `limit` orders loses its oldest
    (hot spots' baseline, 诉求汇总's earliest), never the orders that just came in."""
    rows = conn.execute(
        sa.select(tickets)
        .where(tickets.c.created_at >= since, tickets.c.created_at < until)
        .order_by(tickets.c.created_at.desc(), tickets.c.id.desc())
        .limit(limit)
    ).all()
    return [_ticket_from_row(r) for r in reversed(rows)]


def count_between(conn: Connection, since: datetime, until: datetime) -> int:
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(tickets)
            .where(tickets.c.created_at >= since, tickets.c.created_at < until)
        ).scalar_one()
    )


def recent_by_phone(
    conn: Connection, phone: str, since: datetime, exclude: int, limit: int = 20
) -> list[Ticket]:
    """The same caller's other orders since `since`, newest first."""
    rows = conn.execute(
        sa.select(tickets)
        .where(
            tickets.c.caller_phone == phone,
            tickets.c.created_at >= since,
            tickets.c.id != exclude,
        )
        .order_by(tickets.c.id.desc())
        .limit(limit)
    ).all()
    return [_ticket_from_row(r) for r in rows]
