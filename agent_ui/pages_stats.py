"""The managers' statistics page (/staff/stats), its CSV / XLSX downloads and the printable
monthly report (/staff/stats/report). Charts are drawn by /static/stats.js with ECharts from
the same figures the tables show (embedded as JSON, never as inline script)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from agent_ui import stats_views as v
from agent_ui.api_stats import STATS_ROLES, download, output_format, parse_day, stats_filter
from agent_ui.context import Services, require_staff, services
from agent_ui.exports import Table
from agent_ui.pages_staff import render, staff_context
from routing.directory import Department, Directory, Region
from tickets.errors import InvalidInput
from tickets.indicators import BY_KEY, INDICATORS, SCORE_DEFINITION, THREE_RATES
from tickets.model import LABELS, Actor, Channel, Kind, Role
from tickets.stats import Ranking, StatsFilter
from tickets.stats_store import month_start, next_month

FULL = (Role.MANAGER, Role.SUPERVISOR, Role.ADMIN)
# ECharts draws on a canvas and styles its own elements through the CSSOM; the page itself
# needs nothing inline. This page's policy is the staff pages' one plus ECharts' assets.
STATS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class StatsPage:
    """Everything the page shows: tables (also the downloads) and the charts' data."""

    f: StatsFilter
    actor: Actor
    tables: dict[str, Table] = field(default_factory=dict)
    charts: dict[str, Any] = field(default_factory=dict)
    cards: list[tuple[str, str, str]] = field(default_factory=list)  # (label, value, hint)
    ranking: Ranking | None = None
    shown: list[Any] = field(default_factory=list)  # ranking rows on the page: best and worst

    @property
    def full(self) -> bool:
        return self.actor.role in FULL


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


async def gather(svc: Services, actor: Actor, f: StatsFilter) -> StatsPage:
    """Every figure of the page, read concurrently (each read is one aggregate query)."""
    st, names = svc.stats, svc.directory
    shown = f if actor.role in FULL else st.scope(actor, f)
    page = StatsPage(shown, actor)
    bucket = st.auto_bucket(f)
    breakdowns = ("channel", "kind", "category", *(("region", "department") if page.full else ()))
    features = svc.features.stats
    n = features.ranking_shown
    (o, total, by_kind, by_cat, ranked, hot, *counted) = await asyncio.gather(
        st.overview(actor, f),
        st.series(actor, f, bucket),
        st.series(actor, f, bucket, "kind"),
        st.series(actor, f, bucket, "category"),
        st.rankings(actor, f, trend_months=features.trend_months, trend_for=n),
        st.hot_topics(actor, f),
        *(st.breakdown(actor, f, by) for by in breakdowns),
        *((svc.call_stats.report(f.since, f.until),) if page.full else ()),
    )
    counts, rates = v.overview_tables(o)
    page.tables |= {"overview": counts, "rates": rates}
    page.cards = [
        ("受理量", str(o.totals["received"]), "统计期内登记的工单（各渠道）"),
        ("办结量", str(o.totals["concluded"]), "统计期内市民得到答复的工单"),
        ("在办", str(o.open), "尚未答复市民的工单（当前）"),
        (
            "超期",
            str(o.overdue),
            "签收、办结或回访时限已过的工单（当前；与工单列表的“已超期”同一规则）",
        ),
        ("今日到期", str(o.due_today), "今天到期、尚在时限内的主办任务"),
    ]
    page.cards += [(BY_KEY[k].label, _pct(o.rates[k]), BY_KEY[k].definition) for k in THREE_RATES]

    page.tables["series"] = v.series_table(names, total, None, "工单量趋势")
    page.tables["series_kind"] = v.series_table(names, by_kind, "kind", "按类型的工单量")
    page.tables["series_category"] = v.series_table(names, by_cat, "category", "按分类的工单量")
    labels = [v._period_label(bucket, d) for d in total.starts]
    page.charts["trend"] = {"labels": labels, "series": [_line("受理量", total.groups.get("", []))]}
    page.charts["kinds"] = {
        "labels": labels,
        "series": [_line(LABELS.get(k, k), x) for k, x in by_kind.groups.items()],
        "stacked": True,
    }
    top_cats = sorted(by_cat.groups, key=lambda k: -sum(by_cat.groups[k]))[:8]
    page.charts["categories"] = {
        "labels": labels,
        "series": [_line(k or "未分类", by_cat.groups[k]) for k in top_cats],
    }
    for by, counts_by in zip(breakdowns, counted, strict=False):
        page.tables[f"by_{by}"] = v.breakdown_table(names, by, counts_by)
        top = counts_by[:15]
        page.charts[f"by_{by}"] = {
            "labels": [v.name_of(names, by, k) for k, _ in top],
            "values": [t["received"] for _, t in top],
        }
    page.ranking, regions = ranked
    page.tables["ranking"] = v.ranking_table(names, page.ranking)
    rows = page.ranking.rows
    page.shown = rows if len(rows) <= 2 * n or not page.full else rows[:n] + rows[-n:]
    page.charts["sparks"] = {
        "months": [d.strftime("%Y-%m") for d in page.ranking.trend_months],
        "scores": page.ranking.trends,
    }
    if regions is not None:
        page.tables["regions"] = v.regions_table(names, regions)
        page.charts["regions"] = {
            "labels": [names.region_name(r.key) for r in regions if r.score is not None][:20],
            "values": [r.score for r in regions if r.score is not None][:20],
        }
    if page.full:
        calls = counted[len(breakdowns)]
        page.tables["calls"] = v.calls_table(calls)
        page.charts["calls"] = {
            "labels": [f"{h:02d}" for h in range(24)],
            "offered": [x["offered"] for x in calls.by_hour],
            "answered": [x["answered"] for x in calls.by_hour],
            "abandoned": [x["abandoned"] for x in calls.by_hour],
            "rate15": [
                None if x.answer_rate_15s is None else round(x.answer_rate_15s * 100, 1)
                for x in calls.by_hour
            ],
        }
        page.cards += [
            ("接通率", _pct(calls.totals.connection_rate), "接通 ÷ 转人工的来电"),
            ("15秒接通率", _pct(calls.totals.answer_rate_15s), "15 秒内接通 ÷ 转人工的来电"),
        ]
    page.tables["hot_category"] = v.hot_table(names, "category", hot.categories, "热点分类（环比）")
    if page.full:
        page.tables["hot_region"] = v.hot_table(names, "region", hot.regions, "热点地区（环比）")
    page.charts["hot"] = {
        "labels": [c.key or "未分类" for c in hot.categories],
        "values": [c.delta for c in hot.categories],
    }
    return page


def _line(name: str, values: list[int]) -> dict[str, Any]:
    return {"name": name, "values": values}


# -- the filters form ---------------------------------------------------------------------------
def _department_choices(d: Directory, region: str | None) -> list[tuple[str, list[Department]]]:
    """Departments of the chosen region and the one below it; without a region, those of the
    autonomous region and of the leagues (a full list would be thousands)."""
    root = d.root()
    scope: list[Region] = [d.regions[region]] if region in d.regions else [root]
    scope += d.children(scope[0].code)
    return [(r.name, d.departments_in(r.code)) for r in scope if d.departments_in(r.code)]


def _quick_periods(today: date) -> list[tuple[str, date, date]]:
    this_month = month_start(today)
    last_month = month_start(this_month - timedelta(days=1))
    return [
        ("本月", this_month, today),
        ("上月", last_month, this_month - timedelta(days=1)),
        ("近30天", today - timedelta(days=29), today),
        ("本年", today.replace(month=1, day=1), today),
        ("近一年", today - timedelta(days=364), today),
    ]


def _query(f: StatsFilter, **extra: str) -> str:
    q = {"since": f.since.isoformat(), "until": f.until.isoformat()}
    q |= {k: getattr(f, k) for k in ("region", "department", "channel", "kind") if getattr(f, k)}
    return urlencode({**q, **extra})


async def stats_page(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    page = await gather(svc, actor, f)
    if fmt != "json":
        wanted = request.query.get("table")
        if wanted and wanted not in page.tables:
            raise InvalidInput(f"没有名为 {wanted} 的表", field="table")
        tables = [page.tables[wanted]] if wanted else list(page.tables.values())
        name = f"stats-{wanted or 'all'}-{f.since.isoformat()}-{f.until.isoformat()}"
        return await download(tables, fmt, name)
    ctx = {
        **await staff_context(request),
        **_page_context(svc, page, f),
        "quick": [
            (label, _query_dates(f, a, b)) for label, a, b in _quick_periods(svc.stats.today())
        ],
        "channels": list(Channel),
        "kinds": list(Kind),
        "regions": _region_options(svc.directory),
        "departments": _department_choices(svc.directory, f.region),
    }
    resp = render(request, "stats/index.html", ctx)
    resp.headers["Content-Security-Policy"] = STATS_CSP
    return resp


def _query_dates(f: StatsFilter, a: date, b: date) -> str:
    return _query(StatsFilter(a, b, f.region, f.department, f.channel, f.kind))


def _region_options(d: Directory) -> list[tuple[Region, list[Region]]]:
    root = d.root()
    return [(league, d.children(league.code)) for league in d.children(root.code)]


def _page_context(svc: Services, page: StatsPage, f: StatsFilter) -> dict[str, Any]:
    return {
        "page": page,
        "f": f,
        "q": _query(f),
        "indicators": INDICATORS,
        "score_definition": SCORE_DEFINITION,
        "weights": svc.stats.weights,
        "chart_data": page.charts,
        "filter_names": {
            "region": svc.directory.region_name(f.region) if f.region else "",
            "department": svc.directory.department_name(f.department) if f.department else "",
            "channel": LABELS.get(f.channel or "", ""),
            "kind": LABELS.get(f.kind or "", ""),
        },
        "rate_keys": v.RANK_RATES,
        "by_key": BY_KEY,
        "min_assigned": svc.features.stats.min_assigned,
    }


async def report_page(request: web.Request) -> web.StreamResponse:
    """The monthly report (月度通报) for printing on A4: figures, ranking and charts."""
    actor = await require_staff(request, *STATS_ROLES)
    svc = services(request)
    today = svc.stats.today()
    raw = request.query.get("month", "")
    if raw:
        first = parse_day(request, "month", today) if len(raw) == 10 else None
        if first is None:
            try:
                first = date.fromisoformat(raw + "-01")
            except ValueError:
                raise InvalidInput("参数 month 应为 YYYY-MM", field="month") from None
        first = month_start(first)
    else:
        first = month_start(month_start(today) - timedelta(days=1))  # last month
    last = min(next_month(first) - timedelta(days=1), today)
    q = request.query
    f = StatsFilter(first, last, q.get("region") or None, None, None, None)
    page = await gather(svc, actor, f)
    ctx = {
        **await staff_context(request),
        **_page_context(svc, page, f),
        "month": first,
        "generated": svc.presenter.local(svc.stats.clock()),
    }
    resp = render(request, "stats/report.html", ctx)
    resp.headers["Content-Security-Policy"] = STATS_CSP
    return resp


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/stats", stats_page)
    app.router.add_get("/staff/stats/report", report_page)
