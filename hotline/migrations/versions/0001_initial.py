"""Initial schema: work orders, assignments, audit events, daily numbers, users, sessions.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, UTCDateTime, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200)),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("category", sa.JSON, nullable=False),
        sa.Column("region", sa.String(12)),
        sa.Column("address", sa.String(500)),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("caller_name", sa.String(100)),
        sa.Column("caller_phone", sa.String(32)),
        sa.Column("caller_confidential", sa.Boolean, nullable=False),
        sa.Column("attachments", sa.JSON, nullable=False),
        sa.Column("answer", sa.Text),
        _ts("answered_at"),
        sa.Column("satisfaction", sa.String(16)),
        sa.Column("satisfaction_note", sa.Text),
        sa.Column("master_id", BigId, sa.ForeignKey("tickets.id")),
        sa.Column("supervised", sa.Boolean, nullable=False),
        sa.Column("urge_count", sa.Integer, nullable=False),
        sa.Column("rework_count", sa.Integer, nullable=False),
        _ts("reply_due"),
        _ts("created_at", False),
        _ts("updated_at", False),
        _ts("closed_at"),
    )
    op.create_index("ix_tickets_status_created", "tickets", ["status", "created_at"])
    op.create_index("ix_tickets_channel_created", "tickets", ["channel", "created_at"])
    op.create_index("ix_tickets_caller_phone", "tickets", ["caller_phone"])
    op.create_index("ix_tickets_created", "tickets", ["created_at"])
    op.create_index("ix_tickets_master", "tickets", ["master_id"])

    op.create_table(
        "ticket_assignments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        sa.Column("department", sa.String(64), nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _ts("created_at", False),
        _ts("sign_due"),
        _ts("reply_due"),
        _ts("signed_at"),
        _ts("replied_at"),
        sa.Column("reply", sa.Text),
        sa.Column("return_reason", sa.Text),
        sa.Column("extension_state", sa.String(16), nullable=False),
        _ts("extension_until"),
        sa.Column("extension_reason", sa.Text),
        sa.Column("forwarded_from", BigId, sa.ForeignKey("ticket_assignments.id")),
    )
    op.create_index("ix_assignments_ticket", "ticket_assignments", ["ticket_id"])
    op.create_index(
        "ix_assignments_department_state", "ticket_assignments", ["department", "state"]
    )

    op.create_table(
        "ticket_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False),
        _ts("at", False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("actor_id", BigId),
        sa.Column("actor_name", sa.String(100), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("reason", sa.Text),
        sa.Column("old", sa.JSON, nullable=False),
        sa.Column("new", sa.JSON, nullable=False),
        sa.Column("assignment_id", BigId),
    )
    op.create_index("ix_events_ticket", "ticket_events", ["ticket_id", "id"])

    op.create_table(
        "ticket_numbers",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )

    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        _ts("created_at", False),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _ts("created_at", False),
        _ts("expires_at", False),
    )
    op.create_index("ix_sessions_expires", "sessions", ["expires_at"])
    op.create_index("ix_sessions_user", "sessions", ["user_id"])

    # the audit trail is append-only: the database itself refuses UPDATE and DELETE
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION ticket_events_append_only() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'ticket_events is append-only'; END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER ticket_events_no_change BEFORE UPDATE OR DELETE ON ticket_events "
            "FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER ticket_events_no_{verb.lower()} BEFORE {verb} ON ticket_events "
                "BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_events_no_change ON ticket_events")
        op.execute("DROP FUNCTION IF EXISTS ticket_events_append_only()")
    for name in ("sessions", "users", "ticket_numbers", "ticket_events", "ticket_assignments"):
        op.drop_table(name)
    op.drop_table("tickets")
