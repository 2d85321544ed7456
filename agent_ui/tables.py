"""SQL tables of staff accounts and login sessions (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

from tickets.tables import BigId, UTCDateTime

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("department", sa.String(64)),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# the cookie holds a random token; only its SHA-256 is stored, so a database leak is no login
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_sessions_expires", "expires_at"),
    sa.Index("ix_sessions_user", "user_id"),
)
