"""Deadline clocks (签收 / 办结 / 回访 时限) derived from an order's state, and firing them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from tickets import store
from tickets.model import (
    SYSTEM,
    AssignmentRole,
    AssignmentState,
    Clock,
    ClockKind,
    ClockState,
    EventType,
    ExtensionState,
    Status,
    Ticket,
    TicketEvent,
    iso,
)

if TYPE_CHECKING:
    from tickets.core import DeadlinePolicy


def wanted_clocks(
    t: Ticket, deadlines: DeadlinePolicy
) -> dict[tuple[ClockKind, int | None], tuple[datetime, datetime]]:
    """The clocks the order should have running now: (kind, assignment) → (start, due)."""
    wanted: dict[tuple[ClockKind, int | None], tuple[datetime, datetime]] = {}
    # the statutory clock runs from receipt, or from the latest 重启 (a new handling period)
    period_start = t.handling_from or t.created_at
    for a in t.assignments:
        if a.state is AssignmentState.PENDING and a.sign_due:
            wanted[(ClockKind.SIGN, a.id)] = (a.created_at, a.sign_due)
        if a.active and a.reply_due:
            wanted[(ClockKind.REPLY, a.id)] = (min(period_start, a.created_at), a.reply_due)
    if t.status in (Status.RETURNED, Status.REOPENED) and t.reply_due:
        # the centre holds the order until it is dispatched again: its time keeps running
        wanted[(ClockKind.REPLY, None)] = (period_start, t.reply_due)
    if t.status in (Status.ANSWERED, Status.REVIEWED) and t.answered_at:
        due = deadlines.revisit_due(t.answered_at)
        wanted[(ClockKind.REVISIT, None)] = (t.answered_at, due)
    return wanted


def reopened_reply_due(t: Ticket, now: datetime, deadlines: DeadlinePolicy) -> datetime:
    """重启 (回访不满意, or a supervisor's reopen) starts a new handling period now (GB/T 33358:
    重新办理); a deadline already granted by an approved extension is never taken back."""
    fresh = deadlines.reply_due(t.kind, t.urgency, now)
    granted = [
        a.extension_until
        for a in t.assignments
        if a.role is AssignmentRole.LEAD
        and a.extension_state is ExtensionState.APPROVED
        and a.extension_until is not None
    ]
    return max([fresh, *granted])


def sync(
    conn: Connection,
    t: Ticket,
    now: datetime,
    deadlines: DeadlinePolicy,
    live: Sequence[Clock] | None = None,
) -> None:
    """Derive the clocks from the order's state: start new ones, stop finished ones, move
    ones whose deadline changed (延期). `live`: the order's running clocks, when the caller
    knows them already (a new order has none); read otherwise."""
    wanted = wanted_clocks(t, deadlines)
    running = store.list_live_clocks(conn, t.id) if live is None else live
    live_by = {(c.kind, c.assignment_id): c for c in running}
    # the order row carries the earliest running deadline (the lists sort and filter on it);
    # it is the minimum over the running clocks, so it changes only when that minimum does
    next_due = min((due for _, due in wanted.values()), default=None)
    if next_due != min((c.due_at for c in running), default=None):
        store.set_next_due(conn, t.id, next_due)
    for key, c in live_by.items():
        if key not in wanted:
            store.update_clock(
                conn,
                c.id,
                {"state": ClockState.STOPPED.value, "next_at": None, "stopped_at": now},
            )
        elif wanted[key][1] != c.due_at:
            start, due = wanted[key]
            warn = deadlines.warn_at(t.urgency, start, due)
            store.update_clock(
                conn,
                c.id,
                {
                    "state": ClockState.RUNNING.value,
                    "due_at": due,
                    "warn_at": warn,
                    "next_at": warn,
                },
            )
    for (kind, assignment_id), (start, due) in wanted.items():
        if (kind, assignment_id) in live_by:
            continue
        warn = deadlines.warn_at(t.urgency, start, due)
        store.insert_clock(
            conn,
            {
                "ticket_id": t.id,
                "assignment_id": assignment_id,
                "clock": kind.value,
                "state": ClockState.RUNNING.value,
                "start_at": start,
                "warn_at": warn,
                "due_at": due,
                "next_at": warn,
            },
        )


def fire(conn: Connection, c: Clock, now: datetime) -> TicketEvent:
    """Move one due clock on: warned at the warning point, overdue at the deadline."""
    t = store.get_ticket(conn, c.ticket_id)
    assert t is not None
    lead = next((a for a in t.assignments if a.id == c.assignment_id), None)
    detail = {
        "clock": c.kind.value,
        "due_at": iso(c.due_at),
        "department": lead.department if lead else None,
    }
    if c.state is ClockState.RUNNING and now < c.due_at:
        store.update_clock(
            conn,
            c.id,
            {"state": ClockState.WARNED.value, "warned_at": now, "next_at": c.due_at},
        )
        action = EventType.DEADLINE_WARNING
    else:
        store.update_clock(
            conn,
            c.id,
            {"state": ClockState.OVERDUE.value, "overdue_at": now, "next_at": None},
        )
        action = EventType.DEADLINE_OVERDUE
        values: dict[str, Any] = {"updated_at": now}
        if c.kind is ClockKind.SIGN:
            values["urge_count"] = t.urge_count + 1  # 催办
        elif c.kind is ClockKind.REPLY:
            values["supervised"] = True  # 督办
        store.bump_ticket(conn, t.id, values)
    return store.insert_event(
        conn,
        ticket_id=t.id,
        at=now,
        actor_role=SYSTEM.role,
        actor_id=None,
        actor_name=SYSTEM.label,
        action=action,
        from_status=t.status,
        to_status=t.status,
        new=detail,
        assignment_id=c.assignment_id,
    )
