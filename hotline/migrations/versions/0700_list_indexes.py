"""Work lists at a million orders: each order's earliest running deadline on the order itself
(sort by deadline, the overdue list), and indexes for the queues' conditions (region, 督办,
a department's tasks, extension requests).

Revision ID: 0700
Revises: 0600
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets import planner_stats, store
from tickets.tables import UTCDateTime

revision = "0700"
down_revision = "0600"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("next_due_at", UTCDateTime))
    store.refresh_next_due(op.get_bind())
    live = sa.text("next_due_at IS NOT NULL")
    op.create_index(
        "ix_tickets_next_due",
        "tickets",
        ["next_due_at"],
        sqlite_where=live,
        postgresql_where=live,
    )
    op.create_index("ix_tickets_supervised_due", "tickets", ["supervised", "next_due_at"])
    op.create_index("ix_tickets_region", "tickets", ["region", "id"])
    op.create_index("ix_clocks_state_due", "ticket_clocks", ["state", "due_at"])
    op.create_index("ix_tickets_status_due", "tickets", ["status", "next_due_at"])
    op.drop_index("ix_assignments_department_state", table_name="ticket_assignments")
    op.create_index(
        "ix_assignments_department_state",
        "ticket_assignments",
        ["department", "state", "ticket_id"],
    )
    op.create_index(
        "ix_assignments_extension", "ticket_assignments", ["extension_state", "ticket_id"]
    )
    if op.get_bind().dialect.name == "sqlite":
        planner_stats.install(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_assignments_extension", table_name="ticket_assignments")
    op.drop_index("ix_assignments_department_state", table_name="ticket_assignments")
    op.create_index(
        "ix_assignments_department_state", "ticket_assignments", ["department", "state"]
    )
    op.drop_index("ix_tickets_status_due", table_name="tickets")
    op.drop_index("ix_clocks_state_due", table_name="ticket_clocks")
    op.drop_index("ix_tickets_region", table_name="tickets")
    op.drop_index("ix_tickets_supervised_due", table_name="tickets")
    op.drop_index("ix_tickets_next_due", table_name="tickets")
    # SQLite ≥ 3.35 drops the column in place (a batch rebuild of tickets would trip the
    # ticket_events trigger that reads it)
    op.execute("ALTER TABLE tickets DROP COLUMN next_due_at")
