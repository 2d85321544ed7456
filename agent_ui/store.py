"""All SQL of staff accounts and sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from agent_ui.tables import sessions, sso_logins, users


def insert_user(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(users.insert().values(values).returning(users.c.id)).scalar_one())


def get_user_by_name(conn: Connection, username: str) -> Any:
    return conn.execute(sa.select(users).where(users.c.username == username)).first()


def get_users_by_names(conn: Connection, usernames: list[str]) -> list[Any]:
    return list(conn.execute(sa.select(users).where(users.c.username.in_(usernames))))


def get_user_by_subject(conn: Connection, issuer: str, subject: str) -> Any:
    stmt = sa.select(users).where(users.c.sso_issuer == issuer, users.c.sso_subject == subject)
    return conn.execute(stmt).first()


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
    """The session's user (all its columns) with the session's own columns."""
    stmt = (
        sa.select(
            users,
            sessions.c.csrf_token,
            sessions.c.expires_at,
            sessions.c.created_at.label("session_created_at"),
            sessions.c.last_seen_at,
            sessions.c.id_token,
        )
        .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
        .where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now)
    )
    return conn.execute(stmt).first()


def touch_session(conn: Connection, token_hash: str, now: datetime) -> None:
    stmt = sessions.update().where(sessions.c.token_hash == token_hash)
    conn.execute(stmt.values(last_seen_at=now))


def count_user_sessions(conn: Connection, user_id: int, now: datetime) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
    )
    return int(conn.execute(stmt).scalar_one())


def delete_session(conn: Connection, token_hash: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def delete_user_sessions(conn: Connection, user_id: int, keep: str | None = None) -> int:
    """End every session of the user (but the one whose token hash is `keep`)."""
    stmt = sessions.delete().where(sessions.c.user_id == user_id)
    if keep is not None:
        stmt = stmt.where(sessions.c.token_hash != keep)
    return conn.execute(stmt).rowcount


def delete_idle_sessions(conn: Connection, seen_before: datetime) -> int:
    seen = sa.func.coalesce(sessions.c.last_seen_at, sessions.c.created_at)
    return conn.execute(sessions.delete().where(seen <= seen_before)).rowcount


def insert_sso_login(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sso_logins.insert().values(values))


def take_sso_login(conn: Connection, state_hash: str, now: datetime) -> Any:
    """The login under way with this state, deleted in the same transaction (used once)."""
    row = conn.execute(
        sa.select(sso_logins).where(
            sso_logins.c.state_hash == state_hash, sso_logins.c.expires_at > now
        )
    ).first()
    conn.execute(sso_logins.delete().where(sso_logins.c.state_hash == state_hash))
    return row


def delete_expired_sso_logins(conn: Connection, now: datetime) -> int:
    return conn.execute(sso_logins.delete().where(sso_logins.c.expires_at <= now)).rowcount


def delete_expired_sessions(conn: Connection, now: datetime) -> int:
    return conn.execute(sessions.delete().where(sessions.c.expires_at <= now)).rowcount
