"""Statistics: the orders' facts, the aggregate cubes and the call centre's hourly counts,
backfilled from the existing orders and call records.

Revision ID: 0200
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from telephony.tables import CALL_HOUR_MEASURES
from tickets.indicators import MEASURES
from tickets.stats_tables import CUBES, DIM_TYPES
from tickets.tables import BigId, UTCDateTime

revision = "0200"
down_revision = "0102"  # relinked after merging main (search, background jobs); was "0005"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
# the deployment's zone ([locale] timezone); another zone: run `hotline stats rebuild` after
BACKFILL_ZONE = "Asia/Shanghai"
BACKFILL_BATCH = 2000


def upgrade() -> None:
    for cube in CUBES:
        op.create_table(
            f"stats_{cube.name}",
            sa.Column("grain", sa.SmallInteger, nullable=False),
            sa.Column("period", sa.Integer, nullable=False),
            *[sa.Column(d, DIM_TYPES[d], nullable=False) for d in cube.dims],
            sa.Column("shard", sa.SmallInteger, nullable=False, server_default="0"),
            *[sa.Column(m, sa.Integer, nullable=False, server_default="0") for m in MEASURES],
            sa.PrimaryKeyConstraint(*cube.key, name=f"pk_stats_{cube.name}"),
            sqlite_with_rowid=False,
        )
    op.create_table(
        "stats_order_facts",
        sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), primary_key=True),
        sa.Column("dims", sa.JSON, nullable=False),
        sa.Column("cells", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "stats_call_hours",
        sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
        *[
            sa.Column(m, sa.BigInteger, nullable=False, server_default="0")
            for m in CALL_HOUR_MEASURES
        ],
    )
    backfill(op.get_bind())


def backfill(conn: sa.Connection) -> None:
    from telephony import call_stats_store
    from tickets import stats_store

    call_stats_store.rebuild_calls(conn)
    lo, hi = stats_store.id_bounds(conn)
    if hi == 0:
        return
    tz, now, done = ZoneInfo(BACKFILL_ZONE), datetime.now(UTC), 0
    for start in range(lo, hi + 1, BACKFILL_BATCH):
        done += stats_store.rebuild_range(conn, start, start + BACKFILL_BATCH, tz, now)
    log.info("statistics backfilled from %d existing orders", done)


def downgrade() -> None:
    op.drop_table("stats_call_hours")
    op.drop_table("stats_order_facts")
    for cube in reversed(CUBES):
        op.drop_table(f"stats_{cube.name}")
