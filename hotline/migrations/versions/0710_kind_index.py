"""The work lists' kind filter at a million orders: an index on (kind, id), so a list of one
kind (投诉, 咨询 …) counts its orders and pages them newest first from the index instead of
reading the table.

Revision ID: 0710
Revises: 0700
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from tickets import planner_stats

revision = "0710"
down_revision = "0700"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tickets_kind", "tickets", ["kind", "id"])
    if op.get_bind().dialect.name == "sqlite":
        planner_stats.add_index(op.get_bind(), "ix_tickets_kind")


def downgrade() -> None:
    op.drop_index("ix_tickets_kind", table_name="tickets")
