"""Who may see an order and what of it: the one access choke point, masking, input rules."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

from tickets.errors import InvalidInput, NotFound, RoleForbidden
from tickets.model import Actor, Assignment, AssignmentState, Caller, Role, Ticket, TicketEvent

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_SEPARATORS = re.compile(r"[\s\-()（）]")

# a department whose task in the current round is in one of these still follows the order
_STILL_IN = frozenset({AssignmentState.REPLIED, AssignmentState.FORWARDED})
READ_ROLES = frozenset(
    {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN, Role.SYSTEM}
)
# Roles whose work needs callers' numbers: the desk takes calls and calls back, departments
# contact the citizens whose orders they handle (never a confidential caller). Managers read
# statistics and admins run accounts: they see numbers masked, in lists, pages, the API and
# exports alike (mask_for), and may reveal one with a reason, which is audited.
PHONE_ROLES = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.DEPARTMENT})
# who may reveal a masked caller (显示号码, audited with a reason): the centre; departments
# never see a confidential caller and see the others in full
REVEAL_ROLES = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})


def normalize_phone(raw: str) -> str:
    """Canonical digits of a mainland mobile or landline number, or InvalidInput."""
    s = _SEPARATORS.sub("", raw.strip())
    if s.startswith("+86"):
        s = s[3:]
    elif s.startswith("0086"):
        s = s[4:]
    elif s.startswith("86") and len(s) == 13:
        s = s[2:]
    if _MOBILE.match(s) or _LANDLINE.match(s):
        return s
    raise InvalidInput("电话号码格式不正确（手机号11位，固话需带区号）", field="phone")


def mask_phone(phone: str | None) -> str | None:
    """138****5678 for logs and partial display."""
    if not phone:
        return phone
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_name(name: str | None) -> str | None:
    """张** for a masked caller: the family name, the rest starred."""
    if not name:
        return name
    return name[0] + "*" * min(len(name) - 1, 3) if len(name) > 1 else "*"


def mask_for(role: Role, phone: str | None) -> str | None:
    """A caller's phone as `role` may see it in lists, pages, the API and exports (CSV, XLSX):
    in full for the roles whose work needs it (PHONE_ROLES), masked for the others. The one
    rule every place that shows a number uses."""
    return phone if role in PHONE_ROLES else mask_phone(phone)


def caller_view(actor: Actor, ticket: Ticket) -> Ticket:
    """The order with its caller as `actor` sees it by default: a confidential caller masked
    for everyone (the centre may reveal it with a reason, audited; departments never see it:
    access_ticket already removed it), other callers' numbers masked for roles outside
    PHONE_ROLES. Call it on what is shown, never on what the platform itself uses (a
    call-back dials the real number)."""
    c = ticket.caller
    if c.masked:
        return ticket
    if c.confidential:
        shown = Caller(mask_name(c.name), mask_phone(c.phone), True, masked=True)
    elif c.phone and actor.role not in PHONE_ROLES:
        shown = Caller(c.name, mask_for(actor.role, c.phone), False, masked=True)
    else:
        return ticket
    return dataclasses.replace(ticket, caller=shown)


def department_assignments(actor: Actor, ticket: Ticket) -> list[Assignment]:
    return [a for a in ticket.assignments if a.department == actor.department]


def access_ticket(actor: Actor, ticket: Ticket) -> Ticket:
    """Raise unless `actor` may read `ticket`; return it as that actor may see it.

    A department sees the orders it was given: in full (bar a confidential caller) while it
    holds a task on the order or answered in its current round; once its part is over (it
    returned the order, or the order went to others), only its own part, as things stood when
    that part ended — never later departments' work or the final answer. An order it never
    had reads exactly like an order that does not exist (404), so ids cannot be probed."""
    if actor.role in READ_ROLES:
        return ticket
    if actor.role is Role.DEPARTMENT:
        if not actor.department or not department_assignments(actor, ticket):
            raise NotFound("工单不存在")
        seen = mask_for_department(ticket)
        cutoff = involvement_end(actor.department, ticket)
        return seen if cutoff is None else as_of(seen, actor.department, cutoff)
    raise RoleForbidden("无权查看工单", role=actor.role.value)


def _round_start(t: Ticket) -> datetime | None:
    """When the current dispatch round began (the latest 派单; 下派 stays in its round)."""
    starts = [a.created_at for a in t.assignments if a.forwarded_from is None]
    return max(starts) if starts else None


def involvement_end(department: str, t: Ticket) -> datetime | None:
    """None while `department` is part of the order now; else when its part ended."""
    mine = [a for a in t.assignments if a.department == department]
    if any(a.active for a in mine):
        return None
    start = _round_start(t)
    current = [a for a in mine if start is not None and a.created_at >= start]
    if any(a.state in _STILL_IN for a in current):
        return None  # it answered (or passed the order down) in this round: it follows it
    ends = []
    for a in mine:
        if a.ended_at is not None:
            ends.append(a.ended_at)
            continue
        # a reply from an earlier round: its part ended when the order was sent out again
        later = [b.created_at for b in t.assignments if b.created_at > a.created_at]
        fallback = [x for x in (a.replied_at, a.signed_at, a.created_at) if x is not None]
        ends.append(min(later) if later else max(fallback))
    return max(ends)


def as_of(t: Ticket, department: str, cutoff: datetime) -> Ticket:
    """What a past assignee may read: the request, its own tasks, and others' tasks as they
    stood at `cutoff`; no answer or rating that came later."""
    kept = []
    for a in t.assignments:
        if a.department == department:
            kept.append(a)
        elif a.created_at <= cutoff:
            replied = a.replied_at is not None and a.replied_at <= cutoff
            kept.append(a if replied else dataclasses.replace(a, reply=None, replied_at=None))
    answered = t.answered_at is not None and t.answered_at <= cutoff
    return dataclasses.replace(
        t,
        assignments=tuple(kept),
        answer=t.answer if answered else None,
        answered_at=t.answered_at if answered else None,
        satisfaction=t.satisfaction if answered else None,
        satisfaction_note=t.satisfaction_note if answered else None,
        clocks=tuple(
            c
            for c in t.clocks
            if c.assignment_id in {a.id for a in kept if a.department == department}
        ),
    )


def visible_events(actor: Actor, t: Ticket, events: list[TicketEvent]) -> list[TicketEvent]:
    """The audit events `actor` may read: a past assignee's end at its part's end."""
    if actor.role is not Role.DEPARTMENT or not actor.department:
        return events
    cutoff = involvement_end(actor.department, t)
    return events if cutoff is None else [e for e in events if e.at <= cutoff]


def mask_for_department(ticket: Ticket) -> Ticket:
    """Departments never see a confidential caller's identity (工单保密)."""
    if not ticket.caller.confidential:
        return ticket
    hidden = Caller(name=None, phone=None, confidential=True, masked=True)
    return dataclasses.replace(ticket, caller=hidden)


def time_in_range(
    value: datetime, now: datetime, *, past: timedelta, future: timedelta, field: str, label: str
) -> datetime:
    """A time the caller gave, within [now - past, now + future], as UTC (InvalidInput else):
    a far date would overflow local-time arithmetic and working-day walks."""
    if value.tzinfo is None:
        raise InvalidInput(f"{label}须带时区", field=field)
    try:
        utc = value.astimezone(UTC)
        lo, hi = now - past, now + future
    except OverflowError:
        raise InvalidInput(f"{label}超出允许范围", field=field) from None
    if not lo <= utc <= hi:
        raise InvalidInput(
            f"{label}须在 {lo.date().isoformat()} 至 {hi.date().isoformat()} 之间", field=field
        )
    return utc


def require_text(value: str | None, field: str, label: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{label}不能为空", field=field)
    if len(text) > limit:
        raise InvalidInput(f"{label}不能超过{limit}字", field=field, limit=limit)
    return text


def optional_text(value: str | None, field: str, label: str, limit: int) -> str | None:
    if value is None or not value.strip():
        return None
    return require_text(value, field, label, limit)
