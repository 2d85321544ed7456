"""Order lists exported as CSV or XLSX (agent_ui/exports.py; the list's filters, at most
EXPORT_MAX orders): callers as the person's role shows them (tickets.access.caller_view:
numbers masked for managers and admins, confidential callers masked for the centre and absent
for departments), and every export logged in the access log with its size."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_ui.api import LIST_PARAMS, route
from agent_ui.api_stats import download
from agent_ui.context import client_address, require_staff, services
from agent_ui.exports import Column, Table
from agent_ui.filters import read_filter
from tickets.access import PHONE_ROLES, caller_view
from tickets.errors import InvalidInput
from tickets.model import AccessKind, Actor, Ticket

EXPORT_MAX = 5000  # one file; narrower filters for more
FORMATS = ("csv", "xlsx")
COLUMNS = [
    Column(key, label)
    for key, label in (
        ("number", "工单编号"),
        ("created_at", "受理时间"),
        ("channel", "渠道"),
        ("kind", "类型"),
        ("urgency", "紧急程度"),
        ("status", "状态"),
        ("region", "区划"),
        ("category", "分类"),
        ("lead", "主办单位"),
        ("caller_name", "来电人"),
        ("caller_phone", "联系电话"),
        ("request", "诉求"),
        ("closed_at", "办结时间"),
        ("satisfaction", "满意度"),
    )
]


def _row(t: Ticket, view: dict[str, Any]) -> list[Any]:
    lead = next((a for a in view["assignments"] if a.get("role") == "lead"), None)
    caller = view["caller"]
    return [
        t.number,
        view["created_at"],
        view["channel_label"],
        view["kind_label"],
        view["urgency_label"],
        view["status_label"],
        view["region_name"],
        "/".join(t.category),
        (lead or {}).get("department_name"),
        caller["name"],
        caller["phone"],
        t.summary or t.content,
        view["closed_at"],
        view["satisfaction_label"],
    ]


def _subject(actor: Actor, count: int, total: int) -> str:
    numbers = "号码完整" if actor.role in PHONE_ROLES else "号码打码"
    return f"export:{count}/{total}:{numbers}"


@route(
    "GET",
    "/exports/tickets",
    f"导出工单列表（format=csv|xlsx，筛选条件同工单列表，最多 {EXPORT_MAX} 条；"
    "来电号码按角色打码，每次导出记入访问日志）",
    params=(
        *(p for p in LIST_PARAMS if p[0] not in ("limit", "offset")),
        ("format", "query", {"type": "string", "enum": list(FORMATS)}, "文件格式"),
    ),
)
async def export_tickets(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    fmt = request.query.get("format", "csv")
    if fmt not in FORMATS:
        raise InvalidInput(f"参数 format 只能是 {', '.join(FORMATS)}", field="format")
    f = read_filter(request.query, svc.directory, limit=EXPORT_MAX, offset=0, tz=svc.presenter.tz)
    found, total = await svc.tickets.list_tickets(actor, f)
    rows = [_row(t, svc.presenter.ticket(caller_view(actor, t))) for t in found]
    # logged before a byte leaves, like every read of personal data
    await svc.privacy.record(
        actor,
        AccessKind.ORDERS_EXPORTED,
        subject=_subject(actor, len(rows), total),
        client=client_address(request),
    )
    stamp = (svc.presenter.time(svc.tickets.now()) or "")[:10]
    table = Table("tickets", "工单列表", COLUMNS, rows)
    resp = await download([table], fmt, f"tickets-{stamp}")
    resp.headers["X-Total-Count"] = str(total)
    return resp
