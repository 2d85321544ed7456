"""Deadline clocks watched by the deadline watcher; ticket_events refuses TRUNCATE.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_clocks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("assignment_id", BigId, sa.ForeignKey("ticket_assignments.id")),
        sa.Column("clock", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("start_at", UTCDateTime, nullable=False),
        sa.Column("warn_at", UTCDateTime, nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("next_at", UTCDateTime),
        sa.Column("warned_at", UTCDateTime),
        sa.Column("overdue_at", UTCDateTime),
        sa.Column("stopped_at", UTCDateTime),
    )
    op.create_index("ix_clocks_ticket", "ticket_clocks", ["ticket_id"])
    op.create_index(
        "ix_clocks_next",
        "ticket_clocks",
        ["next_at"],
        sqlite_where=sa.text("next_at IS NOT NULL"),
        postgresql_where=sa.text("next_at IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "postgresql":
        # append-only also against TRUNCATE (a statement-level trigger; 0001 covered rows)
        op.execute(
            "CREATE TRIGGER ticket_events_no_truncate BEFORE TRUNCATE ON ticket_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION ticket_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_truncate ON ticket_events")
    op.drop_table("ticket_clocks")
