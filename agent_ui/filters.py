"""Work-order list filters from a query string, one reading for the API and the staff pages:
words, phone, number prefix, department, region (and below), state, channel, kind, triage
state, overdue, sort."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from routing.directory import Directory
from routing.order_search import OrderQuery, OrderSearch
from tickets.access import normalize_phone
from tickets.errors import InvalidInput, Unavailable
from tickets.model import (
    AccessFilter,
    AccessKind,
    Actor,
    Channel,
    Kind,
    RouteState,
    Status,
    TicketFilter,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SORTS = {"new": "受理时间（新→旧）", "due": "时限（急→缓）"}
MAX_QUERY_CHARS = 100
# the query-string names the lists understand (pages keep them in links; the API documents them)
FILTER_KEYS = (
    "q",
    "phone",
    "number",
    "status",
    "channel",
    "kind",
    "department",
    "region",
    "route_state",
    "overdue",
    "supervised",
    "urged",
    "category",
    "from",
    "until",
    "sort",
)
_LABELS = {
    "status": "状态",
    "channel": "渠道",
    "kind": "类型",
    "route_state": "分派方式",
    "department": "承办单位",
    "region": "区划",
    "overdue": "时限",
    "sort": "排序",
    "number": "工单编号",
    "supervised": "督办",
    "urged": "催办",
    "from": "开始日期",
    "until": "结束日期",
}


def _invalid(name: str, allowed: str = "") -> InvalidInput:
    extra = f"（可选: {allowed}）" if allowed else ""
    return InvalidInput(f"筛选条件“{_LABELS.get(name, name)}”的值无效{extra}", field=name)


def _enum(query: Mapping[str, str], name: str, enum: Any) -> Any:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        raise _invalid(name, ", ".join(e.value for e in enum)) from None


def regions_below(directory: Directory, code: str | None) -> tuple[str, ...]:
    """A region and every region below it (a league with its banners and counties)."""
    if not code:
        return ()
    if not directory.has_region(code):
        raise _invalid("region")
    out = [code]
    for child in directory.children(code):
        out += regions_below(directory, child.code)
    return tuple(out)


def _flag(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name) or ""
    if raw not in ("", "0", "1", "true", "false"):
        raise _invalid(name, "1, 0")
    return None if not raw else raw in ("1", "true")


def _day(query: Mapping[str, str], name: str, tz: ZoneInfo) -> datetime | None:
    """A date (YYYY-MM-DD, local) as the start of that day; sane years only."""
    raw = (query.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"日期应为 YYYY-MM-DD：{raw[:20]}", field=name) from None
    if not 2000 <= day.year <= 2100:
        raise InvalidInput("日期超出范围", field=name)
    return datetime.combine(day, time(0), tz)


def read_filter(
    query: Mapping[str, str],
    directory: Directory,
    *,
    limit: int,
    offset: int,
    default_sort: str = "new",
    tz: ZoneInfo = SHANGHAI,
) -> TicketFilter:
    """The filters a person or script asked for; a bad value is a precise 422."""
    phone = (query.get("phone") or "").strip()
    number = (query.get("number") or "").strip()
    if number and not (number.isdigit() and len(number) <= 14):
        raise InvalidInput("工单编号应为最多 14 位数字", field="number")
    department = (query.get("department") or "").strip() or None
    if department and not directory.has_department(department):
        raise _invalid("department")
    overdue_raw = query.get("overdue") or ""
    if overdue_raw not in ("", "0", "1", "true", "false"):
        raise _invalid("overdue", "1, 0")
    overdue = None if not overdue_raw else overdue_raw in ("1", "true")
    sort = query.get("sort") or default_sort
    if sort not in SORTS:
        raise _invalid("sort", ", ".join(SORTS))
    route_state = _enum(query, "route_state", RouteState)
    q = " ".join((query.get("q") or "").split())[:MAX_QUERY_CHARS] or None
    category = (query.get("category") or "").strip()[:50] or None
    start, end = _day(query, "from", tz), _day(query, "until", tz)
    if start and end and end < start:
        raise InvalidInput("结束日期不能早于开始日期", field="until")
    return TicketFilter(
        status=_enum(query, "status", Status),
        channel=_enum(query, "channel", Channel),
        kind=_enum(query, "kind", Kind),
        phone=normalize_phone(phone) if phone else None,
        number_prefix=number or None,
        department=department,
        regions=regions_below(directory, query.get("region")),
        route_state=route_state.value if route_state else None,
        q=q,
        overdue=overdue,
        supervised=_flag(query, "supervised"),
        urged=_flag(query, "urged"),
        category=category,
        created_from=start,
        created_until=end + timedelta(days=1) if end else None,
        sort=sort,
        limit=limit,
        offset=offset,
    )


# the access log's filters (GET /api/v1/audit/access, /staff/audit)
ACCESS_KEYS = ("kind", "number", "who", "from", "until")


def read_access_filter(
    query: Mapping[str, str], *, limit: int, offset: int, tz: ZoneInfo = SHANGHAI
) -> AccessFilter:
    number = (query.get("number") or "").strip()
    if number and not (number.isdigit() and len(number) == 14):
        raise InvalidInput("工单编号应为 14 位数字", field="number")
    start, end = _day(query, "from", tz), _day(query, "until", tz)
    if start and end and end < start:
        raise InvalidInput("结束日期不能早于开始日期", field="until")
    return AccessFilter(
        kind=_enum(query, "kind", AccessKind),
        ticket_number=number or None,
        actor=(query.get("who") or "").strip()[:50] or None,
        since=start,
        until=end + timedelta(days=1) if end else None,
        limit=limit,
        offset=offset,
    )


# a list's word filter asks the search port for this many best matches, then filters and sorts
# them like any list (a LIKE over every order's text takes seconds at a million orders)
WORD_CANDIDATES = 1000


async def words_through_search(
    orders: OrderSearch | None, actor: Actor, f: TicketFilter, region: str | None
) -> tuple[TicketFilter, str]:
    """`f` with its words answered by the search port (the orders' ids), and a note for the
    reader when that changes what the list can show ("" when nothing to say). Without a
    search port, or while it is down, the store matches the words itself (slowly)."""
    if not f.q or orders is None:
        return f, ""
    asked = OrderQuery(
        text=f.q,
        status=f.status,
        department=f.department,
        region=region or None,
        kind=f.kind,
        category=f.category,
        channel=f.channel,
        since=f.created_from,
        until=f.created_until,
        limit=WORD_CANDIDATES,
    )
    try:
        ids, more = await orders.matching_ids(actor, asked)
    except Unavailable:
        return f, "检索服务暂不可用：关键词按原文逐条比对，列表可能较慢。"
    note = (
        f"关键词匹配的工单较多：只列出最相关的 {WORD_CANDIDATES:,} 条中符合其他条件的工单，"
        "请加筛选条件缩小范围，或在“检索”页按相关度查看。"
        if more
        else ""
    )
    return dataclasses.replace(f, ids=tuple(ids)), note
