"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2), JSON format, so that third-party
citizen apps can file and track requests as they do with FixMyStreet.

Services are the request kinds (咨询, 求助, 投诉 …); the first-level category is the service's one
attribute. A POST goes through the same intake as the web portal (a web-channel order, triaged,
acknowledged). Reading is public but privacy first: orders of confidential callers and 举报 are
never listed, and an order's text is shown only as the approved text of a published 曝光纠错
case; addresses and coordinates are never returned."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from agent_ui.api import _dumps
from agent_ui.context import services
from tickets.access import normalize_phone
from tickets.cases import PublicCase
from tickets.errors import DomainError
from tickets.indicators import OPEN_STATUSES
from tickets.model import LABELS, Caller, Channel, Kind, NewTicket, Ticket

PREFIX = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
SERVICE_DESCRIPTIONS = {
    Kind.CONSULT: "政策、办事流程等咨询",
    Kind.HELP: "生活中遇到困难请求帮助",
    Kind.COMPLAINT: "对政府部门、公共服务或企业的投诉",
    Kind.REPORT: "举报违法违规行为（举报不对外公开）",
    Kind.SUGGESTION: "对政府工作的意见和建议",
    Kind.PRAISE: "表扬政府部门或工作人员",
    Kind.OTHER: "其他诉求",
}
MAX_DAYS = 90  # the spec's default window for requests.json


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _errors(status: int, description: str) -> web.Response:
    """The spec's error format: a list of {code, description}."""
    return _json([{"code": status, "description": description}], status)


def _check_jurisdiction(request: web.Request, params: MultiMapping[Any]) -> None:
    wanted = params.get("jurisdiction_id")
    if wanted and wanted != services(request).features.open311.jurisdiction_id:
        raise Open311Error(404, "jurisdiction_id not found")


def _enabled(request: web.Request) -> None:
    if not services(request).features.open311.enabled:
        raise Open311Error(404, "Open311 is not enabled")


def _time(value: datetime | None, request: web.Request) -> str | None:
    return services(request).presenter.time(value)


# -- discovery and services ---------------------------------------------------------------------
async def discovery(request: web.Request) -> web.Response:
    _enabled(request)
    svc = services(request)
    base = svc.web.public_url.rstrip("/")
    return _json(
        {
            "changeset": "2026-12-01T00:00:00+08:00",
            "contact": "12345 政务服务便民热线",
            "key_service": "向热线中心申请 API key（配置 [open311] api_keys）",
            "endpoints": [
                {
                    "specification": SPEC,
                    "url": base + PREFIX,
                    "changeset": "2026-12-01T00:00:00+08:00",
                    "type": "production",
                    "formats": ["application/json"],
                }
            ],
        }
    )


def _service(kind: Kind) -> dict[str, Any]:
    return {
        "service_code": kind.value,
        "service_name": LABELS[kind.value],
        "description": SERVICE_DESCRIPTIONS[kind],
        "metadata": True,
        "type": "realtime",
        "keywords": LABELS[kind.value],
        "group": "诉求类型",
    }


async def service_list(request: web.Request) -> web.Response:
    _enabled(request)
    _check_jurisdiction(request, request.query)
    return _json([_service(k) for k in Kind])


async def service_definition(request: web.Request) -> web.Response:
    _enabled(request)
    _check_jurisdiction(request, request.query)
    kind = _kind(request.match_info["code"])
    categories = services(request).features.categories
    return _json(
        {
            "service_code": kind.value,
            "attributes": [
                {
                    "variable": True,
                    "code": "category",
                    "datatype": "singlevaluelist",
                    "required": False,
                    "datatype_description": "诉求所属的一级分类；不填由系统分类",
                    "order": 1,
                    "description": "一级分类",
                    "values": [{"key": c, "name": c} for c in categories],
                }
            ],
        }
    )


def _kind(code: str) -> Kind:
    try:
        return Kind(code)
    except ValueError:
        raise Open311Error(404, f"service_code {code} not found") from None


# -- filing a request -----------------------------------------------------------------------
def _api_client(request: web.Request, key: str) -> str:
    """The client a key belongs to (constant-time comparison), or 403."""
    keys = services(request).features.open311.api_keys
    found = None
    for name, known in keys.items():
        if key and hmac.compare_digest(key.encode(), known.encode()):
            found = name
    if found is None:
        raise Open311Error(403, "Invalid api_key")
    return found


def _new_ticket(form: MultiMapping[Any], categories: tuple[str, ...]) -> NewTicket:
    kind = _kind(str(form.get("service_code", "")))
    description = str(form.get("description", "")).strip()
    if not description:
        raise Open311Error(400, "description is required")
    lat, long = form.get("lat"), form.get("long")
    address = str(form.get("address_string", "")).strip() or None
    address_id = str(form.get("address_id", "")).strip() or None
    if not ((lat and long) or address or address_id):
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    attachments: list[dict[str, Any]] = []
    if lat and long:
        try:
            latitude, longitude = float(lat), float(long)
        except ValueError:
            raise Open311Error(400, "lat and long must be numbers") from None
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise Open311Error(400, "lat or long out of range")
        attachments.append({"type": "location", "lat": latitude, "long": longitude})
    media = str(form.get("media_url", "")).strip()
    if media:
        attachments.append({"type": "media_url", "url": media[:500]})
    category = str(form.get("attribute[category]", "")).strip()
    if category and category not in categories:
        raise Open311Error(400, f"attribute[category] {category} is not a known category")
    phone = str(form.get("phone", "")).strip()
    name = " ".join(
        x for x in (str(form.get("last_name", "")), str(form.get("first_name", ""))) if x.strip()
    ).strip()
    try:
        caller = Caller(name=name or None, phone=normalize_phone(phone) if phone else None)
    except DomainError as exc:
        raise Open311Error(400, f"phone: {exc.message}") from None
    return NewTicket(
        channel=Channel.WEB,
        content=description,
        caller=caller,
        kind=kind,
        category=(category,) if category else (),
        address=(address or address_id),
        attachments=tuple(attachments),
    )


async def post_request(request: web.Request) -> web.Response:
    _enabled(request)
    form = await request.post()
    _check_jurisdiction(request, form)
    _api_client(request, str(form.get("api_key", "")))
    svc = services(request)
    new = _new_ticket(form, svc.features.categories)
    try:
        ticket = await svc.tickets.submit(new)
    except DomainError as exc:
        raise Open311Error(400, exc.message) from None
    return _json(
        [
            {
                "service_request_id": ticket.number,
                "service_notice": f"您的诉求已受理，工单编号 {ticket.number}，"
                "可凭编号和电话在 12345 网站查询办理进度。",
                "account_id": None,
            }
        ],
        201,
    )


# -- reading requests -----------------------------------------------------------------------
def request_json(request: web.Request, t: Ticket, case: PublicCase | None) -> dict[str, Any]:
    lead = t.lead
    names = services(request).directory
    return {
        "service_request_id": t.number,
        "status": "open" if t.status in OPEN_STATUSES else "closed",
        "status_notes": case.answer if case else None,
        "service_name": LABELS[t.kind.value],
        "service_code": t.kind.value,
        "description": case.question if case else None,
        "agency_responsible": names.department_name(lead.department) if lead else None,
        "service_notice": None,
        "requested_datetime": _time(t.created_at, request),
        "updated_datetime": _time(t.updated_at, request),
        "expected_datetime": _time(t.reply_due, request),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": None,
    }


def _date(params: MultiMapping[Any], name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a W3C date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def list_requests(request: web.Request) -> web.Response:
    _enabled(request)
    q = request.query
    _check_jurisdiction(request, q)
    svc = services(request)
    numbers = [n.strip() for n in q.get("service_request_id", "").split(",") if n.strip()]
    codes = [c.strip() for c in q.get("service_code", "").split(",") if c.strip()]
    kinds = [_kind(c).value for c in codes]
    statuses = {s.strip() for s in q.get("status", "").split(",") if s.strip()}
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status must be open or closed")
    closed = None if len(statuses) != 1 else statuses == {"closed"}
    end = _date(q, "end_date") or datetime.now(UTC)
    start = _date(q, "start_date") or end - timedelta(days=MAX_DAYS)
    if numbers:  # asked by id: no date window (the spec's rule)
        start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=1)
    if end - start > timedelta(days=MAX_DAYS) and not numbers:
        raise Open311Error(400, f"start_date to end_date spans at most {MAX_DAYS} days")
    found = await svc.cases.public_requests(
        since=start,
        until=end,
        numbers=numbers,
        kinds=kinds,
        closed=closed,
        limit=svc.features.open311.max_requests,
    )
    return _json([request_json(request, t, case) for t, case in found])


async def get_request(request: web.Request) -> web.Response:
    _enabled(request)
    _check_jurisdiction(request, request.query)
    number = request.match_info["id"]
    found = await services(request).cases.public_requests(
        since=datetime(2000, 1, 1, tzinfo=UTC),
        until=datetime.now(UTC) + timedelta(days=1),
        numbers=[number],
        limit=1,
    )
    if not found:
        raise Open311Error(404, f"service_request_id {number} not found")
    t, case = found[0]
    return _json([request_json(request, t, case)])


@web.middleware
async def open311_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Errors under /open311 in the spec's format (the app's error middleware does the rest)."""
    if not request.path.startswith("/open311/"):
        return await handler(request)
    try:
        return await handler(request)
    except Open311Error as exc:
        return _errors(exc.status, exc.description)
    except web.HTTPRequestEntityTooLarge:
        return _errors(413, "request body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _errors(exc.status, exc.reason)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/discovery.json", discovery)
    r.add_get(PREFIX + "/services.json", service_list)
    r.add_get(PREFIX + "/services/{code}.json", service_definition)
    r.add_get(PREFIX + "/requests.json", list_requests)
    r.add_post(PREFIX + "/requests.json", post_request)
    r.add_get(PREFIX + r"/requests/{id:\d{14}}.json", get_request)
