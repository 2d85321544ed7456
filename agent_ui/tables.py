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
    # accounts made by single sign-on: the provider's issuer and subject (`sub`) name the person;
    # their password_hash is empty (no local password)
    sa.Column("sso_issuer", sa.String(255)),
    sa.Column("sso_subject", sa.String(255)),
    sa.Index("ux_users_sso", "sso_issuer", "sso_subject", unique=True),
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
    # the last request of the session (idle limit); NULL only on sessions older than the column
    sa.Column("last_seen_at", UTCDateTime),
    # the provider's ID token of a single sign-on session: the hint for RP-initiated logout
    sa.Column("id_token", sa.Text),
    sa.Index("ix_sessions_expires", "expires_at"),
    sa.Index("ix_sessions_user", "user_id"),
)

# single sign-on logins under way: the browser holds the state (a cookie), the server its hash
# with the nonce and the PKCE verifier; each is used once and expires
sso_logins = sa.Table(
    "sso_logins",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("code_verifier", sa.String(128), nullable=False),
    sa.Column("next_path", sa.String(2000), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_sso_logins_expires", "expires_at"),
)
