"""SQL of 多人同诉 groups and near-duplicate candidates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tickets.tables import group_members, similar, ticket_groups, tickets


def group_id_of_main(conn: Connection, main_id: int) -> int | None:
    return conn.execute(
        sa.select(ticket_groups.c.id).where(ticket_groups.c.main_id == main_id)
    ).scalar()


def membership(conn: Connection, ticket_id: int) -> tuple[int, int] | None:
    """(group id, main order id) of the group `ticket_id` is a linked member of."""
    row = conn.execute(
        sa.select(ticket_groups.c.id, ticket_groups.c.main_id)
        .join(group_members, group_members.c.group_id == ticket_groups.c.id)
        .where(group_members.c.ticket_id == ticket_id)
    ).first()
    return (row.id, row.main_id) if row else None


def insert_group(conn: Connection, main_id: int, now: datetime, by: str) -> int:
    stmt = (
        ticket_groups.insert()
        .values(main_id=main_id, created_at=now, created_by=by)
        .returning(ticket_groups.c.id)
    )
    return int(conn.execute(stmt).scalar_one())


def insert_member(
    conn: Connection,
    group_id: int,
    ticket_id: int,
    reason: str,
    score: float | None,
    now: datetime,
    by: str,
) -> bool:
    """False when the order is already in a group (a concurrent join won)."""
    try:
        with conn.begin_nested():
            conn.execute(
                group_members.insert().values(
                    group_id=group_id,
                    ticket_id=ticket_id,
                    reason=reason,
                    score=score,
                    added_at=now,
                    added_by=by,
                )
            )
    except IntegrityError:
        return False
    return True


def delete_member(conn: Connection, ticket_id: int) -> bool:
    stmt = group_members.delete().where(group_members.c.ticket_id == ticket_id)
    return conn.execute(stmt).rowcount == 1


def members(conn: Connection, main_id: int) -> list[dict[str, Any]]:
    """Linked members and merged duplicates of the group whose main order is `main_id`."""
    t = tickets.c
    linked = conn.execute(
        sa.select(
            t.id, t.number, t.status, t.caller_phone, group_members.c.reason, group_members.c.score
        )
        .join(group_members, group_members.c.ticket_id == t.id)
        .join(ticket_groups, ticket_groups.c.id == group_members.c.group_id)
        .where(ticket_groups.c.main_id == main_id)
        .order_by(t.id)
    ).all()
    merged = conn.execute(
        sa.select(t.id, t.number, t.status, t.caller_phone)
        .where(t.master_id == main_id)
        .order_by(t.id)
    ).all()
    out = [dict(r._mapping) for r in linked]
    seen = {r["id"] for r in out}
    out += [
        {**dict(r._mapping), "reason": "merge", "score": None} for r in merged if r.id not in seen
    ]
    return out


def group_mains(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, str]:
    """For each order in a group (main, linked or merged): the main order's number."""
    if not ticket_ids:
        return {}
    ids = list(ticket_ids)
    out: dict[int, str] = {}
    main = tickets.alias("main")
    for row in conn.execute(
        sa.select(group_members.c.ticket_id, main.c.number)
        .join(ticket_groups, ticket_groups.c.id == group_members.c.group_id)
        .join(main, main.c.id == ticket_groups.c.main_id)
        .where(group_members.c.ticket_id.in_(ids))
    ):
        out[row.ticket_id] = row.number
    for row in conn.execute(
        sa.select(tickets.c.id, main.c.number)
        .join(main, main.c.id == tickets.c.master_id)
        .where(tickets.c.id.in_(ids))
    ):
        out.setdefault(row.id, row.number)
    has_group = sa.or_(
        sa.exists().where(ticket_groups.c.main_id == tickets.c.id),
        sa.exists().where(main.c.master_id == tickets.c.id),
    )
    for row in conn.execute(
        sa.select(tickets.c.id, tickets.c.number).where(tickets.c.id.in_(ids), has_group)
    ):
        out.setdefault(row.id, row.number)
    return out


def insert_candidate(
    conn: Connection, ticket_id: int, other_id: int, reason: str, score: float, now: datetime
) -> bool:
    try:
        with conn.begin_nested():
            conn.execute(
                similar.insert().values(
                    ticket_id=ticket_id,
                    other_id=other_id,
                    reason=reason,
                    score=score,
                    state="open",
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def candidates(conn: Connection, ticket_id: int) -> list[dict[str, Any]]:
    """Candidates found for this order and those that found it, best first."""
    t = tickets.c
    rows = conn.execute(
        sa.select(
            similar.c.id,
            similar.c.ticket_id,
            similar.c.other_id,
            similar.c.reason,
            similar.c.score,
            similar.c.state,
            similar.c.created_at,
            t.number,
            t.status,
        )
        .join(
            tickets,
            t.id
            == sa.case(
                (similar.c.ticket_id == ticket_id, similar.c.other_id), else_=similar.c.ticket_id
            ),
        )
        .where(sa.or_(similar.c.ticket_id == ticket_id, similar.c.other_id == ticket_id))
        .order_by(similar.c.score.desc(), similar.c.id)
    ).all()
    return [dict(r._mapping) for r in rows]


def set_candidate_state(conn: Connection, a: int, b: int, state: str) -> int:
    pair = sa.or_(
        sa.and_(similar.c.ticket_id == a, similar.c.other_id == b),
        sa.and_(similar.c.ticket_id == b, similar.c.other_id == a),
    )
    return conn.execute(similar.update().where(pair).values(state=state)).rowcount


def open_candidate_count(conn: Connection, ticket_ids: Sequence[int]) -> dict[int, int]:
    if not ticket_ids:
        return {}
    rows = conn.execute(
        sa.select(similar.c.ticket_id, sa.func.count())
        .where(similar.c.ticket_id.in_(list(ticket_ids)), similar.c.state == "open")
        .group_by(similar.c.ticket_id)
    ).all()
    return {r[0]: int(r[1]) for r in rows}
