"""The public 曝光纠错 column: published cases (the approved, redacted texts).

Revision ID: 0201
Revises: 0200
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0201"
down_revision = "0200"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "public_cases",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("title_mn", sa.String(400)),
        sa.Column("question_mn", sa.Text),
        sa.Column("answer_mn", sa.Text),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("region", sa.String(12), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("answered_at", UTCDateTime, nullable=False),
        sa.Column("satisfaction", sa.String(16)),
        sa.Column("created_by", BigId),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("published_by", BigId),
        sa.Column("published_at", UTCDateTime),
    )
    op.create_index("ix_public_cases_published", "public_cases", ["state", "published_at"])


def downgrade() -> None:
    op.drop_table("public_cases")
