"""Triage: route state and suggestion on each order; labelled examples for the classifier.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("route_state", sa.String(8), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("suggestion", sa.JSON))
    op.create_index("ix_tickets_route_state", "tickets", ["route_state", "id"])
    op.create_table(
        "training_examples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("category", sa.JSON, nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor_id", BigId),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_examples_created", "training_examples", ["created_at"])


def downgrade() -> None:
    op.drop_table("training_examples")
    op.drop_index("ix_tickets_route_state", "tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("suggestion")
        batch.drop_column("route_state")
