"""The one rule for "how is this order doing against its time limits", read from its deadline
clocks: pages, the API, lists and SMS notices all ask here (pure code, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tickets.model import (
    AssignmentState,
    Clock,
    ClockKind,
    ClockState,
    ExtensionState,
    RouteState,
    Status,
    Ticket,
    Urgency,
)


class Phase(StrEnum):
    """Where a running clock stands at a moment."""

    RUNNING = "running"  # under the warning point
    WARNING = "warning"  # 80 % (warn_ratio) of the time used: 即将超时
    OVERDUE = "overdue"  # past the deadline: 已超期


def phase(c: Clock, now: datetime) -> Phase | None:
    """The clock's phase at `now` (None once stopped). The watcher writes the same steps when
    it fires; between two watcher passes this reads them from the times, so a page never
    shows an order as on time that the watcher is about to mark overdue."""
    if c.state is ClockState.STOPPED:
        return None
    if c.state is ClockState.OVERDUE or now >= c.due_at:
        return Phase.OVERDUE
    if c.state is ClockState.WARNED or now >= c.warn_at:
        return Phase.WARNING
    return Phase.RUNNING


class Mark(StrEnum):
    """What a list row or an order's header flags, most pressing first."""

    EMERGENCY = "emergency"  # 特急
    URGENT = "urgent"  # 紧急
    SIGN_OVERDUE = "sign_overdue"  # 超时未签收
    REPLY_OVERDUE = "reply_overdue"  # 已超期
    REVISIT_OVERDUE = "revisit_overdue"  # 回访超期
    SIGN_WARNING = "sign_warning"  # 即将超时 (签收)
    REPLY_WARNING = "reply_warning"  # 即将超时 (办结)
    EXTENSION_PENDING = "extension_pending"  # 待审批延期
    NEEDS_DISPATCH = "needs_dispatch"  # 退单 / 重启: 待重新派单
    TRIAGE_REVIEW = "triage_review"  # 待人工派单 (the triage was not sure)
    SUPERVISED = "supervised"  # 督办
    URGED = "urged"  # 催办


MARK_LABELS: dict[Mark, str] = {
    Mark.EMERGENCY: "特急",
    Mark.URGENT: "紧急",
    Mark.SIGN_OVERDUE: "超时未签收",
    Mark.REPLY_OVERDUE: "已超期",
    Mark.REVISIT_OVERDUE: "回访超期",
    Mark.SIGN_WARNING: "签收即将超时",
    Mark.REPLY_WARNING: "即将超时",
    Mark.EXTENSION_PENDING: "待审批延期",
    Mark.NEEDS_DISPATCH: "待重新派单",
    Mark.TRIAGE_REVIEW: "待人工派单",
    Mark.SUPERVISED: "督办",
    Mark.URGED: "催办",
}
# how a page colours a mark: danger (red), warn (amber), info
MARK_TONES: dict[Mark, str] = {
    Mark.EMERGENCY: "danger",
    Mark.URGENT: "warn",
    Mark.SIGN_OVERDUE: "danger",
    Mark.REPLY_OVERDUE: "danger",
    Mark.REVISIT_OVERDUE: "danger",
    Mark.SIGN_WARNING: "warn",
    Mark.REPLY_WARNING: "warn",
    Mark.EXTENSION_PENDING: "info",
    Mark.NEEDS_DISPATCH: "warn",
    Mark.TRIAGE_REVIEW: "info",
    Mark.SUPERVISED: "warn",
    Mark.URGED: "warn",
}

_OVERDUE = {ClockKind.SIGN: Mark.SIGN_OVERDUE, ClockKind.REPLY: Mark.REPLY_OVERDUE}
_WARNING = {ClockKind.SIGN: Mark.SIGN_WARNING, ClockKind.REPLY: Mark.REPLY_WARNING}

# the order waits for a dispatcher to send it (again)
NEEDS_DISPATCH = frozenset({Status.RETURNED, Status.REOPENED})


def needs_dispatch(t: Ticket) -> bool:
    return t.status in NEEDS_DISPATCH


def in_review_queue(t: Ticket) -> bool:
    """The triage held the order for a dispatcher, and nobody has acted on it yet."""
    return t.route_state == RouteState.REVIEW and t.status is Status.NEW


def extension_pending(t: Ticket) -> bool:
    return any(a.active and a.extension_state is ExtensionState.REQUESTED for a in t.assignments)


def marks(t: Ticket, now: datetime, clocks: Sequence[Clock] | None = None) -> list[Mark]:
    """The order's flags at `now`, from its live clocks (t.clocks unless given)."""
    out: list[Mark] = []
    if t.urgency is Urgency.EMERGENCY:
        out.append(Mark.EMERGENCY)
    elif t.urgency is Urgency.URGENT:
        out.append(Mark.URGENT)
    found: set[Mark] = set()
    for c in t.clocks if clocks is None else clocks:
        p = phase(c, now)
        if p is Phase.OVERDUE:
            found.add(Mark.REVISIT_OVERDUE if c.kind is ClockKind.REVISIT else _OVERDUE[c.kind])
        elif p is Phase.WARNING and c.kind in _WARNING:
            found.add(_WARNING[c.kind])
    # an overdue step hides its own warning
    if Mark.SIGN_OVERDUE in found:
        found.discard(Mark.SIGN_WARNING)
    if Mark.REPLY_OVERDUE in found:
        found.discard(Mark.REPLY_WARNING)
    if extension_pending(t):
        found.add(Mark.EXTENSION_PENDING)
    if needs_dispatch(t):
        found.add(Mark.NEEDS_DISPATCH)
    if in_review_queue(t):
        found.add(Mark.TRIAGE_REVIEW)
    if t.supervised and t.status not in (Status.CLOSED, Status.MERGED):
        found.add(Mark.SUPERVISED)
    out += [m for m in Mark if m in found]
    return out


def overdue(t: Ticket, now: datetime, clocks: Sequence[Clock] | None = None) -> bool:
    """A running time limit of the order has passed (the one rule for "超期")."""
    live = t.clocks if clocks is None else clocks
    return any(phase(c, now) is Phase.OVERDUE for c in live)


@dataclass(frozen=True, slots=True)
class Deadline:
    """The time limit that matters most now, for a countdown."""

    kind: ClockKind
    due_at: datetime
    phase: Phase
    department_clock: bool  # False: the centre holds the order (returned / reopened)


def next_deadline(
    t: Ticket, now: datetime, clocks: Sequence[Clock] | None = None
) -> Deadline | None:
    """The earliest live time limit: sign-for first while unsigned, else the reply, else 回访."""
    live = [c for c in (t.clocks if clocks is None else clocks) if phase(c, now) is not None]
    if not live:
        return None
    pending = {a.id for a in t.assignments if a.state is AssignmentState.PENDING}
    order = {ClockKind.SIGN: 0, ClockKind.REPLY: 1, ClockKind.REVISIT: 2}
    live.sort(key=lambda c: (order[c.kind], c.due_at))
    c = next(
        (c for c in live if c.kind is not ClockKind.SIGN or c.assignment_id in pending), live[0]
    )
    p = phase(c, now)
    assert p is not None
    return Deadline(c.kind, c.due_at, p, c.assignment_id is not None)
