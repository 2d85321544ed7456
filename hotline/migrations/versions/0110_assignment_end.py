"""When a department's task ended (退单, 下派, withdrawn): what a past assignee may still read.

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import UTCDateTime

revision = "0110"
down_revision = "0100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket_assignments") as batch:
        batch.add_column(sa.Column("ended_at", UTCDateTime))


def downgrade() -> None:
    with op.batch_alter_table("ticket_assignments") as batch:
        batch.drop_column("ended_at")
