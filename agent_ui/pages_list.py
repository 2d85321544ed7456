"""Staff work lists: one queue per job (review, re-dispatch, extensions, inbox …) with counts,
filters kept in the URL, and each row's marks and time left from tickets.timing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_ui.context import require_staff, services
from agent_ui.filters import FILTER_KEYS, SORTS, read_filter, words_through_search
from agent_ui.pages_staff import redirect, render, staff_context
from agent_ui.views import time_left
from routing.directory import Directory
from tickets import timing
from tickets.errors import InvalidInput
from tickets.model import (
    ROUTE_STATE_LABELS,
    Actor,
    AssignmentState,
    Channel,
    Kind,
    Role,
    RouteState,
    Status,
    Ticket,
    TicketFilter,
)

PAGE_SIZE = 50
MAX_PAGE = 10_000  # deeper than anyone pages; beyond it the offset only costs the database
# counting stops here: a tab says "1000+" and a list "10000+" rather than count a million rows
# on every page view (the exact figures are the statistics' job)
TAB_COUNT_LIMIT = 1_000
LIST_COUNT_LIMIT = 10_000
_CENTRE = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})
_DESK = frozenset({Role.DISPATCHER, Role.SUPERVISOR})
_DEPT = frozenset({Role.DEPARTMENT})


@dataclass(frozen=True, slots=True)
class Queue:
    """A named work list: who sees it, what it holds, how it is sorted."""

    key: str
    label: str
    roles: frozenset[Role]
    where: dict[str, Any] = field(default_factory=dict)  # TicketFilter fields
    sort: str = "new"
    hint: str = ""


QUEUES: tuple[Queue, ...] = (
    Queue(
        "review",
        "待人工派单",
        _DESK | {Role.AGENT},
        {"route_state": RouteState.REVIEW.value, "status": Status.NEW},
        hint="分类置信度不足、由派单员确认的新工单（附分类建议）",
    ),
    Queue(
        "redispatch",
        "待重新派单",
        _DESK | {Role.AGENT},
        {"statuses": (Status.RETURNED, Status.REOPENED)},
        "due",
        "承办单位退单，或市民不满意重启的工单",
    ),
    Queue(
        "extension",
        "待审批延期",
        _DESK,
        {"extension_requested": True},
        "due",
        "承办单位申请延期，待审批",
    ),
    Queue("replied", "待审核", _DESK, {"status": Status.REPLIED}, "due", "承办单位已反馈，待审核"),
    Queue(
        "overdue",
        "已超期",
        _CENTRE | _DEPT,
        {"overdue": True},
        "due",
        "签收或办理时限已过的工单",
    ),
    Queue(
        "supervised",
        "督办",
        _CENTRE,
        {
            "supervised": True,
            "statuses": tuple(s for s in Status if s not in (Status.CLOSED, Status.MERGED)),
        },
        "due",
        "列入督办、尚未办结的工单",
    ),
    Queue(
        "inbox",
        "待签收",
        _DEPT,
        {"assignment_states": (AssignmentState.PENDING,)},
        "due",
        "派给本单位、尚未签收的工单（按时限排序）",
    ),
    Queue(
        "doing",
        "办理中",
        _DEPT,
        {"assignment_states": (AssignmentState.ACCEPTED,)},
        "due",
        "本单位已签收、正在办理的工单（按时限排序）",
    ),
    Queue("all", "全部工单", _CENTRE | _DEPT),
)
QUEUE_BY_KEY = {q.key: q for q in QUEUES}


def queues_for(role: Role) -> list[Queue]:
    return [q for q in QUEUES if role in q.roles]


def default_queue(role: Role) -> Queue:
    """Where each role starts its day: dispatchers on the review queue, departments on
    their inbox, everyone else on all orders."""
    key = {Role.DISPATCHER: "review", Role.DEPARTMENT: "inbox"}.get(role, "all")
    return QUEUE_BY_KEY[key]


def build_filter(
    query: Any, queue: Queue, directory: Directory, page: int, tz: ZoneInfo
) -> TicketFilter:
    """The queue's own conditions plus what the person filtered on (all kept in the URL)."""
    base = read_filter(
        query,
        directory,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        default_sort=queue.sort,
        tz=tz,
    )
    # the queue's conditions win over a conflicting filter (a queue is what it says)
    return dataclasses.replace(base, **queue.where)


@dataclass(frozen=True, slots=True)
class Row:
    t: Ticket
    marks: list[tuple[str, str, str]]  # (code, label, tone)
    due: datetime | None
    due_label: str
    due_phase: str
    suggestion: str


def make_row(svc: Any, t: Ticket, now: datetime) -> Row:
    nd = timing.next_deadline(t, now)
    marks = [(m.value, timing.MARK_LABELS[m], timing.MARK_TONES[m]) for m in timing.marks(t, now)]
    return Row(
        t=t,
        marks=marks,
        due=nd.due_at if nd else None,
        due_label=time_left(nd.due_at, now) if nd else "",
        due_phase=nd.phase.value if nd else "",
        suggestion=svc.presenter.suggestion_text(t.suggestion) if timing.in_review_queue(t) else "",
    )


def _page_number(raw: str | None) -> int:
    try:
        page = int(raw or "1")
    except ValueError:
        raise InvalidInput("页码应为正整数", field="page") from None
    if not 1 <= page <= MAX_PAGE:
        raise InvalidInput(f"页码应在 1–{MAX_PAGE} 之间", field="page")
    return page


async def ticket_list(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    query = request.query
    if "view" not in query and not any(query.get(k) for k in FILTER_KEYS):
        return redirect(f"/staff/tickets?view={default_queue(actor.role).key}")
    queue = QUEUE_BY_KEY.get(query.get("view", "all")) or QUEUE_BY_KEY["all"]
    if actor.role not in queue.roles:
        queue = QUEUE_BY_KEY["all"]
    page = _page_number(query.get("page"))
    flt = build_filter(query, queue, svc.directory, page, svc.presenter.tz)
    orders = svc.search.orders if svc.search else None
    flt, words_note = await words_through_search(orders, actor, flt, query.get("region"))
    found, total = await svc.tickets.list_tickets(actor, flt, count_limit=LIST_COUNT_LIMIT + 1)
    counts = await _queue_counts(svc, actor)
    now = svc.tickets.now()
    filters = {k: query[k] for k in FILTER_KEYS if query.get(k)}
    # counted up to the limit: beyond it the total is "at least", and the pager goes on while
    # pages are full (the last page knows the exact number: it counted itself)
    last_page = len(found) < PAGE_SIZE and (bool(found) or page == 1)
    more = total > LIST_COUNT_LIMIT and not last_page
    pages = max(1, -(-total // PAGE_SIZE))
    if more and len(found) == PAGE_SIZE:
        pages = max(pages, page + 1)

    def page_url(n: int) -> str:
        return "/staff/tickets?" + urlencode({"view": queue.key, **filters, "page": n})

    ctx = {
        **await staff_context(request),
        "queue": queue,
        "queues": [(q, counts.get(q.key)) for q in queues_for(actor.role)],
        "rows": [make_row(svc, t, now) for t in found],
        "total": f"{LIST_COUNT_LIMIT:,}+" if more else f"{total:,}",
        "total_known": not more,
        "words_note": words_note,
        "page": page,
        "pages": pages,
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page < pages else None,
        # the list's filters as CSV (agent_ui/api_export.py); a queue's own conditions are not
        # filters, so the link is offered on the whole list only
        "export_url": "/api/v1/exports/tickets?" + urlencode(filters)
        if queue.key == "all"
        else None,
        "filters": filters,
        "statuses": list(Status),
        "channels": list(Channel),
        "kinds": list(Kind),
        "route_states": [(r.value, ROUTE_STATE_LABELS[r]) for r in RouteState],
        "sorts": SORTS,
        "is_department": actor.role is Role.DEPARTMENT,
        "regions": _region_options(svc.directory),
    }
    return render(request, "staff/list.html", ctx)


def _region_options(directory: Directory) -> list[tuple[str, str]]:
    root = directory.root()
    out = [(root.code, root.name)]
    for league in directory.children(root.code):
        out.append((league.code, league.name))
        out += [(c.code, f"{league.name} · {c.name}") for c in directory.children(league.code)]
    return out


async def _queue_counts(svc: Any, actor: Actor) -> dict[str, str]:
    """How many orders each of the role's queues holds (the tabs show them), up to
    TAB_COUNT_LIMIT ("1000+" beyond)."""
    out: dict[str, str] = {}
    for q in queues_for(actor.role):
        if q.key == "all":
            continue
        flt = dataclasses.replace(TicketFilter(limit=1), **q.where)
        n = await svc.tickets.count_tickets(actor, flt, limit=TAB_COUNT_LIMIT + 1)
        out[q.key] = f"{TAB_COUNT_LIMIT}+" if n > TAB_COUNT_LIMIT else str(n)
    return out


async def find_ticket(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    number = request.query.get("number", "").strip()
    ticket = await services(request).tickets.get_by_number(actor, number)
    return redirect(f"/staff/tickets/{ticket.id}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/tickets", ticket_list)
    app.router.add_get("/staff/tickets/find", find_ticket)
