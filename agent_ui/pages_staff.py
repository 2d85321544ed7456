"""Staff pages: login, the work-order list, registration, and one form per workflow action."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiMapping
from pydantic import ValidationError

from agent_ui import schemas as s
from agent_ui.accounts import LoginThrottled
from agent_ui.api import ACTIONS, set_session_cookie
from agent_ui.context import (
    SESSION_COOKIE,
    CsrfFailed,
    RequestValidation,
    client_address,
    current_session,
    require_staff,
    services,
)
from agent_ui.errors import status_for
from routing.directory import Department, Directory, Region
from tickets.errors import DomainError, InvalidInput
from tickets.model import (
    ACTION_LABELS,
    LABELS,
    Action,
    Actor,
    AssignmentState,
    Channel,
    ExtensionState,
    Kind,
    Role,
    Status,
    Ticket,
    TicketEvent,
    TicketFilter,
    Urgency,
)

PAGE_SIZE = 50
INTAKE_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR)
SMS_VIEW_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
# the reply clock runs in these states; past reply_due they are shown as overdue
RUNNING = frozenset(
    {Status.DISPATCHED, Status.ACCEPTED, Status.RETURNED, Status.REWORK, Status.REOPENED}
)
CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
FIELD_LABELS = {
    "version": "版本号",
    "text": "内容",
    "lead": "主办单位",
    "assists": "协办单位",
    "note": "说明",
    "reason": "理由",
    "department": "下派单位",
    "until": "延期至",
    "satisfaction": "满意度",
    "master": "主工单编号",
    "summary": "诉求汇总",
    "title": "标题",
    "kind": "类型",
    "urgency": "紧急程度",
    "category": "分类",
    "region": "区划",
    "address": "地址",
    "content": "诉求内容",
    "channel": "渠道",
    "phone": "电话",
    "name": "姓名",
    "language": "语言",
    "confidential": "保密",
}
NEW_FIELDS: tuple[str, ...] = (
    "channel",
    "content",
    "summary",
    "title",
    "kind",
    "urgency",
    "category",
)
NEW_FIELDS += ("region", "address", "name", "phone", "language")
EDIT_FIELDS = ("summary", "kind", "urgency", "region", "address")
_CODES = re.compile(r"[\s,，;；、]+")


# -- shared helpers (pages.py uses them too) ----------------------------------------------------
def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    lang: str = "zh-Hans",
) -> web.Response:
    resp = aiohttp_jinja2.render_template(
        template, request, {"lang": lang, **context}, status=status
    )
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-store"  # pages carry callers' personal data
    return resp


def redirect(location: str) -> web.Response:
    """303 See Other: after a form POST the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location})


def http_status(exc: DomainError) -> int:
    """The status the one table in agent_ui.errors gives `exc`."""
    return status_for(exc)


def validation_message(exc: ValidationError) -> str:
    """One Chinese sentence for a form that failed the API's request model."""
    out: list[str] = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        label = FIELD_LABELS.get(field, field)
        if err["type"] == "missing":
            out.append(f"请填写{label}")
        elif err["type"] == "string_too_long":
            out.append(f"{label}过长")
        else:
            out.append(f"{label}填写不正确")
    return "；".join(dict.fromkeys(out)) or "提交的内容不正确"


def region_groups(directory: Directory) -> list[tuple[Region, list[Region]]]:
    """Leagues and cities (盟市), each with its banners and counties (旗县区)."""
    root = directory.root()
    return [(league, directory.children(league.code)) for league in directory.children(root.code)]


def safe_next(value: object) -> str:
    """Only a local staff path may follow a login (no open redirect)."""
    path = str(value or "")
    if path.startswith("/staff/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/staff/tickets"


async def staff_context(request: web.Request) -> dict[str, Any]:
    session = await current_session(request)
    user = session.user if session else None
    return {
        "can_see_sms": bool(user and user.role in SMS_VIEW_ROLES),
        "user": user,
        "role_label": LABELS[user.role.value] if user else "",
        "csrf": session.csrf_token if session else "",
        "can_register": bool(user and user.role in INTAKE_ROLES),
    }


def _text(form: MultiMapping[Any], name: str) -> str:
    return str(form.get(name, "")).strip()


# -- login and logout -------------------------------------------------------------------------
async def login_form(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    if await current_session(request) is not None:
        return redirect(next_path)
    notice = "您已退出登录" if "out" in request.query else None
    ctx = {
        **await staff_context(request),
        "error": None,
        "notice": notice,
        "username": "",
        "next": next_path,
    }
    return render(request, "staff/login.html", ctx)


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = _text(form, "username"), str(form.get("password", ""))
    next_path = safe_next(form.get("next"))
    svc = services(request)
    try:
        if not username or not password:
            raise InvalidInput("请输入用户名和密码")
        if len(username) > 64 or len(password) > 256:
            raise InvalidInput("用户名或密码过长")
        token, _ = await svc.accounts.login(username, password, client_address(request))
    except DomainError as exc:
        ctx = {
            **await staff_context(request),
            "error": exc.message,
            "notice": None,
            "username": username,
            "next": next_path,
        }
        resp = render(request, "staff/login.html", ctx, status=http_status(exc))
        if isinstance(exc, LoginThrottled):
            resp.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return resp
    resp = redirect(next_path)
    max_age = int(svc.accounts.session_ttl.total_seconds())
    set_session_cookie(resp, token, svc.web.cookie_secure, max_age)
    return resp


async def logout(request: web.Request) -> web.Response:
    await require_staff(request, write=True)
    await services(request).accounts.logout(request.cookies.get(SESSION_COOKIE, ""))
    resp = redirect("/staff/login?out=1")
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def staff_home(request: web.Request) -> web.Response:
    return redirect("/staff/tickets")


# -- the list ---------------------------------------------------------------------------------
def _enum_param(request: web.Request, name: str, enum: Any) -> Any:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        raise InvalidInput(f"筛选条件“{FIELD_LABELS.get(name, name)}”的值无效") from None


async def ticket_list(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    flt = TicketFilter(
        status=_enum_param(request, "status", Status),
        channel=_enum_param(request, "channel", Channel),
        kind=_enum_param(request, "kind", Kind),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    found, total = await svc.tickets.list_tickets(actor, flt)
    filters = {
        k: v.value
        for k, v in (("status", flt.status), ("channel", flt.channel), ("kind", flt.kind))
        if v
    }
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        return "/staff/tickets?" + urlencode({**filters, "page": n})

    ctx = {
        **await staff_context(request),
        "tickets": found,
        "total": total,
        "page": page,
        "pages": pages,
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page < pages else None,
        "filters": filters,
        "statuses": list(Status),
        "channels": list(Channel),
        "kinds": list(Kind),
        "now": svc.tickets.clock(),
        "running": RUNNING,
    }
    return render(request, "staff/list.html", ctx)


async def find_ticket(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    number = request.query.get("number", "").strip()
    ticket = await services(request).tickets.get_by_number(actor, number)
    return redirect(f"/staff/tickets/{ticket.id}")


# -- registering an order (agents) ------------------------------------------------------------
async def _new_form(
    request: web.Request, values: Mapping[str, Any], error: str | None = None, status: int = 200
) -> web.Response:
    ctx = {
        **await staff_context(request),
        "values": values,
        "error": error,
        "channels": [c for c in Channel if c is not Channel.WEB],
        "kinds": list(Kind),
        "urgencies": list(Urgency),
        "regions": region_groups(services(request).directory),
    }
    return render(request, "staff/new.html", ctx, status=status)


async def new_ticket_form(request: web.Request) -> web.Response:
    await require_staff(request, *INTAKE_ROLES)
    blank = dict.fromkeys(NEW_FIELDS, "")
    defaults = {"channel": "phone", "kind": "other", "urgency": "normal", "language": "zh-Hans"}
    return await _new_form(request, {**blank, **defaults, "confidential": False})


async def new_ticket_submit(request: web.Request) -> web.Response:
    actor = await require_staff(request, *INTAKE_ROLES, write=True)
    form = await request.post()
    values: dict[str, Any] = {k: _text(form, k) for k in NEW_FIELDS}
    values["language"] = values["language"] or "zh-Hans"
    values["confidential"] = "confidential" in form
    data: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
    data["category"] = [c for c in _CODES.split(values["category"]) if c]
    svc = services(request)
    try:
        try:
            body = s.StaffTicket.model_validate(data)
        except ValidationError as exc:
            raise RequestValidation(validation_message(exc)) from None
        ticket = await svc.tickets.submit(body.to_new_ticket(), actor)
    except DomainError as exc:
        return await _new_form(request, values, exc.message, http_status(exc))
    return redirect(f"/staff/tickets/{ticket.id}?done=create")


# -- the detail page --------------------------------------------------------------------------
def _ticket_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route only matches digits


def _dispatch_scope(directory: Directory, ticket: Ticket, wanted: str | None) -> Region:
    """Where the dispatch form looks for departments: chosen, else the order's city, else all."""
    if wanted and directory.has_region(wanted):
        return directory.regions[wanted]
    region = directory.regions.get(ticket.region or "")
    if region is not None and region.parent is not None:
        parent = directory.regions[region.parent]
        return parent if parent.parent is not None else region
    return directory.root()


def _grouped(directory: Directory, depts: list[Department]) -> list[tuple[str, list[Department]]]:
    groups: dict[str, list[Department]] = {}
    for d in depts:
        groups.setdefault(d.region, []).append(d)
    return [(directory.region_name(code), items) for code, items in groups.items()]


def _scope_departments(directory: Directory, scope: Region) -> list[Department]:
    out = directory.departments_in(scope.code)
    for child in directory.children(scope.code):
        out += directory.departments_in(child.code)
    return out


def _iso_local(svc: Any, value: object) -> str:
    if not isinstance(value, str) or not value:
        return "—"
    try:
        return str(svc.presenter.local(datetime.fromisoformat(value)))
    except ValueError:
        return value


def _show(directory: Directory, key: str, value: object) -> str:
    if value is None or value == "" or value == []:
        return "（空）"
    if key in ("kind", "urgency", "channel", "satisfaction"):
        return LABELS.get(str(value), str(value))
    if key == "region":
        return directory.region_name(str(value))
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)


def describe_event(svc: Any, e: TicketEvent) -> str:
    """What an audit event changed, in a sentence (the reason is shown next to it)."""
    d: Directory = svc.directory
    new, old = e.new or {}, e.old or {}
    if e.action == "create":
        channel = LABELS.get(str(new.get("channel", "")), "")
        return f"编号 {new.get('number', '')}，渠道：{channel}"
    if e.action == Action.DISPATCH:
        text = f"主办：{d.department_name(str(new.get('lead', '')))}"
        assists = [d.department_name(str(c)) for c in new.get("assists") or []]
        return text + (f"；协办：{'、'.join(assists)}" if assists else "")
    if e.action == Action.FORWARD:
        src, dst = str(old.get("department", "")), str(new.get("department", ""))
        return f"{d.department_name(src)} → {d.department_name(dst)}"
    if e.action == Action.REQUEST_EXTENSION:
        return f"申请延期至 {_iso_local(svc, new.get('requested_until'))}"
    if e.action in (Action.APPROVE_EXTENSION, Action.DENY_EXTENSION):
        before, after = _iso_local(svc, old.get("reply_due")), _iso_local(svc, new.get("reply_due"))
        return f"办理时限：{before} → {after}"
    if e.action == Action.EDIT:
        return "；".join(
            f"{FIELD_LABELS.get(k, k)}：{_show(d, k, old.get(k))} → {_show(d, k, v)}"
            for k, v in new.items()
        )
    if e.action == Action.MERGE:
        return f"并入主工单 {new.get('master', '')}"
    if e.action == "merged_in":
        return f"重复工单 {new.get('duplicate', '')} 并入本工单"
    if e.action in (Action.ANSWER, Action.APPROVE) and new.get("answer"):
        return f"答复：{new['answer']}"
    if e.action in (Action.REVISIT, Action.REOPEN) and new.get("satisfaction"):
        return f"满意度：{LABELS.get(str(new['satisfaction']), '')}"
    if e.action == Action.URGE:
        return f"第 {new.get('urge_count', '')} 次催办"
    if "assignment_state" in new and "role" in new:
        return f"（{LABELS.get(str(new['role']), '')}）"
    return ""


async def detail_page(
    request: web.Request,
    actor: Actor,
    ticket_id: int,
    *,
    error: str | None = None,
    status: int = 200,
    posted: tuple[str, Mapping[str, Any]] | None = None,
) -> web.Response:
    svc = services(request)
    ticket = await svc.tickets.get(actor, ticket_id)
    events = await svc.tickets.events(actor, ticket_id)
    actions = svc.tickets.actions_for(actor, ticket)
    if not any(a.extension_state is ExtensionState.REQUESTED for a in ticket.assignments):
        # nothing to decide: the service would refuse, so don't offer the buttons
        actions = [a for a in actions if a not in (Action.APPROVE_EXTENSION, Action.DENY_EXTENSION)]
    d = svc.directory
    scope = _dispatch_scope(d, ticket, request.query.get("scope"))
    forward_targets = d.forward_targets(actor.department) if actor.department else []
    if not forward_targets:
        actions = [a for a in actions if a is not Action.FORWARD]
    done = request.query.get("done", "")
    notice = None
    if done == "create":
        notice = "工单已登记"
    elif done in {a.value for a in Action}:
        notice = f"操作成功：{ACTION_LABELS[Action(done)]}"
    posted_action, posted_values = posted or ("", {})

    def pv(action: str, name: str, default: object = "") -> Any:
        """A failed form comes back filled in with what was typed."""
        if action == posted_action and name in posted_values:
            return posted_values[name]
        return default

    ctx = {
        **await staff_context(request),
        "t": ticket,
        "events": [(e, describe_event(svc, e)) for e in events],
        "actions": [a.value for a in actions],
        "error": error,
        "notice": notice,
        "pv": pv,
        "now": svc.tickets.clock(),
        "running": RUNNING,
        "pending": AssignmentState.PENDING,
        "accepted": AssignmentState.ACCEPTED,
        "ext_none": ExtensionState.NONE,
        "is_department": actor.role is Role.DEPARTMENT,
        "scope": scope,
        "regions": region_groups(d),
        "root": d.root(),
        "dispatch_groups": _grouped(d, _scope_departments(d, scope)),
        "forward_groups": _grouped(d, forward_targets),
        "kinds": list(Kind),
        "urgencies": list(Urgency),
        "satisfactions": ["satisfied", "basic", "unsatisfied"],
    }
    return render(request, "staff/detail.html", ctx, status=status)


async def ticket_detail(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    return await detail_page(request, actor, _ticket_id(request))


def _until(raw: str, svc: Any) -> datetime | None:
    """A datetime-local value (no zone) is local time, Asia/Shanghai."""
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise RequestValidation("延期至的时间格式不正确", field="until") from None
    return value if value.tzinfo else value.replace(tzinfo=svc.presenter.tz)


async def _action_payload(
    request: web.Request, actor: Actor, action: Action, form: MultiMapping[Any]
) -> dict[str, Any]:
    """Turn the action's form into the API's request-body dict for the same action."""
    svc = services(request)
    model = ACTIONS[action][0]
    data: dict[str, Any] = {"version": _text(form, "version")}
    if action is Action.EDIT:
        ticket = await svc.tickets.get(actor, _ticket_id(request))
        for name in EDIT_FIELDS:
            value = _text(form, name)
            current = getattr(ticket, name)
            current = current.value if hasattr(current, "value") else current
            if name in form and value != (current or ""):
                data[name] = value or None
        return data
    for name in model.model_fields:
        if name in ("version", "assists"):
            continue
        value = _text(form, name)
        if name == "lead":
            value = _text(form, "lead_code") or value
        if name == "until":
            data[name] = _until(value, svc)
        elif value:
            data[name] = value
    if "assists" in model.model_fields:
        picked = [str(v) for v in form.getall("assists", []) if v]
        typed = [c for c in _CODES.split(_text(form, "assists_extra")) if c]
        data["assists"] = list(dict.fromkeys(picked + typed))
    return {k: v for k, v in data.items() if v is not None}


async def ticket_action(request: web.Request) -> web.Response:
    ticket_id = _ticket_id(request)
    try:
        action = Action(request.match_info["action"])
    except ValueError:
        raise web.HTTPNotFound() from None
    try:
        actor = await require_staff(request, write=True)
    except CsrfFailed as exc:
        actor = await require_staff(request)
        return await detail_page(request, actor, ticket_id, error=exc.message, status=403)
    form = await request.post()
    model, call, _ = ACTIONS[action]
    svc = services(request)
    try:
        data = await _action_payload(request, actor, action, form)
        try:
            body = model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidation(validation_message(exc)) from None
        await call(svc.tickets, actor, ticket_id, body)
    except DomainError as exc:
        # shown on the order's page; if the actor may not see the order, that error wins
        kept = {k: form.getall(k) if k == "assists" else str(form[k]) for k in form}
        return await detail_page(
            request,
            actor,
            ticket_id,
            error=exc.message,
            status=http_status(exc),
            posted=(action.value, kept),
        )
    return redirect(f"/staff/tickets/{ticket_id}?done={action.value}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/staff", staff_home)
    r.add_get("/staff/login", login_form)
    r.add_post("/staff/login", login_submit)
    r.add_post("/staff/logout", logout)
    r.add_get("/staff/tickets", ticket_list)
    r.add_get("/staff/tickets/find", find_ticket)
    r.add_get("/staff/tickets/new", new_ticket_form)
    r.add_post("/staff/tickets/new", new_ticket_submit)
    r.add_get(r"/staff/tickets/{id:\d{1,18}}", ticket_detail)
    r.add_post(r"/staff/tickets/{id:\d{1,18}}/{action:[a-z_]{1,32}}", ticket_action)
