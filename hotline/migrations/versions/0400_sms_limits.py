"""SMS abuse limits: seen webhook signatures (replays refused), folded acknowledgements and a
per-number lock for deciding citizens' notices.

Revision ID: 0400
Revises: 0110
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0400"
down_revision = "0110"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_webhook_seen",
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("seen_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_sms_webhook_seen_at", "sms_webhook_seen", ["seen_at"])
    op.add_column("sms_outbox", sa.Column("fold_until", UTCDateTime))
    op.add_column("sms_outbox", sa.Column("folded_into", BigId))
    op.create_index("ix_sms_outbox_folded_into", "sms_outbox", ["folded_into"])
    op.create_table(
        "sms_recipient_locks",
        sa.Column("phone", sa.String(32), primary_key=True),
        sa.Column("locked_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sms_recipient_locks")
    op.drop_index("ix_sms_outbox_folded_into", "sms_outbox")
    with op.batch_alter_table("sms_outbox") as batch:  # SQLite rebuilds the table
        batch.drop_column("folded_into")
        batch.drop_column("fold_until")
    op.drop_table("sms_webhook_seen")
