"""Staff pages: login, the work-order list, registration, and one form per workflow action."""

from __future__ import annotations

import dataclasses
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from multidict import MultiMapping
from pydantic import ValidationError

from agent_ui import schemas as s
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
from agent_ui.limits import Throttled
from agent_ui.views import CLOCK_LABELS, FIELD_LABELS, time_left
from routing.directory import Department, Directory, Region
from tickets import timing
from tickets.access import REVEAL_ROLES, caller_view
from tickets.errors import DomainError, InvalidInput, VersionConflict
from tickets.model import (
    ACTION_LABELS,
    LABELS,
    Action,
    Actor,
    AssignmentState,
    Caller,
    Channel,
    ExtensionState,
    Kind,
    Role,
    Status,
    Ticket,
    Urgency,
)
from tickets.workflow import ROLES, check_role

PAGE_SIZE = 50
INTAKE_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR)
SMS_VIEW_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
AUDIT_PAGE_ROLES = (Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)  # agent_ui.api_audit.AUDIT_ROLES
CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'{form_to}; "
    "frame-ancestors 'none'; base-uri 'none'"
)
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
    # a form's redirect counts as its target: logging out of a single sign-on session goes on
    # to the identity provider's logout
    extra = "".join(f" {origin}" for origin in services(request).web.form_action)
    resp.headers["Content-Security-Policy"] = CSP.format(form_to=extra)
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


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(value: object) -> str:
    """Only a local staff path may follow a login (no open redirect)."""
    path = str(value or "")
    if (
        path.startswith("/staff/")
        and not path.startswith("//")
        and "\\" not in path
        and not _LINE_BREAKS.search(path)  # a CR/LF would split the Location header
    ):
        return path
    return "/staff/tickets"


# what the staff pages' frame shows without a signed-in user (or with no database to ask)
NO_SESSION: dict[str, Any] = {
    "can_see_sms": False,
    "user": None,
    "role_label": "",
    "csrf": "",
    "can_register": False,
}


async def staff_context(request: web.Request) -> dict[str, Any]:
    session = await current_session(request)
    user = session.user if session else None
    return {
        "can_see_sms": bool(user and user.role in SMS_VIEW_ROLES),
        "user": user,
        "role_label": LABELS[user.role.value] if user else "",
        "csrf": session.csrf_token if session else "",
        "can_register": bool(user and user.role in INTAKE_ROLES),
        "can_take_calls": bool(user and user.role in INTAKE_ROLES),  # the softphone
        "can_audit": bool(user and user.role in AUDIT_PAGE_ROLES),
    }


def _text(form: MultiMapping[Any], name: str) -> str:
    return str(form.get(name, "")).strip()


def _int(form: MultiMapping[Any], name: str) -> int:
    try:
        return max(0, int(_text(form, name) or 0))
    except ValueError:
        return 0


# -- login and logout -------------------------------------------------------------------------
LOGIN_CSRF_COOKIE = "hotline_login_csrf"


def login_page(request: web.Request, ctx: dict[str, Any], status: int = 200) -> web.Response:
    """The login form with a fresh token of its own (double submit: the same value in a
    cookie only this site's pages can set and in the form), so another site cannot post a
    login form into this one (login CSRF) even where SameSite is not enforced."""
    token = secrets.token_urlsafe(24)
    svc = services(request)
    ctx = {
        **ctx,
        "login_csrf": token,
        "sso_enabled": svc.sso is not None,
        "local_login": svc.accounts.local_login,
    }
    resp = render(request, "staff/login.html", ctx, status=status)
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=services(request).web.cookie_secure,
        path="/staff/login",
        max_age=3600,
    )
    return resp


async def login_form(request: web.Request) -> web.Response:
    next_path = safe_next(request.query.get("next"))
    if await current_session(request) is not None:
        return redirect(next_path)
    notice = {"1": "您已退出登录", "all": "已退出所有设备上的登录"}.get(
        request.query.get("out", ""), "您已退出登录" if "out" in request.query else None
    )
    ctx = {
        **await staff_context(request),
        "error": None,
        "notice": notice,
        "username": "",
        "next": next_path,
    }
    return login_page(request, ctx)


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = _text(form, "username"), str(form.get("password", ""))
    next_path = safe_next(form.get("next"))
    svc = services(request)
    try:
        sent = str(form.get("login_csrf", ""))
        kept = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not sent or not kept or not hmac.compare_digest(sent, kept):
            raise CsrfFailed("登录页面已过期，请重新输入后登录")
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
        resp = login_page(request, ctx, status=http_status(exc))
        if isinstance(exc, Throttled):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    resp = redirect(next_path)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/staff/login")
    max_age = int(svc.accounts.session_ttl.total_seconds())
    set_session_cookie(resp, token, svc.web.cookie_secure, max_age)
    return resp


async def logout(request: web.Request) -> web.Response:
    await require_staff(request, write=True)
    return await end_session(request, everywhere=False)


async def end_session(request: web.Request, *, everywhere: bool) -> web.Response:
    """End this session (or every session of the account), then, for a single sign-on
    session, the provider's session too (RP-initiated logout) when it offers that."""
    svc = services(request)
    session = await current_session(request)
    assert session is not None  # the caller checked
    if everywhere:
        await svc.accounts.logout_everywhere(session.user.id)
    else:
        await svc.accounts.logout(request.cookies.get(SESSION_COOKIE, ""))
    target = "/staff/login?out=" + ("all" if everywhere else "1")
    if svc.sso is not None:
        target = await svc.sso.logout_url(session, target) or target
    resp = redirect(target)
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


async def staff_home(request: web.Request) -> web.Response:
    return redirect("/staff/tickets")


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
    # from the screen pop: the caller's number and the call the order is for
    prefill = {k: request.query.get(k, "")[:40] for k in ("phone", "call")}
    return await _new_form(request, {**blank, **defaults, **prefill, "confidential": False})


async def new_ticket_submit(request: web.Request) -> web.Response:
    actor = await require_staff(request, *INTAKE_ROLES, write=True)
    form = await request.post()
    values: dict[str, Any] = {k: _text(form, k) for k in NEW_FIELDS}
    values["language"] = values["language"] or "zh-Hans"
    values["confidential"] = "confidential" in form
    data: dict[str, Any] = {k: v for k, v in values.items() if v != ""}
    data["category"] = [c for c in _CODES.split(values["category"]) if c]
    then = _text(form, "then")
    extra = {k: _text(form, k) for k in ("then", "answer", "lead", "call")}
    svc = services(request)
    try:
        if then == "answer" and not extra["answer"]:
            raise InvalidInput("直接答复请填写答复内容", field="answer")
        if then == "dispatch" and not svc.directory.has_department(extra["lead"]):
            raise InvalidInput("派单请填写正确的主办单位代码", field="lead")
        try:
            body = s.StaffTicket.model_validate(data)
        except ValidationError as exc:
            raise RequestValidation(validation_message(exc)) from None
        ticket = await svc.tickets.submit(body.to_new_ticket(), actor)
    except DomainError as exc:
        return await _new_form(request, {**values, **extra}, exc.message, http_status(exc))
    if extra["call"] and svc.calls is not None:
        session = await current_session(request)
        if session is not None:
            await svc.calls.link_ticket(extra["call"], ticket.id, session.user.username)
    try:  # one step: registered, then answered or dispatched
        if then == "answer":
            await svc.tickets.answer(actor, ticket.id, ticket.version, extra["answer"])
            return redirect(f"/staff/tickets/{ticket.id}?done=answer")
        if then == "dispatch":
            await svc.tickets.dispatch(actor, ticket.id, ticket.version, extra["lead"])
            return redirect(f"/staff/tickets/{ticket.id}?done=dispatch")
    except DomainError as exc:
        # the order stands; say what did not happen
        return await detail_page(
            request, actor, ticket.id, error=f"工单已登记，但后续操作未完成：{exc.message}"
        )
    return redirect(f"/staff/tickets/{ticket.id}?done=create")


# -- the detail page --------------------------------------------------------------------------
def _ticket_id(request: web.Request) -> int:
    return int(request.match_info["id"])  # the route only matches digits


def _dispatch_scope(directory: Directory, ticket: Ticket, wanted: str | None) -> Region:
    """Where the dispatch form looks for departments: chosen, else the order's city (or the
    one the triage found in its text), else all."""
    if wanted and directory.has_region(wanted):
        return directory.regions[wanted]
    found = (ticket.suggestion or {}).get("region")
    code = ticket.region or (found.get("code") if isinstance(found, dict) else None) or ""
    region = directory.regions.get(str(code))
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


async def detail_page(
    request: web.Request,
    actor: Actor,
    ticket_id: int,
    *,
    error: str | None = None,
    status: int = 200,
    posted: tuple[str, Mapping[str, Any]] | None = None,
    conflict: Conflicted | None = None,
    revealed: Caller | None = None,
) -> web.Response:
    """The order's page; `revealed`: the caller in full, after an audited 显示号码."""
    svc = services(request)
    ticket = await svc.tickets.get(actor, ticket_id, with_clocks=True)
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

    now = svc.tickets.now()
    last_event = max((e.id for e in events), default=0)
    suggested = svc.presenter.suggested_department(ticket.suggestion)
    dispatch_groups = _grouped(d, _scope_departments(d, scope))

    def clock_phase(assignment_id: int, kind: str) -> str:
        for c in ticket.clocks:
            if c.assignment_id == assignment_id and c.kind.value == kind:
                p = timing.phase(c, now)
                return p.value if p else ""
        return ""

    shown = dataclasses.replace(ticket, caller=revealed) if revealed else caller_view(actor, ticket)
    ctx = {
        **await staff_context(request),
        "t": shown,
        "revealed": revealed is not None,
        "can_reveal": actor.role in REVEAL_ROLES,
        "events": [(e, svc.presenter.describe(e)) for e in events],
        "actions": [a.value for a in actions],
        "error": error,
        "notice": notice,
        "situation": situation(svc, ticket),
        "pv": pv,
        "now": now,
        "marks": svc.presenter.timing(ticket)["marks"],
        "deadline": timing.next_deadline(ticket, now),
        "clock_labels": CLOCK_LABELS,
        "suggestion": svc.presenter.suggestion_lines(ticket.suggestion),
        "suggested_lead": suggested,
        "suggested_in_list": suggested in {dep.code for _, deps in dispatch_groups for dep in deps},
        "time_left": lambda due: time_left(due, now),
        "clock_phase": clock_phase,
        "in_review": timing.in_review_queue(ticket),
        "attachments": svc.presenter.ticket(ticket)["attachments"],
        "can_attach": _may_attach(actor, ticket),
        "max_mb": svc.files.max_bytes // (1024 * 1024) if svc.files else 0,
        # a form carries the version the person saw; after a conflict it keeps the one they
        # had and asks them to confirm against the new state (confirm_version)
        "form_version": conflict.version if conflict else ticket.version,
        "seen": last_event,
        "conflict": conflict,
        "changes": [
            (e, svc.presenter.describe(e)) for e in events if conflict and e.id > conflict.seen
        ],
        "pending": AssignmentState.PENDING,
        "accepted": AssignmentState.ACCEPTED,
        "ext_none": ExtensionState.NONE,
        "is_department": actor.role is Role.DEPARTMENT,
        "scope": scope,
        "regions": region_groups(d),
        "root": d.root(),
        "dispatch_groups": dispatch_groups,
        "forward_groups": _grouped(d, forward_targets),
        "kinds": list(Kind),
        "urgencies": list(Urgency),
        "satisfactions": ["satisfied", "basic", "unsatisfied"],
    }
    return render(request, "staff/detail.html", ctx, status=status)


def _may_attach(actor: Actor, t: Ticket) -> bool:
    if t.status in (Status.CLOSED, Status.MERGED) or actor.role not in ROLES[Action.ATTACH]:
        return False
    if actor.role is Role.DEPARTMENT:
        return any(a.active and a.department == actor.department for a in t.assignments)
    return True


@dataclass(frozen=True, slots=True)
class Conflicted:
    """A form was sent against an older version of the order."""

    version: int  # the version the person saw
    seen: int  # the last audit event their page showed


def situation(svc: Any, t: Ticket) -> str | None:
    """What staff must know first about the order's state (why it waits, for whom)."""
    if t.status is Status.REOPENED:
        due = svc.presenter.local(t.reply_due) if t.reply_due else "—"
        return (
            f"市民回访不满意，工单已重启，需要重新派单。新的办理期限自重启时起算，至 {due}"
            "（已批准的延期不因重启而缩短）。"
        )
    if t.status is Status.RETURNED:
        reasons = [a.return_reason for a in t.assignments if a.return_reason]
        why = f"（理由：{reasons[-1]}）" if reasons else ""
        return f"承办单位已退单{why}，需要重新派单；办理期限不变，热线持有期间照常计时。"
    if timing.in_review_queue(t):
        return "分类置信度不足，等待派单员确认：请核对下方分类建议后派单或直接答复。"
    if t.master_id is not None:
        return "本工单已合并到主工单，随主工单办理。"
    return None


async def ticket_detail(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    ticket = await svc.tickets.get(actor, _ticket_id(request))
    await svc.privacy.opened(actor, ticket, client_address(request))
    return await detail_page(request, actor, ticket.id)


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
            value = value or _text(form, "lead_code")  # the list first, else a typed code
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
        # who may touch the order, and this action at all, before the form is read
        await svc.tickets.get(actor, ticket_id)
        check_role(actor.role, action)
        data = await _action_payload(request, actor, action, form)
        if form.get("confirm") == "1" and _text(form, "confirm_version"):
            # the person saw what changed since their version and confirmed the new state
            data["version"] = _text(form, "confirm_version")
        try:
            body = model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidation(validation_message(exc)) from None
        await call(svc.tickets, actor, ticket_id, body)
    except DomainError as exc:
        # shown on the order's page; if the actor may not see the order, that error wins
        kept = {k: form.getall(k) if k == "assists" else str(form[k]) for k in form}
        conflict = None
        message = exc.message
        if isinstance(exc, VersionConflict):
            conflict = Conflicted(version=_int(form, "version"), seen=_int(form, "seen"))
            message = "提交前工单已被他人修改。请核对下方“最新变化”，确认后再提交（或放弃操作）。"
        return await detail_page(
            request,
            actor,
            ticket_id,
            error=message,
            status=http_status(exc),
            posted=(action.value, kept),
            conflict=conflict,
        )
    return redirect(f"/staff/tickets/{ticket_id}?done={action.value}")


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/staff", staff_home)
    r.add_get("/staff/login", login_form)
    r.add_post("/staff/login", login_submit)
    r.add_post("/staff/logout", logout)
    r.add_get("/staff/tickets/new", new_ticket_form)
    r.add_post("/staff/tickets/new", new_ticket_submit)
    r.add_get(r"/staff/tickets/{id:\d{1,18}}", ticket_detail)
    r.add_post(r"/staff/tickets/{id:\d{1,18}}/{action:[a-z_]{1,32}}", ticket_action)
