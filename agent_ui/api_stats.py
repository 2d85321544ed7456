"""JSON API of the statistics under /api/v1/stats: thin handlers; ?format=csv|xlsx downloads
the same figures as a table."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from agent_ui import stats_views as v
from agent_ui.api import _json, route
from agent_ui.context import require_staff, services
from agent_ui.exports import FORMATS, XLSX_TYPE, Table, to_csv, to_xlsx
from tickets.errors import InvalidInput, RoleForbidden
from tickets.indicators import INDICATORS, SCORE_DEFINITION
from tickets.model import Role
from tickets.stats import BREAKDOWNS, BUCKETS, StatsFilter

TAG = "统计"
STATS_ROLES = (Role.MANAGER, Role.SUPERVISOR, Role.ADMIN, Role.DEPARTMENT)
CALL_ROLES = (Role.MANAGER, Role.SUPERVISOR, Role.ADMIN)
FILTERS = ("since", "until", "region", "department", "channel", "kind")


def parse_day(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"参数 {name} 应为日期 YYYY-MM-DD", field=name) from None


def stats_filter(request: web.Request) -> StatsFilter:
    """since / until (local dates, both included; default: this month so far) and filters."""
    today = services(request).stats.today()
    q = request.query
    return StatsFilter(
        since=parse_day(request, "since", today.replace(day=1)),
        until=parse_day(request, "until", today),
        region=q.get("region") or None,
        department=q.get("department") or None,
        channel=q.get("channel") or None,
        kind=q.get("kind") or None,
    )


def output_format(request: web.Request) -> str:
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise InvalidInput(f"参数 format 只能是 {', '.join(FORMATS)}", field="format")
    return fmt


async def download(tables: Sequence[Table], fmt: str, filename: str) -> web.Response:
    """The tables as a CSV or XLSX attachment, written off the event loop: a year's ranking
    of 2,087 departments (33,000 cells) is ~130 ms of xlsxwriter, an order export of 5,000
    rows ~160–190 ms; on the loop, every other request of the process would wait for it."""
    if fmt == "csv":
        body, ctype, ext = await asyncio.to_thread(to_csv, tables), "text/csv; charset=utf-8", "csv"
    else:
        body, ctype, ext = await asyncio.to_thread(to_xlsx, tables), XLSX_TYPE, "xlsx"
    return web.Response(
        body=body,
        headers={
            "Content-Type": ctype,
            "Content-Disposition": f'attachment; filename="{filename}.{ext}"',
        },
    )


def _name(f: StatsFilter, what: str) -> str:
    return f"stats-{what}-{f.since.isoformat()}-{f.until.isoformat()}"


def _choice(request: web.Request, name: str, allowed: Sequence[str], default: str | None) -> Any:
    raw = request.query.get(name) or default
    if raw is not None and raw not in allowed:
        raise InvalidInput(f"参数 {name} 的值无效（可选: {', '.join(allowed)}）", field=name)
    return raw


@route(
    "GET",
    "/stats/departments",
    "承办单位考核指标与排名（since、until、region；counts=1 附各项计数）",
    tag=TAG,
)
async def stats_departments(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    ranking = await svc.stats.departments(actor, f, trend_months=0)
    if fmt != "json":
        return await download(
            [v.ranking_table(svc.directory, ranking)], fmt, _name(f, "departments")
        )
    return _json(
        {
            **v.period_json(f),
            "peers": ranking.peers,
            "weights": svc.stats.weights,
            "departments": [
                v.ranked_json(svc.directory, r, counts=request.query.get("counts") == "1")
                for r in ranking.rows
            ],
        }
    )


@route("GET", "/stats/regions", "盟市（或某盟市内旗县区）考核指标与排名", tag=TAG)
async def stats_regions(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *CALL_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    rows = await svc.stats.regions(actor, f)
    if fmt != "json":
        return await download([v.regions_table(svc.directory, rows)], fmt, _name(f, "regions"))
    return _json(
        {**v.period_json(f), "regions": [v.ranked_json(svc.directory, r, "region") for r in rows]}
    )


@route("GET", "/stats/overview", "工单总量、在办、超期、今日到期和各项指标", tag=TAG)
async def stats_overview(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    o = await svc.stats.overview(actor, f)
    if fmt != "json":
        return await download(v.overview_tables(o), fmt, _name(f, "overview"))
    return _json({**v.period_json(f), **v.overview_json(o)})


@route(
    "GET",
    "/stats/breakdown",
    "按渠道、类型、一级分类、地区或承办单位统计工单量（by）",
    tag=TAG,
)
async def stats_breakdown(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    by = _choice(request, "by", BREAKDOWNS, None)
    if by is None:
        raise InvalidInput("缺少参数 by", field="by")
    rows = await svc.stats.breakdown(actor, f, by)
    if fmt != "json":
        return await download([v.breakdown_table(svc.directory, by, rows)], fmt, _name(f, by))
    items = [
        {"key": key, "name": v.name_of(svc.directory, by, key), **totals} for key, totals in rows
    ]
    return _json({**v.period_json(f), "by": by, "items": items})


@route(
    "GET",
    "/stats/series",
    "按日、周或月的工单量（bucket；by 可按渠道、类型、分类、地区分线）",
    tag=TAG,
)
async def stats_series(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    bucket = _choice(request, "bucket", BUCKETS, None)
    by = _choice(request, "by", BREAKDOWNS, None)
    s = await svc.stats.series(actor, f, bucket, by, request.query.get("measure", "received"))
    if fmt != "json":
        table = v.series_table(svc.directory, s, by, "工单量趋势")
        return await download([table], fmt, _name(f, "series"))
    return _json(
        {
            **v.period_json(f),
            "bucket": s.bucket,
            "starts": [d.isoformat() for d in s.starts],
            "series": [
                {"key": k, "name": v.name_of(svc.directory, by, k) if by else "合计", "values": x}
                for k, x in s.groups.items()
            ],
        }
    )


@route("GET", "/stats/hot-topics", "热点：与上一同长周期相比增长最多的分类和地区", tag=TAG)
async def stats_hot_topics(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *STATS_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    h = await svc.stats.hot_topics(actor, f)
    if fmt != "json":
        tables = [
            v.hot_table(svc.directory, "category", h.categories, "热点分类"),
            v.hot_table(svc.directory, "region", h.regions, "热点地区"),
        ]
        return await download(tables, fmt, _name(f, "hot-topics"))
    return _json({**v.period_json(f), **v.hot_json(svc.directory, h)})


@route(
    "GET",
    "/stats/calls",
    "话务统计：接通率、15秒接通率、平均等待与通话、坐席占用率（按小时）",
    tag=TAG,
)
async def stats_calls(request: web.Request) -> web.StreamResponse:
    await require_staff(request, *CALL_ROLES)
    svc, f, fmt = services(request), stats_filter(request), output_format(request)
    if f.until < f.since or (f.until - f.since) > timedelta(days=3700):
        raise InvalidInput("统计区间无效", field="since")
    report = await svc.call_stats.report(f.since, f.until)
    if fmt != "json":
        return await download([v.calls_table(report)], fmt, _name(f, "calls"))
    return _json(
        {
            "since": f.since.isoformat(),
            "until": f.until.isoformat(),
            **report.totals.as_dict(),
            "by_hour": [{"hour": h, **x.as_dict()} for h, x in enumerate(report.by_hour)],
        }
    )


@route("GET", "/stats/definitions", "各项指标的定义与综合得分的权重", tag=TAG)
async def stats_definitions(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    if actor.role not in STATS_ROLES:
        raise RoleForbidden("当前角色无权查看统计", role=actor.role.value)
    svc = services(request)
    return _json(
        {
            "indicators": [
                {
                    "key": i.key,
                    "label": i.label,
                    "definition": i.definition,
                    "higher_is_better": i.higher_is_better,
                }
                for i in INDICATORS
            ],
            "score": SCORE_DEFINITION,
            "weights": svc.stats.weights,
        }
    )
