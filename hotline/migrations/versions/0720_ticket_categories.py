"""The lists' category filter at a million orders: every name of an order's category path in
a table of its own, indexed by name, so a list of one category (城乡建设, or 物业管理 at the
second level) reads its orders from an index instead of every order's JSON path as text.

Triggers on `tickets` keep the table in the statement that inserts, re-categorises or deletes
an order, on both dialects: the store's code, a bulk load and a hand-run UPDATE alike.

Revision ID: 0720
Revises: 0710
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tickets import planner_stats
from tickets.tables import BigId

revision = "0720"
down_revision = "0710"
branch_labels = None
depends_on = None

# the names of a row's path, each once (a path that is not a JSON array has none)
_SQLITE_TRIGGERS = (
    """CREATE TRIGGER ticket_categories_insert AFTER INSERT ON tickets BEGIN
        INSERT OR IGNORE INTO ticket_categories (name, ticket_id)
        SELECT DISTINCT value, NEW.id FROM json_each(NEW.category) WHERE type = 'text';
    END""",
    """CREATE TRIGGER ticket_categories_update AFTER UPDATE OF category ON tickets BEGIN
        DELETE FROM ticket_categories WHERE ticket_id = OLD.id AND name IN
            (SELECT value FROM json_each(OLD.category) WHERE type = 'text');
        INSERT OR IGNORE INTO ticket_categories (name, ticket_id)
        SELECT DISTINCT value, NEW.id FROM json_each(NEW.category) WHERE type = 'text';
    END""",
    """CREATE TRIGGER ticket_categories_delete AFTER DELETE ON tickets BEGIN
        DELETE FROM ticket_categories WHERE ticket_id = OLD.id AND name IN
            (SELECT value FROM json_each(OLD.category) WHERE type = 'text');
    END""",
)
_PG_FUNCTION = """
CREATE FUNCTION ticket_categories_sync() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND json_typeof(OLD.category) = 'array' THEN
        DELETE FROM ticket_categories WHERE ticket_id = OLD.id AND name IN
            (SELECT json_array_elements_text(OLD.category));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND json_typeof(NEW.category) = 'array' THEN
        INSERT INTO ticket_categories (name, ticket_id)
        SELECT DISTINCT n, NEW.id FROM json_array_elements_text(NEW.category) n
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "ticket_categories",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("ticket_id", BigId, primary_key=True),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(
            "INSERT INTO ticket_categories (name, ticket_id) "
            "SELECT DISTINCT n, t.id FROM tickets t, json_array_elements_text(t.category) n "
            "WHERE json_typeof(t.category) = 'array'"
        )
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER ticket_categories_sync "
            "AFTER INSERT OR DELETE OR UPDATE OF category ON tickets "
            "FOR EACH ROW EXECUTE FUNCTION ticket_categories_sync()"
        )
        return
    op.execute(
        "INSERT OR IGNORE INTO ticket_categories (name, ticket_id) "
        "SELECT j.value, t.id FROM tickets t, json_each(t.category) j WHERE j.type = 'text'"
    )
    for trigger in _SQLITE_TRIGGERS:
        op.execute(trigger)
    planner_stats.add_index(conn, "ticket_categories")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ticket_categories_sync ON tickets")
        op.execute("DROP FUNCTION IF EXISTS ticket_categories_sync()")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS ticket_categories_{name}")
    op.drop_table("ticket_categories")
