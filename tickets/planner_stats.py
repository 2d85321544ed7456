"""Representative planner statistics for SQLite, so its query planner picks the lists' indexes
by their selectivity from the first day instead of guessing.

Without `sqlite_stat1` SQLite assumes an equality on any index narrows to a handful of rows, so
`channel = 'web' ORDER BY id DESC LIMIT 50` reads a quarter of the orders through the channel
index and sorts them instead of walking the primary key. ANALYZE would fix that, but at a
million orders it holds the write lock for tens of seconds, stopping intake. SQLite documents
the alternative used here: ship the statistics of a representative database ("Manual Control
Of Query Plans Using SQLITE_STAT Tables", sqlite.org/optoverview.html). These are the figures
`ANALYZE` gave on bench/console_pages.py's year of 1,000,000 orders; they describe proportions
(rows per distinct key), which hold at any size. A real ANALYZE later replaces them.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

# (table, index, stat): "rows, then rows per distinct value of each leading column prefix"
STATS: tuple[tuple[str, str, str], ...] = (
    ("tickets", "ix_tickets_caller_phone", "1000000 2"),
    ("tickets", "ix_tickets_channel_created", "1000000 250000 1"),
    ("tickets", "ix_tickets_created", "1000000 1"),
    ("tickets", "ix_tickets_kind", "1000000 166667 1"),
    ("tickets", "ix_tickets_master", "1000000 1000"),
    ("tickets", "ix_tickets_next_due", "150000 2"),
    ("tickets", "ix_tickets_region", "1000000 8621 1"),
    ("tickets", "ix_tickets_route_state", "1000000 333334 1"),
    ("tickets", "ix_tickets_status_created", "1000000 83334 1"),
    ("tickets", "ix_tickets_status_due", "1000000 83334 1127"),
    ("tickets", "ix_tickets_supervised_due", "1000000 500000 1181"),
    ("ticket_assignments", "ix_assignments_department_state", "908970 436 150 1"),
    ("ticket_assignments", "ix_assignments_extension", "908970 454485 1"),
    ("ticket_assignments", "ix_assignments_ticket", "908970 1"),
    ("ticket_clocks", "ix_clocks_next", "22346 2"),
    ("ticket_clocks", "ix_clocks_ticket", "2777588 3"),
    ("ticket_events", "ix_events_ticket", "6414156 7 1"),
    # a WITHOUT ROWID table's primary key is listed under the table's own name
    ("ticket_categories", "ticket_categories", "500264 33351 1"),
)


def install(conn: Connection) -> bool:
    """Write STATS unless the database has statistics for the orders already (a real ANALYZE
    wins); the planner reads them from the next statement on. True when written."""
    conn.exec_driver_sql("ANALYZE ticket_numbers")  # creates sqlite_stat1 (a small table)
    have = conn.exec_driver_sql("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'tickets'")
    if have.scalar_one():
        return False
    conn.execute(
        text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (:t, :i, :s)"),
        [{"t": t, "i": i, "s": s} for t, i, s in STATS],
    )
    conn.exec_driver_sql("ANALYZE sqlite_schema")  # reload the statistics
    return True


def add_index(conn: Connection, index: str) -> bool:
    """A migration added `index`: give it its line of STATS if the database has this module's
    statistics (or a real ANALYZE's) and none for it yet, so the planner does not take a new
    index for a selective one. True when written."""
    table, stat = next((t, s) for t, i, s in STATS if i == index)
    conn.exec_driver_sql("ANALYZE ticket_numbers")  # sqlite_stat1 exists from here on
    # the orders' statistics: this module's (or ANALYZE's) were installed
    have = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'tickets'"
    ).scalar_one()
    known = conn.execute(
        text("SELECT count(*) FROM sqlite_stat1 WHERE idx = :i"), {"i": index}
    ).scalar_one()
    if not have or known:
        return False
    conn.execute(
        text("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (:t, :i, :s)"),
        {"t": table, "i": index, "s": stat},
    )
    conn.exec_driver_sql("ANALYZE sqlite_schema")
    return True
