"""Statistics use cases for managers, supervisors and departments: volumes, indicators, the
department ranking (月度通报), trends and hot topics, read from the aggregate cubes.

Who sees what: managers, supervisors and admins everything; a department its own figures and
its rank among the departments compared with it, never another department's figures.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from tickets import stats_store
from tickets.db import Database
from tickets.errors import DepartmentForbidden, InvalidInput, RoleForbidden
from tickets.indicators import (
    CENTRE,
    DEFAULT_WEIGHTS,
    MEASURES,
    RANK_MEASURES,
    Ranked,
    rank,
    rates,
    score,
)
from tickets.model import Actor, Channel, Kind, Role
from tickets.stats_store import CubeQuery, decompose, month_start, next_month, week_start
from tickets.stats_tables import CUBES, Grain

FULL_ROLES = frozenset({Role.MANAGER, Role.SUPERVISOR, Role.ADMIN})
MAX_DAYS = 3700  # ten years in one query
BUCKETS = ("day", "week", "month")
BREAKDOWNS = ("channel", "kind", "category", "region", "department")
UNKNOWN = ""  # a region or category not (yet) known
SNAPSHOT = frozenset({"open", "overdue"})  # counts of now, not of a period
# what a breakdown shows by default: the period's orders and answers, and open ones now
BREAKDOWN_MEASURES = ("received", "concluded", "open", "overdue")


class StatsDirectory(Protocol):
    """Regions and departments (implemented by routing.directory.Directory)."""

    def has_region(self, code: str) -> bool: ...
    def has_department(self, code: str) -> bool: ...
    def regions_under(self, code: str) -> list[str]: ...
    def league_of(self, code: str) -> str | None: ...
    def department_region(self, code: str) -> str | None: ...
    def department_codes(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class StatsFilter:
    """The page's and the API's filters; `until` is the last day included (local dates)."""

    since: date
    until: date
    region: str | None = None
    department: str | None = None
    channel: str | None = None
    kind: str | None = None

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    def previous(self) -> StatsFilter:
        """The period of the same length just before this one."""
        span = timedelta(days=self.days)
        return dataclasses.replace(self, since=self.since - span, until=self.until - span)


@dataclass(frozen=True, slots=True)
class Overview:
    totals: dict[str, int]
    rates: dict[str, float | None]
    open: int
    overdue: int
    due_today: int


@dataclass(frozen=True, slots=True)
class Ranking:
    rows: list[Ranked]
    peers: int  # how many were ranked
    trend_months: list[date]  # months of each row's score trend (sparkline)
    trends: dict[str, list[float | None]]


@dataclass(frozen=True, slots=True)
class Series:
    bucket: str
    starts: list[date]  # first day of each bucket
    groups: dict[str, list[int]]  # group key ("" without grouping) → count per bucket


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    current: int
    previous: int

    @property
    def delta(self) -> int:
        return self.current - self.previous

    @property
    def ratio(self) -> float | None:
        return None if self.previous == 0 else self.delta / self.previous


@dataclass(frozen=True, slots=True)
class HotTopics:
    categories: list[Change]
    regions: list[Change]
    previous: StatsFilter


class StatsService:
    def __init__(
        self,
        db: Database,
        directory: StatsDirectory,
        *,
        timezone: str = "Asia/Shanghai",
        weights: Mapping[str, float] | None = None,
        min_assigned: int = 1,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.directory = directory
        self.tz = ZoneInfo(timezone)
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        self.min_assigned = min_assigned
        self.clock = clock

    def today(self) -> date:
        return self.clock().astimezone(self.tz).date()

    # -- checks ---------------------------------------------------------------------------------
    def check(self, f: StatsFilter) -> StatsFilter:
        if f.until < f.since:
            raise InvalidInput("结束日期不能早于开始日期", field="until")
        if f.days > MAX_DAYS:
            raise InvalidInput(f"统计区间最长 {MAX_DAYS} 天", field="since")
        if f.region and not self.directory.has_region(f.region):
            raise InvalidInput(f"未知区划代码 {f.region}", field="region")
        if f.department and not self.directory.has_department(f.department):
            raise InvalidInput(f"未知承办单位 {f.department}", field="department")
        if f.channel and f.channel not in {c.value for c in Channel}:
            raise InvalidInput(f"未知渠道 {f.channel}", field="channel")
        if f.kind and f.kind not in {k.value for k in Kind}:
            raise InvalidInput(f"未知诉求类型 {f.kind}", field="kind")
        return f

    def scope(self, actor: Actor, f: StatsFilter) -> StatsFilter:
        """What `actor` may see of `f`: a department only its own figures."""
        f = self.check(f)
        if actor.role in FULL_ROLES:
            return f
        if actor.role is Role.DEPARTMENT and actor.department:
            if f.department not in (None, actor.department):
                raise DepartmentForbidden("只能查看本单位的统计", department=f.department)
            return dataclasses.replace(f, department=actor.department, region=None)
        raise RoleForbidden("当前角色无权查看统计", role=actor.role.value)

    def _filters(self, f: StatsFilter) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if f.department:
            out["department"] = [f.department]
        if f.region and self.directory.league_of(f.region) is not None:  # not the whole region
            out["region"] = self.directory.regions_under(f.region)
        if f.channel:
            out["channel"] = [f.channel]
        if f.kind:
            out["kind"] = [f.kind]
        return out

    def _department_filters(self, f: StatsFilter) -> dict[str, list[str]]:
        """For rankings: a region means the departments of that region (and below)."""
        out = {k: v for k, v in self._filters(f).items() if k != "region"}
        if f.region and not f.department and self.directory.league_of(f.region) is not None:
            regions = set(self.directory.regions_under(f.region))
            out["department"] = [
                code
                for code in self._department_codes()
                if self.directory.department_region(code) in regions
            ]
        return out

    def _department_codes(self) -> list[str]:
        return self.directory.department_codes()

    # -- reading --------------------------------------------------------------------------------
    def _sum(
        self,
        conn: Connection,
        f: StatsFilter,
        filters: Mapping[str, Sequence[str]],
        group_by: Sequence[str] = (),
        measures: Sequence[str] = MEASURES,
    ) -> dict[tuple[Any, ...], dict[str, int]]:
        pieces = decompose(f.since, f.until + timedelta(days=1))
        q = CubeQuery(pieces, filters, group_by, measures)
        return dict(stats_store.sum_cube(conn, q))

    def _snapshot(
        self, conn: Connection, filters: Mapping[str, Sequence[str]], today: date
    ) -> tuple[int, int, int]:
        snap = stats_store.sum_cube(
            conn, CubeQuery({Grain.SNAPSHOT: [0]}, filters, (), ("open", "overdue"))
        )
        due = stats_store.sum_cube(
            conn, CubeQuery({Grain.DUE: [today.toordinal()]}, filters, (), ("due",))
        )
        s = snap[0][1] if snap else {"open": 0, "overdue": 0}
        return s["open"], s["overdue"], due[0][1]["due"] if due else 0

    async def overview(self, actor: Actor, f: StatsFilter) -> Overview:
        f = self.scope(actor, f)
        filters, today = self._filters(f), self.today()

        def tx(conn: Connection) -> Overview:
            found = self._sum(conn, f, filters)
            totals = found.get((), dict.fromkeys(MEASURES, 0))
            open_, overdue, due_today = self._snapshot(conn, filters, today)
            return Overview(totals, rates(totals), open_, overdue, due_today)

        return await self.db.read(tx)

    def _regroup_region(self, f: StatsFilter, code: str) -> str:
        """Show regions one level below the filter: leagues for the whole autonomous region,
        banners and counties inside a league."""
        if f.region and self.directory.league_of(f.region) is not None:
            return code
        return self.directory.league_of(code) or UNKNOWN

    async def breakdown(
        self,
        actor: Actor,
        f: StatsFilter,
        by: str,
        measures: Sequence[str] = BREAKDOWN_MEASURES,
    ) -> list[tuple[str, dict[str, int]]]:
        """Counts per channel, kind, category, region or department, most of the first measure
        first; `open` and `overdue` are the current counts (not of the period)."""
        if by not in BREAKDOWNS:
            raise InvalidInput(f"不能按 {by} 分组", field="by")
        f = self.scope(actor, f)
        filters = self._department_filters(f) if by == "department" else self._filters(f)
        dated = [m for m in measures if m not in SNAPSHOT]
        now = [m for m in measures if m in SNAPSHOT]

        def tx(conn: Connection) -> list[tuple[tuple[Any, ...], dict[str, int]]]:
            found = list(self._sum(conn, f, filters, (by,), dated).items()) if dated else []
            if now:
                q = CubeQuery({Grain.SNAPSHOT: [0]}, filters, (by,), now)
                found += stats_store.sum_cube(conn, q)
            return found

        out: dict[str, dict[str, int]] = {}
        for (key,), totals in await self.db.read(tx):
            if by == "region":
                key = self._regroup_region(f, key)
            if by == "department" and key == CENTRE:
                continue
            acc = out.setdefault(key, dict.fromkeys(measures, 0))
            for m, n in totals.items():
                acc[m] += n
        first = measures[0]
        return sorted(out.items(), key=lambda kv: (-kv[1][first], kv[0]))

    # -- series -----------------------------------------------------------------------------------
    @staticmethod
    def buckets(f: StatsFilter, bucket: str) -> list[tuple[date, date]]:
        """[start, end) of each day, week or month the period touches, cut to the period."""
        if bucket not in BUCKETS:
            raise InvalidInput(f"未知时间粒度 {bucket}（day / week / month）", field="bucket")
        end = f.until + timedelta(days=1)
        start = {"day": f.since, "week": week_start(f.since), "month": month_start(f.since)}[bucket]
        out = []
        while start < end:
            nxt = (
                start + timedelta(days=1)
                if bucket == "day"
                else start + timedelta(days=7)
                if bucket == "week"
                else next_month(start)
            )
            out.append((max(start, f.since), min(nxt, end)))
            start = nxt
        return out

    @staticmethod
    def auto_bucket(f: StatsFilter) -> str:
        return "day" if f.days <= 62 else "week" if f.days <= 400 else "month"

    def _bucketed(
        self,
        conn: Connection,
        spans: Sequence[tuple[date, date]],
        filters: Mapping[str, Sequence[str]],
        group_by: Sequence[str],
        measures: Sequence[str],
    ) -> dict[tuple[int, tuple[Any, ...]], dict[str, int]]:
        """Sums per (bucket index, group) in one query per grain."""
        where: dict[tuple[int, int], int] = {}
        pieces: dict[Grain, list[int]] = {}
        for i, (a, b) in enumerate(spans):
            for grain, periods in decompose(a, b).items():
                for p in periods:
                    where[(int(grain), p)] = i
                    pieces.setdefault(grain, []).append(p)
        q = CubeQuery(pieces, filters, group_by, measures, by_period=True)
        out: dict[tuple[int, tuple[Any, ...]], dict[str, int]] = {}
        for key, totals in stats_store.sum_cube(conn, q):
            idx = where[(int(key[0]), int(key[1]))]
            acc = out.setdefault((idx, tuple(key[2:])), dict.fromkeys(measures, 0))
            for m in measures:
                acc[m] += totals[m]
        return out

    async def series(
        self,
        actor: Actor,
        f: StatsFilter,
        bucket: str | None = None,
        by: str | None = None,
        measure: str = "received",
    ) -> Series:
        """Counts of `measure` per day, week or month, optionally one line per `by` value."""
        f = self.scope(actor, f)
        bucket = bucket or self.auto_bucket(f)
        spans = self.buckets(f, bucket)
        if by is not None and by not in BREAKDOWNS:
            raise InvalidInput(f"不能按 {by} 分组", field="by")
        if measure not in MEASURES:
            raise InvalidInput(f"未知计数 {measure}", field="measure")
        filters = self._filters(f)
        found = await self.db.read(
            lambda c: self._bucketed(c, spans, filters, (by,) if by else (), (measure,))
        )
        groups: dict[str, list[int]] = {}
        for (idx, key), totals in found.items():
            name = key[0] if key else ""
            if by == "region":
                name = self._regroup_region(f, name)
            groups.setdefault(name, [0] * len(spans))[idx] += totals[measure]
        return Series(bucket, [a for a, _ in spans], groups)

    # -- rankings ---------------------------------------------------------------------------------
    def _ranking_scope(self, actor: Actor, f: StatsFilter) -> tuple[StatsFilter, str | None]:
        """The filters a ranking is computed under, and the one department a department user
        may see of it (compared with all departments under the same filters)."""
        if actor.role in FULL_ROLES:
            return self.check(f), None
        if actor.role is Role.DEPARTMENT and actor.department:
            return dataclasses.replace(self.check(f), department=None), actor.department
        raise RoleForbidden("当前角色无权查看统计", role=actor.role.value)

    async def _department_totals(self, base: StatsFilter) -> dict[str, dict[str, int]]:
        """Each department's counts for the indicators over the period, in one query."""
        filters = self._department_filters(base)
        cube = next(c for c in CUBES if c.name == ("dk" if base.channel or base.kind else "dd"))

        def tx(conn: Connection) -> list[tuple[tuple[Any, ...], dict[str, int]]]:
            pieces = decompose(base.since, base.until + timedelta(days=1), quarters=True)
            q = CubeQuery(pieces, filters, ("department",), RANK_MEASURES)
            return stats_store.sum_cube(conn, q, cube)

        return {key[0]: totals for key, totals in await self.db.read(tx) if key[0] != CENTRE}

    async def _ranking(
        self,
        base: StatsFilter,
        own: str | None,
        totals: dict[str, dict[str, int]],
        trend_months: int,
        trend_for: int,
    ) -> Ranking:
        ranked = rank(totals, self.weights, self.min_assigned)
        peers = sum(1 for r in ranked if r.rank is not None)
        if own is not None:
            ranked = [r for r in ranked if r.key == own]
        wanted: list[str] = [r.key for r in ranked]
        if trend_for and len(wanted) > 2 * trend_for:
            wanted = wanted[:trend_for] + wanted[-trend_for:]
        filters = self._department_filters(base)
        months, trends = await self._score_trends(base, filters, wanted, trend_months)
        return Ranking(ranked, peers, months, trends)

    async def departments(
        self, actor: Actor, f: StatsFilter, *, trend_months: int = 6, trend_for: int = 0
    ) -> Ranking:
        """Departments scored and ranked best first (the 月度通报). A department user gets its
        own row only, with its rank among the departments compared with it. `trend_for`: how
        many of the best and of the worst get a monthly score trend (0: none)."""
        base, own = self._ranking_scope(actor, f)
        totals = await self._department_totals(base)
        return await self._ranking(base, own, totals, trend_months, trend_for)

    async def rankings(
        self, actor: Actor, f: StatsFilter, *, trend_months: int = 6, trend_for: int = 0
    ) -> tuple[Ranking, list[Ranked] | None]:
        """The department ranking and (for those who may see it) the region ranking, from one
        read of the departments' counts."""
        base, own = self._ranking_scope(actor, f)
        totals = await self._department_totals(base)
        ranking = await self._ranking(base, own, totals, trend_months, trend_for)
        return ranking, None if own is not None else self._regions_from(base, totals)

    async def _score_trends(
        self,
        f: StatsFilter,
        filters: Mapping[str, Sequence[str]],
        codes: Sequence[str],
        months: int,
    ) -> tuple[list[date], dict[str, list[float | None]]]:
        if not codes or months <= 0:
            return [], {}
        first = month_start(f.until)
        for _ in range(months - 1):
            first = month_start(first - timedelta(days=1))
        spans = self.buckets(dataclasses.replace(f, since=first), "month")
        narrowed = {**filters, "department": list(codes)}
        found = await self.db.read(
            lambda c: self._bucketed(c, spans, narrowed, ("department",), RANK_MEASURES)
        )
        out: dict[str, list[float | None]] = {code: [None] * len(spans) for code in codes}
        for (idx, (code,)), totals in found.items():
            if code in out:
                out[code][idx] = score(rates(totals), self.weights)
        return [a for a, _ in spans], out

    async def regions(self, actor: Actor, f: StatsFilter) -> list[Ranked]:
        """Leagues (or, inside a league, its banners and counties) scored on their
        departments' figures and ranked."""
        if actor.role is Role.DEPARTMENT:
            raise RoleForbidden("承办单位不能查看地区排名")
        base, _ = self._ranking_scope(actor, f)
        return self._regions_from(base, await self._department_totals(base))

    def _regions_from(self, f: StatsFilter, totals: dict[str, dict[str, int]]) -> list[Ranked]:
        inside = f.region if f.region and self.directory.league_of(f.region) else None
        rows: dict[str, dict[str, int]] = {}
        for code, counts in totals.items():
            region = self.directory.department_region(code)
            if region is None:
                continue
            key = region if inside else self.directory.league_of(region)
            if key is None:
                continue  # departments of the autonomous region itself
            acc = rows.setdefault(key, dict.fromkeys(RANK_MEASURES, 0))
            for m in RANK_MEASURES:
                acc[m] += counts[m]
        return rank(rows, self.weights, self.min_assigned)

    # -- trends -----------------------------------------------------------------------------------
    async def hot_topics(self, actor: Actor, f: StatsFilter, top: int = 10) -> HotTopics:
        """Categories and regions whose volume rose most against the previous period."""
        f = self.scope(actor, f)
        prev = f.previous()
        by = ("category",) if actor.role is Role.DEPARTMENT else ("category", "region")
        found = await asyncio.gather(
            *(self.breakdown(actor, p, b, ("received",)) for b in by for p in (f, prev))
        )
        cats_now, cats_before = found[0], dict(found[1])
        regions_now, regions_before = (found[2], dict(found[3])) if len(found) > 2 else ([], {})

        def changes(
            now: list[tuple[str, dict[str, int]]], before: dict[str, dict[str, int]]
        ) -> list[Change]:
            keys = {k for k, _ in now} | set(before)
            current = dict(now)
            out = [
                Change(
                    k,
                    current.get(k, {}).get("received", 0),
                    before.get(k, {}).get("received", 0),
                )
                for k in keys
            ]
            out.sort(key=lambda c: (-c.delta, -c.current, c.key))
            return out[:top]

        return HotTopics(changes(cats_now, cats_before), changes(regions_now, regions_before), prev)


async def public_month(
    stats: StatsService, first: date, min_replies: int
) -> list[tuple[str, float | None, float | None, int, int]]:
    """The public monthly table (no login): each department's 按时办结率 and 满意率 with the
    replies and ratings they rest on, for departments with at least `min_replies` measured
    replies; best 按时办结率 first."""
    last = min(next_month(first) - timedelta(days=1), stats.today())
    if last < first:
        return []

    def tx(conn: Connection) -> dict[tuple[Any, ...], dict[str, int]]:
        pieces = decompose(first, last + timedelta(days=1))
        measures = ("reply_due", "reply_ok", "rated", "satisfied")
        return dict(stats_store.sum_cube(conn, CubeQuery(pieces, {}, ("department",), measures)))

    out = []
    for (code,), t in (await stats.db.read(tx)).items():
        if code == CENTRE or t["reply_due"] < min_replies:
            continue
        r = rates(t)
        out.append(
            (code, r["on_time_reply_rate"], r["satisfaction_rate"], t["reply_due"], t["rated"])
        )
    out.sort(key=lambda x: (-(x[1] or 0.0), -(x[2] or 0.0), x[0]))
    return out
