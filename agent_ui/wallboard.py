"""The centre's wallboard: calls waiting and the longest wait, agents by state, today's
15-second answer rate and abandonment, and the orders due today — one JSON read the page
polls, pushed sooner by the live console's call events."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web

from agent_ui.api import _json, route
from agent_ui.context import require_staff, services
from agent_ui.pages_staff import render, staff_context
from tickets.model import SYSTEM, Role, Status, TicketFilter

WATCH = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
AGENT_STATE_LABELS = {
    "available": "示闲",
    "ringing": "振铃",
    "busy": "通话中",
    "wrapup": "话后整理",
    "paused": "示忙",
}


async def wallboard_figures(request: web.Request) -> dict[str, Any]:
    svc = services(request)
    now = svc.tickets.now()
    tz = svc.presenter.tz
    local = now.astimezone(tz)
    start = datetime.combine(local.date(), time(0), tz)
    end = start + timedelta(days=1)
    out: dict[str, Any] = {
        "at": svc.presenter.time(now),
        "orders": {
            "due_today": await svc.tickets.count_due_between(now, end),
            "overdue": await svc.tickets.count_tickets(SYSTEM, TicketFilter(limit=1, overdue=True)),
            "received_today": await svc.tickets.count_created_between(start, end),
            "waiting_review": await svc.tickets.count_tickets(
                SYSTEM, TicketFilter(limit=1, route_state="review", status=Status.NEW)
            ),
        },
        "calls": None,
    }
    if svc.calls is not None:
        snap = svc.calls.snapshot()
        waits = [w["seconds"] for w in snap["waiting"]]
        states = Counter(a["state"] for a in snap["agents"])
        stats = await svc.calls.stats(start, now)
        out["calls"] = {
            "waiting": len(waits),
            "longest_wait_s": max(waits, default=0),
            "in_progress": snap["calls"],
            "agents": {k: states.get(k, 0) for k in AGENT_STATE_LABELS},
            "offered_today": stats.offered,
            "answer_rate_15s": round(stats.answer_rate, 4),
            "connection_rate": round(stats.connection_rate, 4),
            "abandon_rate": round(stats.abandon_rate, 4),
            "average_wait_s": round(stats.average_wait_s, 1),
        }
    return out


@route(
    "GET",
    "/wallboard",
    "大屏：排队、最长等待、坐席状态、今日15秒接通率和放弃率、今日到期工单",
    tag="电话",
)
async def wallboard_json(request: web.Request) -> web.Response:
    await require_staff(request, *WATCH)
    return _json(await wallboard_figures(request))


async def wallboard_page(request: web.Request) -> web.Response:
    await require_staff(request, *WATCH)
    ctx = {
        **await staff_context(request),
        "w": await wallboard_figures(request),
        "state_labels": AGENT_STATE_LABELS,
    }
    return render(request, "staff/wallboard.html", ctx)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/wallboard", wallboard_page)
