"""SMS: inbox (idempotent on the gateway's key), durable outbox, block list, survey opt-outs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_inbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column("sender", sa.String(32), nullable=False),
        sa.Column("receiver", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("handled_as", sa.String(16), nullable=False),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
    )
    op.create_index("ix_sms_inbox_sender", "sms_inbox", ["sender", "received_at"])
    op.create_table(
        "sms_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_at", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("last_error", sa.String(300)),
        sa.Column("dedupe", sa.String(120), unique=True),
    )
    op.create_index("ix_sms_outbox_due", "sms_outbox", ["status", "next_at", "id"])
    op.create_index("ix_sms_outbox_recipient", "sms_outbox", ["recipient", "id"])
    op.create_table(
        "sms_blocklist",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "sms_optout",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sms_optout")
    op.drop_table("sms_blocklist")
    op.drop_table("sms_outbox")
    op.drop_table("sms_inbox")
