"""SQL of personal data: the access log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tickets.model import AccessEvent, AccessFilter, AccessKind, Role
from tickets.tables import access_log, tickets


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
