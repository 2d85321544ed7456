"""SQL tables of the statistics: each order's facts, and the aggregate cubes kept from them.

A cube holds the counts of tickets.indicators.MEASURES summed over some of the dimensions
(department, region, channel, kind, category) per period: a day, an ISO week and a month for
dated counts, one snapshot row for `open`/`overdue`, and deadline days for `due`. Any period is
read as whole months + whole weeks + single days, so a year costs a few dozen rows per group,
not a scan of the year's orders. Each cube's key starts with the dimensions it is filtered on.

`shard` is the writer thread that counted (PostgreSQL runs several): today's rows are counted by
every order change, and one row per writer keeps writers from waiting on each other's row
locks (or deadlocking); readers sum the shards like any other rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import sqlalchemy as sa

from tickets.indicators import MEASURES
from tickets.tables import BigId, UTCDateTime, metadata


class Grain(IntEnum):
    SNAPSHOT = 0  # period 0: open / overdue now
    DAY = 1  # period: the day's ordinal (date.toordinal) in local time
    WEEK = 2  # period: the ordinal of the week's Monday
    MONTH = 3  # period: the ordinal of the month's first day
    DUE = 4  # period: the ordinal of a deadline's day (the `due` measure only)
    QUARTER = 5  # period: the ordinal of the quarter's first day (department cubes only)


DIMS = ("department", "region", "channel", "kind", "category")
DIM_TYPES = {
    "department": sa.String(64),
    "region": sa.String(12),
    "channel": sa.String(16),
    "kind": sa.String(16),
    "category": sa.String(50),
}


@dataclass(frozen=True, slots=True)
class Cube:
    name: str
    dims: tuple[str, ...]
    lead: tuple[str, ...] = ()  # dimensions before the period in the key (filtered on)
    # also counted per quarter: the rankings read every department over long periods
    quarters: bool = False
    # measures the key's index also holds on PostgreSQL (INCLUDE): the series, breakdowns and
    # hot topics then read these cubes from the index alone (migration 0730)
    covers: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, ...]:
        rest = tuple(d for d in self.dims if d not in self.lead)
        return ("grain", *self.lead, "period", *rest, "shard")


COVERS = ("received", "concluded")  # what the series, breakdowns and hot topics sum

# cheapest first for the queries each serves (tickets/stats_store.choose_cube)
CUBES: tuple[Cube, ...] = (
    Cube("dd", ("department",), quarters=True),  # rankings over all departments
    Cube("ck", ("channel", "kind", "category"), covers=COVERS),  # the whole centre
    Cube("rk", ("region", "channel", "kind"), covers=COVERS),  # by region
    Cube(
        "dk", ("department", "channel", "kind"), lead=("channel", "kind"), quarters=True
    ),  # rankings, filtered
    Cube(
        "rg", ("region", "channel", "kind", "category"), lead=("region",), covers=COVERS
    ),  # one region
    Cube(
        "dp",
        ("department", "region", "channel", "kind", "category"),
        lead=("department",),
        covers=COVERS,
    ),  # one department
)


def _cube_table(cube: Cube) -> sa.Table:
    cols: list[sa.Column[object]] = [
        sa.Column("grain", sa.SmallInteger, nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
    ]
    cols += [sa.Column(d, DIM_TYPES[d], nullable=False) for d in cube.dims]
    cols.append(sa.Column("shard", sa.SmallInteger, nullable=False, server_default="0"))
    cols += [sa.Column(m, sa.Integer, nullable=False, server_default="0") for m in MEASURES]
    return sa.Table(
        f"stats_{cube.name}",
        metadata,
        *cols,
        sa.PrimaryKeyConstraint(
            *cube.key, name=f"pk_stats_{cube.name}", postgresql_include=list(cube.covers)
        ),
        sqlite_with_rowid=False,
    )


cube_tables: dict[str, sa.Table] = {c.name: _cube_table(c) for c in CUBES}

# what each order counts for now: the aggregates apply the difference on every change
order_facts = sa.Table(
    "stats_order_facts",
    metadata,
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), primary_key=True),
    sa.Column("dims", sa.JSON, nullable=False),  # [region, channel, kind, category]
    sa.Column("cells", sa.JSON, nullable=False),  # [[day, department, measure, count], …]
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
