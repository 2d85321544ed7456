"""All SQL of staff accounts and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent_ui.tables import sessions, users


def insert_user(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(users.insert().values(values).returning(users.c.id)).scalar_one())


def get_user_by_name(conn: Connection, username: str) -> Any:
    return conn.execute(sa.select(users).where(users.c.username == username)).first()


def get_user(conn: Connection, user_id: int) -> Any:
    return conn.execute(sa.select(users).where(users.c.id == user_id)).first()


def count_users(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one())


def list_users(conn: Connection) -> list[Any]:
    return list(conn.execute(sa.select(users).order_by(users.c.id)))


def update_user(conn: Connection, user_id: int, values: dict[str, Any]) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(values))


def insert_session(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sessions.insert().values(values))


def get_session(conn: Connection, token_hash: str, now: datetime) -> Any:
    stmt = (
        sa.select(sessions, users)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now)
    )
    return conn.execute(stmt).first()


def delete_session(conn: Connection, token_hash: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def delete_user_sessions(conn: Connection, user_id: int) -> None:
    conn.execute(sessions.delete().where(sessions.c.user_id == user_id))


def delete_expired_sessions(conn: Connection, now: datetime) -> int:
    return conn.execute(sessions.delete().where(sessions.c.expires_at <= now)).rowcount
