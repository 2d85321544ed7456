"""JSON API of personal data: reveal a masked caller (显示号码, audited with a reason) and the
access log for supervisors (who read whose personal data, when and why)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from agent_ui import schemas as s
from agent_ui.api import _int_query, _json, _ticket_id, route
from agent_ui.context import client_address, read_json, require_staff, services
from agent_ui.filters import read_access_filter
from tickets.access import REVEAL_ROLES
from tickets.model import ACCESS_KIND_LABELS, LABELS, AccessEvent, AccessKind, Role

TAG = "个人信息"
# who reads the access log: the shift supervisors (班长) who answer for the desk, managers
# and admins; the people being audited (agents, dispatchers, departments) do not
AUDIT_ROLES = (Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)


class RevealBody(s.Strict):
    reason: Annotated[str, Field(max_length=500, description="查看理由（如：回拨市民核实诉求）")]


@route(
    "POST",
    "/tickets/{id}/caller",
    "显示来电人完整姓名和号码（须写理由；记入访问日志，班长可查）",
    body=RevealBody,
    tag=TAG,
)
async def reveal_caller(request: web.Request) -> web.Response:
    # the role before the order or the body: a department is refused the same for any order
    actor = await require_staff(request, *REVEAL_ROLES, write=True)
    ticket_id = _ticket_id(request)
    svc = services(request)
    await svc.tickets.get(actor, ticket_id)
    body = await read_json(request, RevealBody)
    caller = await svc.privacy.reveal_caller(actor, ticket_id, body.reason, client_address(request))
    return _json({"caller": svc.presenter.caller(caller)})


def access_json(e: AccessEvent, presenter: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": presenter.time(e.at),
        "actor": {
            "id": e.actor_id,
            "name": e.actor_name,
            "role": e.actor_role.value,
            "role_label": LABELS.get(e.actor_role.value, e.actor_role.value),
            "department": e.department,
        },
        "kind": e.kind.value,
        "kind_label": ACCESS_KIND_LABELS[e.kind],
        "ticket_id": e.ticket_id,
        "ticket_number": e.ticket_number,
        "subject": e.subject,
        "reason": e.reason,
        "client": e.client,
    }


@route(
    "GET",
    "/audit/access",
    "个人信息访问日志（显示号码、收听录音、下载附件、打开保密工单），新→旧",
    tag=TAG,
    params=(
        ("kind", "query", {"type": "string", "enum": [k.value for k in AccessKind]}, "访问类型"),
        ("number", "query", {"type": "string", "pattern": "^\\d{14}$"}, "工单编号"),
        ("who", "query", {"type": "string"}, "访问人姓名（部分）"),
        ("from", "query", {"type": "string", "format": "date"}, "日期起（含）"),
        ("until", "query", {"type": "string", "format": "date"}, "日期止（含）"),
        ("limit", "query", {"type": "integer", "minimum": 1}, "每页条数"),
        ("offset", "query", {"type": "integer", "minimum": 0}, "偏移"),
    ),
)
async def access_log(request: web.Request) -> web.Response:
    await require_staff(request, *AUDIT_ROLES)
    svc = services(request)
    f = read_access_filter(
        request.query,
        limit=_int_query(request, "limit", 50, 1, svc.web.page_size_max),
        offset=_int_query(request, "offset", 0, 0, 10_000_000),
        tz=svc.presenter.tz,
    )
    found, total = await svc.privacy.list(f)
    return _json({"total": total, "items": [access_json(e, svc.presenter) for e in found]})
