"""多人同诉 groups and near-duplicate (merge) candidates of work orders.

Revision ID: 0101
Revises: 0400
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0101"
down_revision = "0300"  # relinked after merging the background-jobs migration
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_groups",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("main_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "ticket_group_members",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("group_id", BigId, sa.ForeignKey("ticket_groups.id"), nullable=False),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("added_by", sa.String(100), nullable=False),
    )
    op.create_index("ix_group_members_group", "ticket_group_members", ["group_id"])
    op.create_table(
        "ticket_similar",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("other_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("ticket_id", "other_id", name="uq_similar_pair"),
    )
    op.create_index("ix_similar_other", "ticket_similar", ["other_id"])


def downgrade() -> None:
    op.drop_table("ticket_similar")
    op.drop_table("ticket_group_members")
    op.drop_table("ticket_groups")
