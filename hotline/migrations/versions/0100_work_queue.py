"""Durable work queue (outbox) written in the transaction of the order change.

Revision ID: 0100
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0100"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_queue",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("ticket_id", BigId),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", UTCDateTime, nullable=False),
        sa.Column("lease", sa.String(36)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.String(300)),
    )
    op.create_index("ix_work_queue_due", "work_queue", ["topic", "next_at", "id"])


def downgrade() -> None:
    op.drop_table("work_queue")
