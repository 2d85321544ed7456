"""Telephony: call records; tickets.intake_key makes intake idempotent per channel message.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("intake_key", sa.String(120)))
        batch.create_unique_constraint("uq_tickets_intake_key", ["intake_key"])
    op.create_table(
        "calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("dialled", sa.String(64), nullable=False),
        sa.Column("worker", sa.Integer, nullable=False),
        sa.Column("language", sa.String(8)),
        sa.Column("ivr_path", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("offered_at", UTCDateTime, nullable=False),
        sa.Column("queued_at", UTCDateTime),
        sa.Column("answered_at", UTCDateTime),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("outcome", sa.String(16)),
        sa.Column("agent", sa.String(64)),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
        sa.Column("recording", sa.String(300)),
        sa.Column("recording_purged", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_calls_offered", "calls", ["offered_at"])
    op.create_index("ix_calls_caller", "calls", ["caller", "offered_at"])
    op.create_index("ix_calls_ticket", "calls", ["ticket_id"])


def downgrade() -> None:
    op.drop_table("calls")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint("uq_tickets_intake_key", type_="unique")
        batch.drop_column("intake_key")
