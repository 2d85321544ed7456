"""JSON API of order search, suggestions, 多人同诉 groups and hot spots (thin handlers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from agent_ui import schemas as s
from agent_ui.api import _choice_query, _enum_query, _int_query, _json, path_id, read_json, route
from agent_ui.context import SearchServices, require_staff, services
from kb.model import Article
from routing.order_search import OrderQuery
from tickets.access import caller_view, normalize_phone
from tickets.errors import InvalidInput, Unavailable
from tickets.groups import REASON_LABELS, GroupView
from tickets.model import Channel, Kind, Role, Status

CENTRE = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN)


def search_services(request: web.Request) -> SearchServices:
    svc = services(request).search
    if svc is None:
        raise Unavailable("检索服务未启用")
    return svc


def _time_query(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"参数 {name} 须为 ISO 8601 时间", field=name) from None
    if value.tzinfo is None:
        raise InvalidInput(f"参数 {name} 须带时区（如 +08:00）", field=name)
    return value


def order_query(request: web.Request) -> OrderQuery:
    q = request.query
    text = q.get("q", "").strip()
    if len(text) > 2000:
        raise InvalidInput("检索词过长（上限 2000 字）", field="q")
    answered = _choice_query(request, "answered", ("true", "false"))
    return OrderQuery(
        text=text,
        status=_enum_query(request, "status", Status),
        department=q.get("department") or None,
        region=q.get("region") or None,
        kind=_enum_query(request, "kind", Kind),
        category=q.get("category") or None,
        channel=_enum_query(request, "channel", Channel),
        since=_time_query(request, "since"),
        until=_time_query(request, "until"),
        phone=normalize_phone(q["phone"]) if q.get("phone") else None,
        answered=None if answered is None else answered == "true",
        limit=_int_query(request, "limit", 20, 1, 100),
        offset=_int_query(request, "offset", 0, 0, 1000),
    )


@route(
    "GET",
    "/search/tickets",
    "检索工单（q 全文；status department region kind category channel since until phone "
    "answered 筛选；承办单位只能检索本单位工单，保密来电人信息脱敏）",
    tag="检索",
)
async def search_tickets(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    hits = await search_services(request).orders.find(actor, order_query(request))
    return _json(
        {
            "total": hits.total,
            "total_capped": hits.total_capped,
            "took_ms": round(hits.took_ms, 1),
            "items": [
                {**svc.presenter.ticket(caller_view(actor, t)), "score": round(sc, 4)}
                for t, sc in hits.tickets
            ],
        }
    )


@route("GET", "/search/status", "检索服务状态（正常 / 降级）及待索引任务数", tag="检索")
async def search_status(request: web.Request) -> web.Response:
    await require_staff(request)
    return _json(await search_services(request).orders.status())


def article_brief(a: Article, score: float | None = None) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind.value,
        "title": a.live_title or a.title,
        "code": a.code,
        "language": a.language,
        "department": a.department,
        "excerpt": a.text()[:200],
        "fields": a.live_fields,
        "score": round(score, 4) if score is not None else None,
    }


def _suggestions_json(request: web.Request, sug: Any) -> dict[str, Any]:
    p = services(request).presenter
    return {
        "degraded": sug.degraded,
        "articles": [article_brief(a, sc) for a, sc in sug.articles],
        "orders": [
            {
                "id": t.id,
                "number": t.number,
                "title": t.title,
                "content": t.content[:300],
                "answer": t.answer,
                "answered_at": p.time(t.answered_at),
                "status_label": p.ticket(t)["status_label"],
                "score": round(sc, 4),
            }
            for t, sc in sug.orders
        ],
    }


class SuggestBody(s.Strict):
    text: Annotated[str, Field(min_length=1, max_length=10_000)]


@route(
    "POST",
    "/suggestions",
    "按诉求内容推荐知识（办事指南、常见问题、答复库）和相似的已答复工单",
    body=SuggestBody,
    tag="检索",
)
async def suggest_text(request: web.Request) -> web.Response:
    actor = await require_staff(request, write=True)
    body = await read_json(request, SuggestBody)
    sug = await search_services(request).suggest.for_text(actor, body.text)
    return _json(_suggestions_json(request, sug))


def _ticket_id(request: web.Request) -> int:
    return path_id(request)


@route("GET", "/tickets/{id}/suggestions", "工单的知识推荐和相似已答复工单", tag="检索")
async def suggest_ticket(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    ticket = await services(request).tickets.get(actor, _ticket_id(request))
    sug = await search_services(request).suggest.for_ticket(actor, ticket)
    return _json(_suggestions_json(request, sug))


# -- 多人同诉 and merge candidates -----------------------------------------------------------
def group_json(view: GroupView | None, *, full: bool) -> dict[str, Any] | None:
    if view is None:
        return None
    return {
        "main_id": view.main_id,
        "main_number": view.main_number,
        "orders": view.orders,
        "callers": view.callers,
        "members": [
            {
                "id": m.id,
                "number": m.number,
                "status": m.status.value,
                "reason": m.reason,
                "reason_label": REASON_LABELS.get(m.reason, m.reason),
                "score": m.score,
            }
            for m in view.members
        ]
        if full
        else [],
    }


@route("GET", "/tickets/{id}/similar", "相似工单（合并候选）及多人同诉组", tag="多人同诉")
async def similar(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    ticket = await svc.tickets.get(actor, _ticket_id(request))  # access check
    groups = search_services(request).groups
    view = await groups.view(ticket.id)
    centre = actor.role is not Role.DEPARTMENT
    candidates = await groups.candidates(actor, ticket.id) if centre else []
    return _json(
        {
            "group": group_json(view, full=centre),
            "candidates": [
                {
                    "id": c.other_id,
                    "number": c.number,
                    "status": c.status.value,
                    "reason": c.reason,
                    "reason_label": REASON_LABELS.get(c.reason, c.reason),
                    "score": c.score,
                    "state": c.state,
                    "created_at": svc.presenter.time(c.created_at),
                }
                for c in candidates
            ],
        }
    )


class GroupBody(s.Strict):
    main: Annotated[str, Field(min_length=1, max_length=20, description="主工单编号")]


class UngroupBody(s.Strict):
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


@route(
    "POST",
    "/tickets/{id}/group",
    "归入多人同诉组（main 为主工单编号）",
    body=GroupBody,
    tag="多人同诉",
)
async def group(request: web.Request) -> web.Response:
    actor = await require_staff(request, *CENTRE, write=True)
    body = await read_json(request, GroupBody)
    view = await search_services(request).groups.join(actor, _ticket_id(request), body.main)
    return _json({"group": group_json(view, full=True)})


@route(
    "POST", "/tickets/{id}/ungroup", "移出多人同诉组（须写理由）", body=UngroupBody, tag="多人同诉"
)
async def ungroup(request: web.Request) -> web.Response:
    actor = await require_staff(request, *CENTRE, write=True)
    body = await read_json(request, UngroupBody)
    await search_services(request).groups.leave(actor, _ticket_id(request), body.reason)
    return _json({"ok": True})


@route(
    "POST", "/tickets/{id}/similar/{other}/dismiss", "排除一条相似工单（不是重复）", tag="多人同诉"
)
async def dismiss(request: web.Request) -> web.Response:
    actor = await require_staff(request, *CENTRE, write=True)
    other = path_id(request, "other")
    await search_services(request).groups.dismiss(actor, _ticket_id(request), other)
    return _json({"ok": True})


# -- hot spots ----------------------------------------------------------------------------------
@route(
    "GET",
    "/hotspots",
    "热点：按话题 × 盟市聚类的工单（window_hours 滑动窗口，at 截止时间，spikes=true 只看突增）",
    tag="统计",
)
async def hotspots(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN, Role.DISPATCHER)
    window = request.query.get("window_hours")
    try:
        hours = float(window) if window else None
    except ValueError:
        raise InvalidInput("window_hours 须为数字", field="window_hours") from None
    if hours is not None and not 0 < hours <= 24 * 30:
        raise InvalidInput("window_hours 须在 0–720 之间", field="window_hours")
    spikes = _choice_query(request, "spikes", ("true", "false")) == "true"
    items = await search_services(request).hotspots.current(
        _time_query(request, "at"), hours, spikes_only=spikes
    )
    return _json({"items": items[: _int_query(request, "limit", 50, 1, 500)]})
