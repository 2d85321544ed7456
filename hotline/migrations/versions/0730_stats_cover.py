"""The statistics cubes read on PostgreSQL from their key alone: the primary key of the cubes
that the series, breakdowns and hot topics read also holds `received` and `concluded`
(`INCLUDE`), so summing a league's year of weeks is an index-only scan instead of one heap
page per row (a cube's rows for one region and period are written over that period,
interleaved with every other region's, so no two share a page). SQLite keeps the cubes as
`WITHOUT ROWID` tables, already stored in their key's order: nothing to do there.

The ranking cubes (dd, dk) read some twenty measures per row and are left as they are.

Revision ID: 0730
Revises: 0720
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0730"
down_revision = "0720"
branch_labels = None
depends_on = None

# the cubes' keys as tickets/stats_tables.py had them when this was written (kept frozen)
_UP = (
    """ALTER TABLE stats_ck DROP CONSTRAINT pk_stats_ck, ADD CONSTRAINT pk_stats_ck
        PRIMARY KEY (grain, period, channel, kind, category, shard)
        INCLUDE (received, concluded)""",
    """ALTER TABLE stats_rk DROP CONSTRAINT pk_stats_rk, ADD CONSTRAINT pk_stats_rk
        PRIMARY KEY (grain, period, region, channel, kind, shard)
        INCLUDE (received, concluded)""",
    """ALTER TABLE stats_rg DROP CONSTRAINT pk_stats_rg, ADD CONSTRAINT pk_stats_rg
        PRIMARY KEY (grain, region, period, channel, kind, category, shard)
        INCLUDE (received, concluded)""",
    """ALTER TABLE stats_dp DROP CONSTRAINT pk_stats_dp, ADD CONSTRAINT pk_stats_dp
        PRIMARY KEY (grain, department, period, region, channel, kind, category, shard)
        INCLUDE (received, concluded)""",
)
_DOWN = (
    """ALTER TABLE stats_ck DROP CONSTRAINT pk_stats_ck, ADD CONSTRAINT pk_stats_ck
        PRIMARY KEY (grain, period, channel, kind, category, shard)""",
    """ALTER TABLE stats_rk DROP CONSTRAINT pk_stats_rk, ADD CONSTRAINT pk_stats_rk
        PRIMARY KEY (grain, period, region, channel, kind, shard)""",
    """ALTER TABLE stats_rg DROP CONSTRAINT pk_stats_rg, ADD CONSTRAINT pk_stats_rg
        PRIMARY KEY (grain, region, period, channel, kind, category, shard)""",
    """ALTER TABLE stats_dp DROP CONSTRAINT pk_stats_dp, ADD CONSTRAINT pk_stats_dp
        PRIMARY KEY (grain, department, period, region, channel, kind, category, shard)""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _UP:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _DOWN:
            op.execute(statement)
