"""Single sign-on and session limits: accounts linked to the identity provider's subject, each
session's last request (idle limit) and ID token (RP-initiated logout), logins under way.

Revision ID: 0500
Revises: 0400
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import UTCDateTime

revision = "0500"
down_revision = "0201"  # relinked after merging main (written against 0400)
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("sso_issuer", sa.String(255)))
    op.add_column("users", sa.Column("sso_subject", sa.String(255)))
    op.create_index("ux_users_sso", "users", ["sso_issuer", "sso_subject"], unique=True)
    op.add_column("sessions", sa.Column("last_seen_at", UTCDateTime))
    op.add_column("sessions", sa.Column("id_token", sa.Text))
    op.execute("UPDATE sessions SET last_seen_at = created_at")
    op.create_table(
        "sso_logins",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("next_path", sa.String(2000), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sso_logins_expires", "sso_logins", ["expires_at"])


def downgrade() -> None:
    op.drop_table("sso_logins")
    with op.batch_alter_table("sessions") as batch:  # SQLite rebuilds the table
        batch.drop_column("id_token")
        batch.drop_column("last_seen_at")
    op.drop_index("ux_users_sso", "users")
    # single sign-on accounts cannot log in without the provider: keep them, deactivated
    op.execute("UPDATE users SET active = false WHERE sso_subject IS NOT NULL")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sso_subject")
        batch.drop_column("sso_issuer")
