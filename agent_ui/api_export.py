"""Order lists exported as CSV (the list's filters, at most EXPORT_MAX orders): callers as the
person's role shows them (tickets.access.caller_view: numbers masked for managers and admins,
confidential callers masked for the centre and absent for departments), and every export
logged in the access log with its size."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agent_ui.api import LIST_PARAMS, route
from agent_ui.context import client_address, require_staff, services
from agent_ui.filters import read_filter
from tickets.access import PHONE_ROLES, caller_view
from tickets.model import AccessKind, Actor, Ticket

EXPORT_MAX = 5000  # one file; narrower filters for more
HEADER = (
    "工单编号",
    "受理时间",
    "渠道",
    "类型",
    "紧急程度",
    "状态",
    "区划",
    "分类",
    "主办单位",
    "来电人",
    "联系电话",
    "诉求",
    "办结时间",
    "满意度",
)


def _row(t: Ticket, view: dict[str, Any]) -> list[str]:
    lead = next((a for a in view["assignments"] if a.get("role") == "lead"), None)
    caller = view["caller"]
    return [
        t.number,
        view["created_at"] or "",
        view["channel_label"],
        view["kind_label"],
        view["urgency_label"],
        view["status_label"],
        view["region_name"] or "",
        "/".join(t.category),
        (lead or {}).get("department_name") or "",
        caller["name"] or "",
        caller["phone"] or "",
        t.summary or t.content,
        view["closed_at"] or "",
        view["satisfaction_label"] or "",
    ]


def to_csv(rows: list[list[str]]) -> bytes:
    """UTF-8 with a byte-order mark: Excel opens Chinese text right."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode()


def _subject(actor: Actor, count: int, total: int) -> str:
    numbers = "号码完整" if actor.role in PHONE_ROLES else "号码打码"
    return f"export:{count}/{total}:{numbers}"


@route(
    "GET",
    "/exports/tickets",
    f"导出工单列表（CSV，筛选条件同工单列表，最多 {EXPORT_MAX} 条；来电号码按角色打码，"
    "每次导出记入访问日志）",
    params=tuple(p for p in LIST_PARAMS if p[0] not in ("limit", "offset")),
)
async def export_tickets(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
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
    stamp = svc.presenter.time(svc.tickets.now()) or ""
    name = f"工单导出-{stamp[:10]}.csv"
    return web.Response(
        body=to_csv(rows),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "X-Total-Count": str(total),
        },
    )
