"""Personal data: the access log (audited reads), retention marks on orders, and an audit trail
whose events may lose their personal content once their order is purged (nothing else).

Revision ID: 0600
Revises: 0500
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets.tables import BigId, UTCDateTime

revision = "0600"
down_revision = "0500"  # relinked after merging main (written against 0400)
branch_labels = None
depends_on = None

# An audit event's who, what and when (id, ticket_id, at, actor_role, actor_id, actor_name,
# action, from_status, to_status, assignment_id) never change, even by retention; its
# reason/old/new may lose their personal content once its order is marked purged.
_PG_EVENTS_OLD = """
CREATE OR REPLACE FUNCTION ticket_events_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'ticket_events is append-only'; END;
$$ LANGUAGE plpgsql
"""

_PG_EVENTS_NEW = """
CREATE OR REPLACE FUNCTION ticket_events_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'ticket_events is append-only';
  END IF;
  IF (NEW.id, NEW.ticket_id, NEW.at, NEW.actor_role, NEW.actor_id, NEW.actor_name,
      NEW.action, NEW.from_status, NEW.to_status, NEW.assignment_id)
     IS DISTINCT FROM
     (OLD.id, OLD.ticket_id, OLD.at, OLD.actor_role, OLD.actor_id, OLD.actor_name,
      OLD.action, OLD.from_status, OLD.to_status, OLD.assignment_id)
     OR NOT EXISTS (SELECT 1 FROM tickets WHERE id = OLD.ticket_id AND purged_at IS NOT NULL)
  THEN
    RAISE EXCEPTION 'ticket_events is append-only (only a purged order''s details change)';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

_SQLITE_EVENTS_NEW = """
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
WHEN NEW.id IS NOT OLD.id OR NEW.ticket_id IS NOT OLD.ticket_id OR NEW.at IS NOT OLD.at
  OR NEW.actor_role IS NOT OLD.actor_role OR NEW.actor_id IS NOT OLD.actor_id
  OR NEW.actor_name IS NOT OLD.actor_name OR NEW.action IS NOT OLD.action
  OR NEW.from_status IS NOT OLD.from_status OR NEW.to_status IS NOT OLD.to_status
  OR NEW.assignment_id IS NOT OLD.assignment_id
  OR NOT EXISTS (SELECT 1 FROM tickets WHERE id = OLD.ticket_id AND purged_at IS NOT NULL)
BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only (only a purged order''s details change)');
END
"""
_SQLITE_EVENTS_OLD = (
    "CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events "
    "BEGIN SELECT RAISE(ABORT, 'ticket_events is append-only'); END"
)


def upgrade() -> None:
    op.add_column("tickets", sa.Column("purged_at", UTCDateTime))
    op.add_column("tickets", sa.Column("files_purged_at", UTCDateTime))
    op.create_table(
        "access_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor_id", BigId),
        sa.Column("actor_name", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("department", sa.String(64)),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("ticket_id", BigId),
        sa.Column("subject", sa.String(80)),
        sa.Column("reason", sa.String(500)),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("ix_access_log_at", "access_log", ["at"])
    op.create_index("ix_access_log_ticket", "access_log", ["ticket_id", "at"])
    op.create_index("ix_access_log_actor", "access_log", ["actor_id", "at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_EVENTS_NEW)
        op.execute(
            """
            CREATE FUNCTION access_log_append_only() RETURNS trigger AS $$
            BEGIN
              IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'access_log is append-only'; END IF;
              IF OLD.at > (now() AT TIME ZONE 'UTC') - interval '365 days' THEN
                RAISE EXCEPTION 'access_log: rows younger than a year are kept';
              END IF;
              RETURN OLD;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log "
            "FOR EACH ROW EXECUTE FUNCTION access_log_append_only()"
        )
    else:
        op.execute("DROP TRIGGER ticket_events_no_update")
        op.execute(_SQLITE_EVENTS_NEW)
        op.execute(
            "CREATE TRIGGER access_log_no_update BEFORE UPDATE ON access_log "
            "BEGIN SELECT RAISE(ABORT, 'access_log is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER access_log_no_delete BEFORE DELETE ON access_log "
            "WHEN OLD.at > datetime('now', '-365 days') "
            "BEGIN SELECT RAISE(ABORT, 'access_log: rows younger than a year are kept'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS access_log_no_change ON access_log")
        op.execute("DROP FUNCTION IF EXISTS access_log_append_only()")
        op.execute(_PG_EVENTS_OLD)
    else:
        op.execute("DROP TRIGGER ticket_events_no_update")
        op.execute(_SQLITE_EVENTS_OLD)
    op.drop_table("access_log")
    with op.batch_alter_table("tickets") as batch:  # SQLite rebuilds the table
        batch.drop_column("files_purged_at")
        batch.drop_column("purged_at")
