"""All SQL of the public 曝光纠错 column. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tickets import store
from tickets.cases import PublicCase
from tickets.cases_tables import public_cases
from tickets.model import Ticket
from tickets.tables import tickets

_FIELDS = tuple(c.name for c in public_cases.columns)


def _case(row: Any) -> PublicCase:
    return PublicCase(**{k: row._mapping[k] for k in _FIELDS})


def insert_case(conn: Connection, values: dict[str, Any]) -> int:
    stmt = public_cases.insert().values(values).returning(public_cases.c.id)
    return int(conn.execute(stmt).scalar_one())


def update_case(conn: Connection, case_id: int, version: int, values: dict[str, Any]) -> bool:
    """Compare-and-set on the version; False when somebody else changed it first."""
    stmt = (
        public_cases.update()
        .where(public_cases.c.id == case_id, public_cases.c.version == version)
        .values(version=public_cases.c.version + 1, **values)
    )
    return conn.execute(stmt).rowcount == 1


def get_case(conn: Connection, case_id: int) -> PublicCase | None:
    row = conn.execute(sa.select(public_cases).where(public_cases.c.id == case_id)).first()
    return _case(row) if row is not None else None


def get_case_of_ticket(conn: Connection, ticket_id: int) -> PublicCase | None:
    row = conn.execute(sa.select(public_cases).where(public_cases.c.ticket_id == ticket_id)).first()
    return _case(row) if row is not None else None


def list_cases(
    conn: Connection, state: str | None, limit: int, offset: int = 0
) -> tuple[list[PublicCase], int]:
    """Newest first: by publication for published cases, else by last change."""
    stmt = sa.select(public_cases)
    count = sa.select(sa.func.count()).select_from(public_cases)
    if state is not None:
        stmt = stmt.where(public_cases.c.state == state)
        count = count.where(public_cases.c.state == state)
    order = (
        (public_cases.c.published_at.desc(), public_cases.c.id.desc())
        if state == "published"
        else (public_cases.c.updated_at.desc(), public_cases.c.id.desc())
    )
    rows = conn.execute(stmt.order_by(*order).limit(limit).offset(offset)).all()
    return [_case(r) for r in rows], int(conn.execute(count).scalar_one())


def list_public_requests(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    numbers: Sequence[str] = (),
    kinds: Sequence[str] = (),
    open_statuses: Sequence[str] | None = None,
    closed: bool | None = None,
    hidden_kinds: Sequence[str] = (),
    limit: int = 200,
) -> list[Ticket]:
    """Orders for the Open311 requests list, newest first, never a confidential caller's
    (nor, with `hidden_kinds`, a 举报's). `closed` True/False keeps answered/unanswered ones
    (`open_statuses` says which are still open)."""
    stmt = sa.select(tickets).where(
        tickets.c.caller_confidential.is_(False),
        tickets.c.created_at >= since,
        tickets.c.created_at < until,
    )
    if numbers:
        stmt = stmt.where(tickets.c.number.in_(list(numbers)))
    if kinds:
        stmt = stmt.where(tickets.c.kind.in_(list(kinds)))
    if hidden_kinds:
        stmt = stmt.where(tickets.c.kind.not_in(list(hidden_kinds)))
    if closed is not None and open_statuses is not None:
        is_open = tickets.c.status.in_(list(open_statuses))
        stmt = stmt.where(~is_open if closed else is_open)
    rows = conn.execute(stmt.order_by(tickets.c.created_at.desc()).limit(limit)).all()
    assigned = store._assignments_of(conn, [r.id for r in rows])
    return [store._ticket_from_row(r, assigned[r.id]) for r in rows]


def published_by_ticket(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, PublicCase]:
    if not ticket_ids:
        return {}
    rows = conn.execute(
        sa.select(public_cases).where(
            public_cases.c.ticket_id.in_(list(ticket_ids)), public_cases.c.state == "published"
        )
    )
    return {r.ticket_id: _case(r) for r in rows}
