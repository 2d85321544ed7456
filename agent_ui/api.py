"""JSON API under /api/v1: thin handlers (authenticate, validate, one service call, serialise)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from agent_ui import schemas as s
from agent_ui.accounts import Session
from agent_ui.context import (
    SESSION_COOKIE,
    citizen_rate,
    citizen_track,
    client_address,
    current_session,
    guard_intake,
    read_json,
    require_staff,
    services,
)
from agent_ui.filters import read_filter, words_through_search
from tickets.access import caller_view, normalize_phone
from tickets.errors import Conflict, InvalidInput, NotFound
from tickets.model import (
    LABELS,
    Action,
    Actor,
    Channel,
    Kind,
    NewTicket,
    Role,
    RouteState,
    Status,
    Ticket,
    TicketFilter,
)
from tickets.service import TicketService
from tickets.workflow import check_role

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    auth: str = "staff"  # public | staff
    status: int = 200
    tag: str = "工单"
    # OpenAPI parameters beyond the path: (name, "query" | "header", JSON schema, description)
    params: tuple[tuple[str, str, dict[str, Any], str], ...] = ()


ROUTES: list[Route] = []


def route(
    method: str,
    path: str,
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    auth: str = "staff",
    status: int = 200,
    tag: str = "工单",
    params: tuple[tuple[str, str, dict[str, Any], str], ...] = (),
) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, path, fn, summary, body, auth, status, tag, params))
        return fn

    return deco


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# -- session ----------------------------------------------------------------------------------
def _user_json(session: Session) -> dict[str, Any]:
    u = session.user
    return {
        "id": u.id,
        "username": u.username,
        "role": u.role.value,
        "role_label": LABELS[u.role.value],
        "department": u.department,
        "display_name": u.display_name,
        "csrf_token": session.csrf_token,
    }


@route(
    "POST",
    "/session",
    "登录（返回会话 Cookie 和 CSRF 令牌）",
    body=s.Login,
    auth="public",
    tag="账号",
)
async def login(request: web.Request) -> web.Response:
    body = await read_json(request, s.Login)
    svc = services(request)
    token, session = await svc.accounts.login(body.username, body.password, client_address(request))
    resp = _json({"user": _user_json(session)})
    set_session_cookie(
        resp, token, svc.web.cookie_secure, int(svc.accounts.session_ttl.total_seconds())
    )
    return resp


def set_session_cookie(resp: web.StreamResponse, token: str, secure: bool, max_age: int) -> None:
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=secure,
        max_age=max_age,
        path="/",
    )


@route("GET", "/session", "当前登录用户", tag="账号")
async def whoami(request: web.Request) -> web.Response:
    await require_staff(request)
    session = await current_session(request)
    assert session is not None
    return _json({"user": _user_json(session)})


@route("DELETE", "/session", "退出登录", tag="账号")
async def logout(request: web.Request) -> web.Response:
    await require_staff(request, write=True)
    token = request.cookies.get(SESSION_COOKIE, "")
    await services(request).accounts.logout(token)
    resp = _json({"ok": True})
    resp.del_cookie(SESSION_COOKIE, path="/")
    return resp


# -- citizens ---------------------------------------------------------------------------------
@route(
    "POST",
    "/requests",
    "市民提交诉求（网站渠道），返回工单编号",
    body=s.CitizenRequest,
    auth="public",
    status=201,
    tag="市民",
    params=(
        (
            "Idempotency-Key",
            "header",
            {"type": "string", "pattern": "^[A-Za-z0-9._:-]{8,100}$"},
            "重试同一请求时带同一个键：只生成一张工单",
        ),
    ),
)
async def submit_request(request: web.Request) -> web.Response:
    await guard_intake(request)
    key = _idempotency_key(request)
    body = await read_json(request, s.CitizenRequest)
    svc = services(request)
    new = body.to_new_ticket()
    if key is not None:
        new = dataclasses.replace(new, intake_key=f"web:{key}")
    ticket = await svc.tickets.submit(new)
    if key is not None and not _same_request(ticket, new):
        raise Conflict("该 Idempotency-Key 已用于另一个不同的请求", field="Idempotency-Key")
    return _json(
        {
            "number": ticket.number,
            "status": ticket.status.value,
            "status_label": "已受理",
            "created_at": svc.presenter.time(ticket.created_at),
            "message": f"您的诉求已受理，工单编号 {ticket.number}，可凭编号和电话查询办理进度。",
        },
        status=201,
    )


_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,100}$")


def _idempotency_key(request: web.Request) -> str | None:
    """A client's key for one submission (a UUID, say): sending it again, after a timeout or
    a lost answer, gives the same order instead of a second one."""
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    if not _IDEMPOTENCY_KEY.match(raw):
        raise InvalidInput(
            "Idempotency-Key 应为 8–100 位字母、数字或 . _ : -", field="Idempotency-Key"
        )
    return raw


def _same_request(ticket: Ticket, new: NewTicket) -> bool:
    """A repeated key must carry the same request (the order keeps what was first sent)."""
    phone = new.caller.phone
    try:
        phone = normalize_phone(phone) if phone else None
    except InvalidInput:
        return False
    return ticket.content == new.content.strip() and ticket.caller.phone == phone


@route(
    "GET",
    "/requests/{number}",
    "市民查询工单（编号 + 电话 phone 查询参数）；已合并的重复工单在 merged_into 中附主工单的"
    "编号、状态和公开答复",
    auth="public",
    tag="市民",
    params=(("phone", "query", {"type": "string"}, "提交诉求时留的电话"),),
)
async def track_request(request: web.Request) -> web.Response:
    svc = services(request)
    ticket, main = await citizen_track(
        request, request.match_info["number"], request.query.get("phone", "")
    )
    return _json(svc.presenter.citizen(ticket, main))


@route(
    "POST",
    "/requests/{number}/rating",
    "市民评价答复（满意 / 基本满意 / 不满意）",
    body=s.Rating,
    auth="public",
    tag="市民",
)
async def rate_request(request: web.Request) -> web.Response:
    body = await read_json(request, s.Rating)
    svc = services(request)
    ticket = await citizen_rate(
        request,
        request.match_info["number"],
        body.phone,
        body.satisfaction,
        body.note,
        body.resolved,
    )
    return _json(svc.presenter.citizen(ticket))


# -- staff: work orders -----------------------------------------------------------------------
def _enum_query(request: web.Request, name: str, enum: Any) -> Any:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return enum(raw)
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidInput(f"参数 {name} 的值无效（可选: {allowed}）", field=name) from None


def _choice_query(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    if raw not in allowed:
        raise InvalidInput(f"参数 {name} 的值无效（可选: {', '.join(allowed)}）", field=name)
    return raw


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"参数 {name} 必须是整数", field=name) from None
    if not lo <= value <= hi:
        raise InvalidInput(f"参数 {name} 须在 {lo}–{hi} 之间", field=name)
    return value


_TEXT = {"type": "string"}
LIST_PARAMS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("q", "query", _TEXT, "关键词（诉求内容、汇总、标题、地址）"),
    ("phone", "query", _TEXT, "来电号码"),
    ("number", "query", {"type": "string", "pattern": "^\\d{1,14}$"}, "工单编号（前缀）"),
    ("status", "query", {"type": "string", "enum": [x.value for x in Status]}, "状态"),
    ("channel", "query", {"type": "string", "enum": [x.value for x in Channel]}, "渠道"),
    ("kind", "query", {"type": "string", "enum": [x.value for x in Kind]}, "类型"),
    ("department", "query", _TEXT, "承办单位代码"),
    ("region", "query", {"type": "string", "pattern": "^\\d{6}$"}, "区划代码（含下级）"),
    ("route_state", "query", {"type": "string", "enum": [x.value for x in RouteState]}, "分派"),
    ("overdue", "query", {"type": "string", "enum": ["1", "0"]}, "1 已超期 / 0 未超期"),
    ("supervised", "query", {"type": "string", "enum": ["1", "0"]}, "1 督办中"),
    ("urged", "query", {"type": "string", "enum": ["1", "0"]}, "1 被催办过"),
    ("category", "query", _TEXT, "分类（任一级名称）"),
    ("from", "query", {"type": "string", "format": "date"}, "受理日期起（含）"),
    ("until", "query", {"type": "string", "format": "date"}, "受理日期止（含）"),
    ("sort", "query", {"type": "string", "enum": ["new", "due"]}, "排序"),
    ("limit", "query", {"type": "integer", "minimum": 1}, "每页条数"),
    ("offset", "query", {"type": "integer", "minimum": 0}, "偏移"),
)


def ticket_filter(request: web.Request) -> TicketFilter:
    svc = services(request)
    return read_filter(
        request.query,
        svc.directory,
        limit=_int_query(request, "limit", 50, 1, svc.web.page_size_max),
        offset=_int_query(request, "offset", 0, 0, 10_000_000),
        tz=svc.presenter.tz,
    )


@route(
    "GET",
    "/tickets",
    "工单列表（q 关键词、phone、number 编号前缀、status、channel、kind、department、region "
    "区划及下级、route_state 分派状态、overdue=1 已超期、sort=new|due；route_state=review 为"
    "待人工派单队列；承办单位只见本单位工单；每条附 marks 标记与 deadline 当前时限）",
    params=LIST_PARAMS,
)
async def list_tickets(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    orders = svc.search.orders if svc.search else None
    flt, note = await words_through_search(
        orders, actor, ticket_filter(request), request.query.get("region")
    )
    found, total = await svc.tickets.list_tickets(actor, flt)
    items = [svc.presenter.ticket(caller_view(actor, t)) for t in found]
    return _json({"total": total, "items": items, **({"note": note} if note else {})})


@route("POST", "/tickets", "话务员登记工单（电话、来访等渠道）", body=s.StaffTicket, status=201)
async def create_ticket(request: web.Request) -> web.Response:
    actor = await require_staff(request, Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, write=True)
    body = await read_json(request, s.StaffTicket)
    svc = services(request)
    ticket = await svc.tickets.submit(body.to_new_ticket(), actor)
    return _json(_ticket_out(svc.tickets, svc.presenter, actor, ticket), status=201)


def _ticket_out(tickets: TicketService, presenter: Any, actor: Actor, t: Ticket) -> dict[str, Any]:
    """An order as `actor` sees it: its caller masked as caller_view says (the full caller:
    POST /tickets/{id}/caller, audited)."""
    out: dict[str, Any] = presenter.ticket(caller_view(actor, t), tickets.actions_for(actor, t))
    return out


MAX_ID = 2**63 - 1  # the store's BIGINT


def path_id(request: web.Request, key: str = "id", label: str = "工单") -> int:
    """A row id from the URL: 422 when it is not an integer, 404 when no row can have it (the
    store's ids are positive BIGINTs; a larger number would overflow the driver, not miss)."""
    try:
        value = int(request.match_info[key])
    except ValueError:
        raise InvalidInput(f"{label} ID 必须是整数", field=key) from None
    if not 1 <= value <= MAX_ID:
        raise NotFound(f"{label}不存在")
    return value


def page_id(request: web.Request, key: str = "id") -> int:
    """A row id in a page's URL: 404 for anything no row can have (not digits, beyond BIGINT)."""
    raw = request.match_info[key]
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else 0
    if not 1 <= value <= MAX_ID:
        raise web.HTTPNotFound()
    return value


def _ticket_id(request: web.Request) -> int:
    return path_id(request)


@route(
    "GET",
    "/tickets/{id}",
    "工单详情（含承办任务和当前可执行的操作；保密工单的来电人打码，打开保密工单记入访问日志）",
)
async def get_ticket(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    ticket = await svc.tickets.get(actor, _ticket_id(request), with_clocks=True)
    await svc.privacy.opened(actor, ticket, client_address(request))
    return _json(_ticket_out(svc.tickets, svc.presenter, actor, ticket))


@route("GET", "/tickets/by-number/{number}", "按工单编号查询")
async def get_ticket_by_number(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    ticket = await svc.tickets.get_by_number(actor, request.match_info["number"], with_clocks=True)
    await svc.privacy.opened(actor, ticket, client_address(request))
    return _json(_ticket_out(svc.tickets, svc.presenter, actor, ticket))


@route("GET", "/tickets/{id}/events", "工单流转记录（审计日志）")
async def ticket_events(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    found = await svc.tickets.events(actor, _ticket_id(request))
    return _json({"items": [svc.presenter.event(e) for e in found]})


@route("GET", "/tickets/{id}/clocks", "工单时限（签收、办结、回访）及其状态")
async def ticket_clocks(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    found = await svc.tickets.clocks(actor, _ticket_id(request))
    return _json({"items": [svc.presenter.clock(c) for c in found]})


# one entry per workflow action: (body model, how to call the service)
ActionCall = Callable[[TicketService, Actor, int, Any], Awaitable[Ticket]]
ACTIONS: dict[Action, tuple[type[s.Versioned], ActionCall, str]] = {
    Action.ANSWER: (s.AnswerBody, lambda t, a, i, b: t.answer(a, i, b.version, b.text), "直接答复"),
    Action.DISPATCH: (
        s.DispatchBody,
        lambda t, a, i, b: t.dispatch(a, i, b.version, b.lead, b.assists, b.note),
        "派单 / 改派 / 重新派单（主办 lead，协办 assists）",
    ),
    Action.SIGN: (s.Versioned, lambda t, a, i, b: t.sign(a, i, b.version), "签收"),
    Action.RETURN: (
        s.ReasonBody,
        lambda t, a, i, b: t.return_(a, i, b.version, b.reason),
        "退单（须写理由）",
    ),
    Action.FORWARD: (
        s.ForwardBody,
        lambda t, a, i, b: t.forward(a, i, b.version, b.department, b.note),
        "二级派单：下派给下一级区划的单位",
    ),
    Action.REQUEST_EXTENSION: (
        s.ExtensionBody,
        lambda t, a, i, b: t.request_extension(a, i, b.version, b.until, b.reason),
        "申请延期",
    ),
    Action.APPROVE_EXTENSION: (
        s.DecisionBody,
        lambda t, a, i, b: t.decide_extension(a, i, b.version, True, b.reason),
        "同意延期",
    ),
    Action.DENY_EXTENSION: (
        s.DecisionBody,
        lambda t, a, i, b: t.decide_extension(a, i, b.version, False, b.reason),
        "驳回延期",
    ),
    Action.REPLY: (s.ReplyBody, lambda t, a, i, b: t.reply(a, i, b.version, b.text), "办结反馈"),
    Action.APPROVE: (
        s.DecisionBody,
        lambda t, a, i, b: t.review(a, i, b.version, True, b.reason),
        "审核通过",
    ),
    Action.REJECT: (
        s.ReasonBody,
        lambda t, a, i, b: t.review(a, i, b.version, False, b.reason),
        "审核不通过（重办）",
    ),
    Action.REVISIT: (
        s.RevisitBody,
        lambda t, a, i, b: t.revisit(a, i, b.version, b.satisfaction, b.note, b.resolved),
        "回访（不满意则重启工单）",
    ),
    Action.REOPEN: (
        s.ReasonBody,
        lambda t, a, i, b: t.reopen(a, i, b.version, b.reason),
        "重启工单",
    ),
    Action.CLOSE: (s.NoteBody, lambda t, a, i, b: t.close(a, i, b.version, b.note), "办结归档"),
    Action.MERGE: (
        s.MergeBody,
        lambda t, a, i, b: t.merge(a, i, b.version, b.master),
        "合并到主工单",
    ),
    Action.SUPERVISE: (s.NoteBody, lambda t, a, i, b: t.supervise(a, i, b.version, b.note), "督办"),
    Action.URGE: (s.NoteBody, lambda t, a, i, b: t.urge(a, i, b.version, b.note), "催办"),
    Action.EDIT: (
        s.EditBody,
        lambda t, a, i, b: t.edit(
            a, i, b.version, b.model_dump(exclude={"version"}, exclude_unset=True)
        ),
        "修改受理信息（诉求汇总、类型、分类、区划等）",
    ),
}


async def act(request: web.Request, action: Action) -> web.Response:
    actor = await require_staff(request, write=True)
    model, call, _ = ACTIONS[action]
    svc = services(request)
    # who may touch the order is decided before its body is read: someone else's order
    # answers the same whatever the body holds
    await svc.tickets.get(actor, _ticket_id(request))
    check_role(actor.role, action)
    body = await read_json(request, model)
    ticket = await call(svc.tickets, actor, _ticket_id(request), body)
    return _json(_ticket_out(svc.tickets, svc.presenter, actor, ticket))


def _action_handler(action: Action) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return await act(request, action)

    handler.__name__ = f"act_{action.value}"
    return handler


for _action, (_model, _call, _summary) in ACTIONS.items():
    route("POST", f"/tickets/{{id}}/{_action.value}", _summary, body=_model)(
        _action_handler(_action)
    )


# -- directory --------------------------------------------------------------------------------
@route("GET", "/regions", "区划目录（自治区 / 盟市 / 旗县区）", auth="public", tag="目录")
async def regions(request: web.Request) -> web.Response:
    d = services(request).directory
    return _json(
        {
            "items": [
                {"code": r.code, "name": r.name, "level": r.level.value, "parent": r.parent}
                for r in d.regions.values()
            ]
        }
    )


@route("GET", "/departments", "承办单位目录（可按 region 区划代码筛选）", tag="目录")
async def departments(request: web.Request) -> web.Response:
    await require_staff(request)
    d = services(request).directory
    region = request.query.get("region")
    items = d.departments_in(region) if region else list(d.departments.values())
    return _json(
        {
            "items": [
                {
                    "code": x.code,
                    "name": x.name,
                    "region": x.region,
                    "level": x.level.value,
                    "type": x.type_key,
                }
                for x in items
            ]
        }
    )


def add_routes(app: web.Application, prefix: str = "/api/v1") -> None:
    for r in ROUTES:
        app.router.add_route(r.method, prefix + r.path, r.handler)
