"""SMS abuse limits: seen webhook signatures (replays refused).

Revision ID: 0400
Revises: 0100
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import UTCDateTime

revision = "0400"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_webhook_seen",
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sms_webhook_seen_at", "sms_webhook_seen", ["seen_at"])


def downgrade() -> None:
    op.drop_table("sms_webhook_seen")
