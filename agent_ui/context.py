"""What the web layer needs from the composition root, under typed app keys; request helpers."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent_ui.accounts import Accounts, NotAuthenticated, Session
from agent_ui.config import Open311Settings, PublicSettings
from agent_ui.limits import CitizenGuard
from agent_ui.sso import SingleSignOn
from agent_ui.views import Presenter
from kb.service import KnowledgeBase
from routing.directory import Directory
from routing.hotspots import Hotspots
from routing.order_search import OrderSearch
from routing.similar import SimilarRequests
from routing.suggest import Suggester
from telephony.call_stats import CallStatsService
from telephony.center import CallCenter
from telephony.presence import Presence
from telephony.sms import SmsService
from tickets.case_service import CaseService
from tickets.config import StatsSettings
from tickets.errors import DomainError, InvalidInput, NotFound, RoleForbidden
from tickets.groups import GroupService
from tickets.model import Actor, Role, Satisfaction, Ticket
from tickets.privacy import AccessLog
from tickets.service import TicketService
from tickets.stats import StatsService

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SESSION_COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class WebSettings:
    max_body_bytes: int = 64 * 1024
    cookie_secure: bool = False
    public_url: str = "http://127.0.0.1:8080"
    page_size_max: int = 200
    assets_dir: Path | None = None  # npm packages served under /static/vendor/
    trusted_proxies: tuple[IPNetwork, ...] = ()  # whose X-Forwarded-For is believed
    form_action: tuple[str, ...] = ()  # other origins forms may lead to (the SSO provider's)
    body_timeout_s: float = 10.0  # a request body must arrive within this (else 408)


@dataclass(frozen=True, slots=True)
class SearchServices:
    orders: OrderSearch
    kb: KnowledgeBase
    groups: GroupService
    suggest: Suggester
    hotspots: Hotspots
    similar: SimilarRequests


@dataclass(frozen=True, slots=True)
class Features:
    """Settings of the statistics pages, the public column and Open311."""

    stats: StatsSettings
    public: PublicSettings
    open311: Open311Settings
    # first-level categories the centre routes on (Open311 service attribute values)
    categories: tuple[str, ...] = ()


class EventSource(Protocol):
    """The event bus as consoles read it (hotline/bus.py): topics "tickets" and "cti"."""

    def subscribe(self, maxsize: int = 1000, topic: str = "tickets") -> asyncio.Queue[Any]: ...
    def unsubscribe(self, q: asyncio.Queue[Any]) -> None: ...


@dataclass(slots=True)
class Services:
    tickets: TicketService
    accounts: Accounts
    citizens: CitizenGuard
    directory: Directory
    presenter: Presenter
    web: WebSettings
    stats: StatsService
    call_stats: CallStatsService
    cases: CaseService
    features: Features
    privacy: AccessLog  # audited reads of personal data (tickets/privacy.py)
    calls: CallCenter | None = None  # None when [telephony] is off or runs in another process
    telephony: bool = False  # [telephony] enabled: this process or another runs the call centre
    sso: SingleSignOn | None = None  # None when [sso] is off
    sms: SmsService | None = None
    events: EventSource | None = None  # pushes to consoles (the softphone's CTI events)
    search: SearchServices | None = None  # order search, knowledge base, groups, hot spots
    assist: Any = None  # agent_ui.assist.Assistant: the order form's live suggestions
    files: Any = None  # agent_ui.uploads.FileStore: attachments
    presence: Presence | None = None  # who is on duty: open consoles, signed-in agents
    max_files: int = 10  # per order
    max_files_per_request: int = 3  # per citizen submission


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


class MalformedJson(DomainError):
    code = "malformed_json"


class UnsupportedMediaType(DomainError):
    code = "unsupported_media_type"


class UnsupportedCharset(UnsupportedMediaType):
    code = "unsupported_charset"


class BodyTimeout(DomainError):
    """The request body did not arrive in time (HTTP 408; the connection is closed)."""

    code = "request_timeout"


class CsrfFailed(DomainError):
    code = "csrf_failed"


class RequestValidation(DomainError):
    code = "validation_error"


_ERROR_CODES = {
    "extra_forbidden": ("unknown_field", "不允许的字段"),
    "missing": ("missing_field", "缺少必填字段"),
}


def validation_error(exc: ValidationError) -> RequestValidation:
    fields = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        code, zh = _ERROR_CODES.get(err["type"], ("invalid_field", "字段值无效"))
        fields.append({"field": loc, "code": code, "message": f"{zh}: {loc}", "detail": err["msg"]})
    first = fields[0]
    out = RequestValidation(str(first["message"]), field=first["field"], fields=fields)
    out.code = str(first["code"]) if len(fields) == 1 else "validation_error"
    return out


# C0 controls but tab, line feed and carriage return; DEL; lone surrogates (which JSON's \u
# escapes can carry): PostgreSQL refuses NUL in text and SQLite keeps it, so refuse them all
# at the edge, the same for both stores
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
MAX_JSON_DEPTH = 32


def check_text(value: str, field: str) -> str:
    if CONTROL.search(value):
        raise InvalidInput("内容含有不允许的控制字符", field=field)
    return value


def strip_controls(value: str) -> str:
    """For channels that must not lose a message (SMS): drop the characters instead."""
    return CONTROL.sub("", value)


def _check_json(value: Any, path: str = "body", depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise MalformedJson("JSON 嵌套层数过多", max_depth=MAX_JSON_DEPTH)
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, path)
            _check_json(v, f"{path}.{k}" if path != "body" else k, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_json(v, f"{path}[{i}]", depth + 1)


async def read_json(request: web.Request, model: type[M]) -> M:
    """Parse and validate a JSON body; every failure is a DomainError with a precise code."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("请求体必须是 application/json", got=request.content_type)
    raw = await request.read()  # aiohttp enforces client_max_size → 413
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedJson(f"JSON 格式错误: {exc}") from None
    except RecursionError:  # nested thousands of levels deep
        raise MalformedJson("JSON 嵌套层数过多", max_depth=MAX_JSON_DEPTH) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise MalformedJson(f"JSON 数值无效: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedJson("JSON 请求体必须是对象")
    _check_json(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


_SESSION = web.RequestKey("session", object)
_UPLOAD_DEFERRED = web.RequestKey("upload_deferred", bool)


def defer_csrf_to_form(request: web.Request) -> None:
    """An upload handler streams its multipart form: it checks the csrf_token field itself."""
    request[_UPLOAD_DEFERRED] = True


async def check_csrf(request: web.Request, token: str | None) -> None:
    session = await current_session(request)
    if (
        session is None
        or not token
        or not hmac.compare_digest(token.encode(), session.csrf_token.encode())
    ):
        raise CsrfFailed("CSRF 校验失败，请刷新页面后重试")


async def current_session(request: web.Request) -> Session | None:
    if _SESSION in request:
        cached = request[_SESSION]
        return cached if isinstance(cached, Session) else None
    token = request.cookies.get(SESSION_COOKIE)
    session = await services(request).accounts.session(token) if token else None
    request[_SESSION] = session
    return session


async def require_staff(request: web.Request, *roles: Role, write: bool = False) -> Actor:
    """The logged-in staff member (checking CSRF on writes), optionally limited to `roles`."""
    session = await current_session(request)
    if session is None:
        raise NotAuthenticated("请先登录")
    if write:
        token = request.headers.get(CSRF_HEADER)
        if token is None and request.content_type == "application/x-www-form-urlencoded":
            token = str((await request.post()).get("csrf_token", ""))
        # multipart uploads are streamed, never read whole here: their handlers check the
        # form's csrf_token field (sent first) with check_csrf before any file is stored
        deferred = request.content_type == "multipart/form-data" and _UPLOAD_DEFERRED in request
        if not deferred and (
            not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode())
        ):
            raise CsrfFailed("CSRF 校验失败，请刷新页面后重试")
    if roles and session.user.role not in roles:
        raise RoleForbidden("当前角色无权访问", role=session.user.role.value)
    return session.user.actor


# -- the citizens' public endpoints, behind their limits ---------------------------------------
_NUMBER = re.compile(r"^\d{14}$")


async def guard_intake(request: web.Request) -> None:
    """Web submissions per client address (429 beyond the limit)."""
    await services(request).citizens.before_intake(client_address(request))


async def citizen_track(
    request: web.Request, number: str, phone: str
) -> tuple[Ticket, Ticket | None]:
    """A citizen's status lookup: limited per address; misses counted per number, and a
    number guessed at too often is paused (the phone is the only secret)."""
    svc = services(request)
    await svc.citizens.before_lookup(client_address(request), number)
    try:
        return await svc.tickets.track_with_main(number, phone)
    except NotFound:
        if _NUMBER.match(number):
            await svc.citizens.missed(number)
        raise


async def citizen_rate(
    request: web.Request,
    number: str,
    phone: str,
    satisfaction: Satisfaction,
    note: str | None,
    resolved: bool | None = None,
) -> Ticket:
    svc = services(request)
    await svc.citizens.before_lookup(client_address(request), number)
    try:
        return await svc.tickets.rate(number, phone, satisfaction, note, resolved)
    except NotFound:
        if _NUMBER.match(number):
            await svc.citizens.missed(number)
        raise


def _trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(request: web.Request) -> str:
    """The client's address: the socket's peer, or, when that peer is a trusted proxy, the
    last address in X-Forwarded-For that no trusted proxy added (the rest can be forged)."""
    remote = request.remote or "unknown"
    proxies = services(request).web.trusted_proxies
    if not proxies or not _trusted(remote, proxies):
        return remote
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # garbage from before the proxy: trust nothing of it
    return remote
