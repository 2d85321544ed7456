"""The centre's wallboard: calls waiting and the longest wait, agents by state, today's
15-second answer rate and abandonment, and the orders due today — one JSON read the page
polls, pushed sooner by the live console's call events. For supervisors, managers and admins
also who is on duty (在线人员): open consoles and signed-in agents from every process
(telephony/presence.py), each gone within the presence TTL of its process's death."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, time, timedelta
from typing import Any

from aiohttp import web

from agent_ui.api import _json, route
from agent_ui.context import require_staff, services
from agent_ui.pages_staff import render, staff_context
from telephony.presence import centre_of, group
from tickets.model import LABELS, SYSTEM, Role, Status, TicketFilter

WATCH = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
OVERSEE = (Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)  # who may see who is on duty
PAGE_LABELS = {
    "/staff": "工作台",
    "/staff/tickets": "工单列表",
    "/staff/tickets/new": "新建工单",
    "/staff/softphone": "软电话",
    "/staff/wallboard": "话务大屏",
    "/staff/search": "工单搜索",
    "/staff/kb": "知识库",
    "/staff/stats": "统计分析",
    "/staff/cases": "多人同诉",
    "/staff/sms": "短信发件箱",
}
AGENT_STATE_LABELS = {
    "available": "示闲",
    "ringing": "振铃",
    "talking": "通话中",
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
    if svc.calls is not None and svc.calls.active:  # the call centre runs here
        snap = svc.calls.snapshot()
        waits = [float(w["seconds"]) for w in snap["waiting"]]
        queue: dict[str, Any] | None = {
            "waiting": len(waits),
            "longest_wait_s": max(waits, default=0.0),
            "in_progress": snap["calls"],
        }
        states = Counter(a["state"] for a in snap["agents"])
        source = "local"
    elif svc.telephony and svc.presence is not None:  # another process runs it (or took over)
        entries = (await svc.presence.online()).entries
        centre = centre_of(entries)
        queue = None
        if centre is not None:
            oldest = _utc(centre.oldest) if centre.oldest else None
            queue = {
                "waiting": centre.waiting,
                "longest_wait_s": max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
                "in_progress": centre.calls,
            }
        states = Counter(e.state for e in entries if e.kind == "agent")
        source = "shared"
    else:
        return out
    stats = await svc.call_stats.totals(start, now)
    out["calls"] = {
        "source": source,  # local: this process's centre; shared: its presence entries
        "reporting": queue is not None,  # False: no active centre has reported within the TTL
        "waiting": queue["waiting"] if queue else None,
        "longest_wait_s": round(queue["longest_wait_s"], 1) if queue else None,
        "in_progress": queue["in_progress"] if queue else None,
        "agents": {k: states.get(k, 0) for k in AGENT_STATE_LABELS},
        "offered_today": stats.offered,
        "answer_rate_15s": round(stats.answer_rate, 4),
        "connection_rate": round(stats.connection_rate, 4),
        "abandon_rate": round(stats.abandon_rate, 4),
        "average_wait_s": round(stats.average_wait_s, 1),
    }
    return out


def page_label(path: str) -> str:
    if path in PAGE_LABELS:
        return PAGE_LABELS[path]
    if path.startswith("/staff/tickets/"):
        return "工单详情"
    if path.startswith("/staff/kb/"):
        return "知识库"
    return path


def _utc(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


async def presence_figures(request: web.Request) -> dict[str, Any]:
    """Who is on duty, one row per person: their open consoles (pages) and call-centre state."""
    svc = services(request)
    assert svc.presence is not None
    snap = await svc.presence.online()
    show = svc.presenter.time
    people = group(snap.entries)
    # agents signed in on a desk phone only: their names from their accounts, in one query
    accounts = await svc.accounts.users_by_names(u for u, p in people.items() if not p["consoles"])
    rows = []
    for username, p in sorted(people.items()):
        consoles, agent = p["consoles"], p["agent"]
        if consoles:
            first = min(consoles, key=lambda c: c.since)
            name, role, dept = first.name, first.role, first.department
        else:
            user = accounts.get(username)
            name = user.display_name if user else ""
            role = user.role.value if user else ""
            dept = user.department if user else None
        seen = max((e.seen for e in [*consoles, *([agent] if agent else [])]), default="")
        pages = sorted({c.page for c in consoles if c.page})
        rows.append(
            {
                "username": username,
                "name": name or username,
                "role": role,
                "role_label": LABELS.get(role, role),
                "department": dept,
                "department_name": svc.directory.department_name(dept) if dept else None,
                "consoles": len(consoles),
                "pages": [{"path": x, "label": page_label(x)} for x in pages],
                "online_since": show(_utc(first.since)) if consoles else None,
                "seen": show(_utc(seen)) if seen else None,
                "agent": None
                if agent is None
                else {
                    "state": agent.state,
                    "state_label": AGENT_STATE_LABELS.get(agent.state, agent.state),
                    "reason": agent.reason,
                    "since": show(_utc(agent.since)),
                },
            }
        )
    return {
        "at": show(svc.tickets.now()),
        "ttl_s": svc.presence.ttl_s,
        "shared": snap.shared,
        "count": len(rows),
        "people": rows,
    }


@route(
    "GET",
    "/presence",
    "在线人员：打开工作台的人员（所在页面）和已签入话务的坐席（状态）；进程退出后 TTL 内消失",
    tag="电话",
)
async def presence_json(request: web.Request) -> web.Response:
    await require_staff(request, *OVERSEE)
    return _json(await presence_figures(request))


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
    user = await require_staff(request, *WATCH)
    ctx = {
        **await staff_context(request),
        "w": await wallboard_figures(request),
        "state_labels": AGENT_STATE_LABELS,
        "on_duty": await presence_figures(request) if user.role in OVERSEE else None,
    }
    return render(request, "staff/wallboard.html", ctx)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/wallboard", wallboard_page)
