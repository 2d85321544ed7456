"""SQL of personal data: the access log, and what retention reads and rewrites on orders."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tickets.model import AccessEvent, AccessFilter, AccessKind, Role, Status
from tickets.tables import access_log, assignments, events, examples, tickets

FINAL = (Status.CLOSED.value, Status.MERGED.value)


# -- the access log ---------------------------------------------------------------------------
def insert_access(conn: Connection, values: dict[str, Any]) -> int:
    stmt = access_log.insert().values(values).returning(access_log.c.id)
    return int(conn.execute(stmt).scalar_one())


def _access_where(stmt: Any, f: AccessFilter) -> Any:
    c = access_log.c
    if f.kind is not None:
        stmt = stmt.where(c.kind == f.kind.value)
    if f.actor_id is not None:
        stmt = stmt.where(c.actor_id == f.actor_id)
    if f.actor:
        stmt = stmt.where(c.actor_name.contains(f.actor, autoescape=True))
    if f.ticket_number:
        stmt = stmt.where(tickets.c.number == f.ticket_number)
    if f.since is not None:
        stmt = stmt.where(c.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(c.at < f.until)
    return stmt


def _joined() -> Any:
    return access_log.outerjoin(tickets, tickets.c.id == access_log.c.ticket_id)


def list_access(conn: Connection, f: AccessFilter) -> list[AccessEvent]:
    """Newest first."""
    stmt = sa.select(access_log, tickets.c.number).select_from(_joined())
    stmt = _access_where(stmt, f).order_by(access_log.c.id.desc()).limit(f.limit).offset(f.offset)
    return [
        AccessEvent(
            id=r.id,
            at=r.at,
            actor_id=r.actor_id,
            actor_name=r.actor_name,
            actor_role=Role(r.actor_role),
            department=r.department,
            kind=AccessKind(r.kind),
            ticket_id=r.ticket_id,
            ticket_number=r.number,
            subject=r.subject,
            reason=r.reason,
            client=r.client,
        )
        for r in conn.execute(stmt)
    ]


def count_access(conn: Connection, f: AccessFilter) -> int:
    stmt = sa.select(sa.func.count()).select_from(_joined())
    return int(conn.execute(_access_where(stmt, f)).scalar_one())


def count_access_before(conn: Connection, before: datetime) -> int:
    stmt = sa.select(sa.func.count()).where(access_log.c.at < before)
    return int(conn.execute(stmt).scalar_one())


def delete_access_before(conn: Connection, before: datetime) -> int:
    return int(conn.execute(access_log.delete().where(access_log.c.at < before)).rowcount)


# -- retention ----------------------------------------------------------------------------------
def _ended() -> Any:
    """When a finished order finished: its closing, or (merged) its last change."""
    return sa.func.coalesce(tickets.c.closed_at, tickets.c.updated_at)


def finished_before(
    conn: Connection,
    before: datetime,
    mark: str,
    limit: int,
    after_id: int = 0,
    not_before: datetime | None = None,
) -> list[int]:
    """Finished orders (closed, merged) that ended before `before` (and not before
    `not_before`) and still lack `mark` (purged_at: personal data; files_purged_at: files),
    by id from `after_id` on."""
    column = tickets.c[mark]
    since = _ended() >= not_before if not_before is not None else sa.true()
    stmt = (
        sa.select(tickets.c.id)
        .where(
            tickets.c.status.in_(FINAL),
            _ended() < before,
            since,
            column.is_(None),
            tickets.c.id > after_id,
        )
        .order_by(tickets.c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def get_order_row(conn: Connection, ticket_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).first()
    return dict(row._mapping) if row is not None else None


def update_order(conn: Connection, ticket_id: int, values: dict[str, Any]) -> None:
    """A system rewrite (retention): the version moves, so a person acting on the order as it
    was gets 409 rather than writing back what was removed."""
    conn.execute(
        tickets.update()
        .where(tickets.c.id == ticket_id)
        .values(version=tickets.c.version + 1, **values)
    )


def assignment_texts(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    cols = (
        assignments.c.id,
        assignments.c.reply,
        assignments.c.return_reason,
        assignments.c.extension_reason,
    )
    rows = conn.execute(sa.select(*cols).where(assignments.c.ticket_id == ticket_id))
    return [dict(r._mapping) for r in rows]


def update_assignment_texts(conn: Connection, assignment_id: int, values: dict[str, Any]) -> None:
    conn.execute(assignments.update().where(assignments.c.id == assignment_id).values(values))


def event_details(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    cols = (events.c.id, events.c.reason, events.c.old, events.c.new)
    rows = conn.execute(sa.select(*cols).where(events.c.ticket_id == ticket_id))
    return [dict(r._mapping) for r in rows]


def update_event_details(conn: Connection, event_id: int, values: dict[str, Any]) -> None:
    """Only `reason`, `old` and `new`, and only once the order is marked purged: the database's
    trigger refuses anything else (who, what and when of an event never change)."""
    assert set(values) <= {"reason", "old", "new"}
    conn.execute(events.update().where(events.c.id == event_id).values(values))


def count_examples_of(conn: Connection, ticket_id: int) -> int:
    stmt = sa.select(sa.func.count()).where(examples.c.ticket_id == ticket_id)
    return int(conn.execute(stmt).scalar_one())


def delete_examples_of(conn: Connection, ticket_id: int) -> int:
    return int(conn.execute(examples.delete().where(examples.c.ticket_id == ticket_id)).rowcount)


def sha_in_use(conn: Connection, sha256: str, excluding: Iterable[int]) -> bool:
    """Whether an order other than `excluding` still keeps the file (content-addressed files
    are shared by every order that got the same bytes)."""
    as_text = sa.cast(tickets.c.attachments, sa.Text)
    stmt = (
        sa.select(tickets.c.id)
        .where(
            tickets.c.files_purged_at.is_(None),
            tickets.c.id.not_in(list(excluding)),
            as_text.contains(json.dumps(sha256), autoescape=True),
        )
        .limit(1)
    )
    return conn.execute(stmt).first() is not None


def set_attachments(conn: Connection, ticket_id: int, attachments: list[dict[str, Any]]) -> None:
    update_order(conn, ticket_id, {"attachments": attachments})
