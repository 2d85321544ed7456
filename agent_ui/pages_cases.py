"""Supervisors' pages of the public 曝光纠错 column: choose an answered order, edit its redacted
text (a first redaction is made for them), publish it or withdraw it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_ui.context import require_staff, services
from agent_ui.pages_staff import http_status, redirect, render, staff_context
from tickets.case_service import EDIT_ROLES, VIEW_ROLES, CaseText
from tickets.cases import CASE_STATE_LABELS, CaseState, PublicCase, leaks
from tickets.errors import DomainError, InvalidInput
from tickets.model import LABELS

FIELDS = ("title", "question", "answer", "title_mn", "question_mn", "answer_mn")


async def case_list(request: web.Request) -> web.Response:
    actor = await require_staff(request, *VIEW_ROLES)
    svc = services(request)
    state = request.query.get("state") or None
    if state not in {s.value for s in CaseState}:
        state = None
    found, total = await svc.cases.list_cases(actor, state, limit=100)
    ctx = {
        **await staff_context(request),
        "cases": found,
        "total": total,
        "state": state,
        "states": CASE_STATE_LABELS,
        "can_edit": actor.role in EDIT_ROLES,
        "error": None,
        "number": "",
    }
    return render(request, "staff/cases.html", ctx)


async def case_start(request: web.Request) -> web.Response:
    actor = await require_staff(request, *EDIT_ROLES, write=True)
    form = await request.post()
    number = str(form.get("number", "")).strip()[:32]
    svc = services(request)
    try:
        case = await svc.cases.start(actor, number)
    except DomainError as exc:
        found, total = await svc.cases.list_cases(actor, None, limit=100)
        ctx = {
            **await staff_context(request),
            "cases": found,
            "total": total,
            "state": None,
            "states": CASE_STATE_LABELS,
            "can_edit": True,
            "error": exc.message,
            "number": number,
        }
        return render(request, "staff/cases.html", ctx, status=http_status(exc))
    return redirect(f"/staff/cases/{case.id}")


async def _edit_page(
    request: web.Request,
    case: PublicCase,
    *,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> web.Response:
    actor = await require_staff(request, *VIEW_ROLES)
    svc = services(request)
    shown = values or {k: getattr(case, k) or "" for k in FIELDS}
    ticket = await svc.tickets.get(actor, case.ticket_id)
    names = tuple(n for n in (ticket.caller.name,) if n)
    ctx = {
        **await staff_context(request),
        "c": case,
        "v": shown,
        "t": ticket,
        "leaks": {k: leaks(str(v), names) for k, v in shown.items() if v},
        "state_label": CASE_STATE_LABELS[CaseState(case.state)],
        "department": svc.directory.department_name(case.department)
        if case.department
        else "热线中心直接答复",
        "kind": LABELS.get(case.kind, case.kind),
        "can_edit": actor.role in EDIT_ROLES,
        "error": error,
        "notice": notice,
    }
    return render(request, "staff/case.html", ctx, status=status)


def _case_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route only matches digits


async def case_edit(request: web.Request) -> web.Response:
    actor = await require_staff(request, *VIEW_ROLES)
    case = await services(request).cases.get(actor, _case_id(request))
    done = {"save": "已保存", "publish": "已公开", "withdraw": "已撤回"}.get(
        request.query.get("done", "")
    )
    return await _edit_page(request, case, notice=done)


async def case_action(request: web.Request) -> web.Response:
    actor = await require_staff(request, *EDIT_ROLES, write=True)
    svc = services(request)
    form = await request.post()
    action = str(form.get("action", "save"))
    values = {k: str(form.get(k, "")).strip() for k in FIELDS}
    case_id = _case_id(request)
    try:
        version = int(str(form.get("version", "")))
    except ValueError:
        raise InvalidInput("缺少版本号", field="version") from None
    try:
        if action == "withdraw":
            await svc.cases.withdraw(actor, case_id, version)
        elif action in ("save", "publish"):
            text = CaseText(**{k: values[k] or None for k in FIELDS})  # type: ignore[arg-type]
            await svc.cases.edit(actor, case_id, version, text, publish=action == "publish")
        else:
            raise InvalidInput("未知操作", field="action")
    except DomainError as exc:
        case = await svc.cases.get(actor, case_id)
        return await _edit_page(
            request, case, values=values, error=exc.message, status=http_status(exc)
        )
    return redirect(f"/staff/cases/{case_id}?done={action}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/staff/cases", case_list)
    r.add_post("/staff/cases", case_start)
    r.add_get(r"/staff/cases/{id:\d{1,18}}", case_edit)
    r.add_post(r"/staff/cases/{id:\d{1,18}}", case_action)
