"""Who may see an order and what of it: the one access choke point, masking, input rules."""

from __future__ import annotations

import dataclasses
import re

from tickets.errors import DepartmentForbidden, InvalidInput, RoleForbidden
from tickets.model import Actor, Assignment, Caller, Role, Ticket

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_SEPARATORS = re.compile(r"[\s\-()（）]")

READ_ROLES = frozenset(
    {Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN, Role.SYSTEM}
)


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


def department_assignments(actor: Actor, ticket: Ticket) -> list[Assignment]:
    return [a for a in ticket.assignments if a.department == actor.department]


def access_ticket(actor: Actor, ticket: Ticket) -> Ticket:
    """Raise unless `actor` may read `ticket`; return it as that actor may see it."""
    if actor.role in READ_ROLES:
        return ticket
    if actor.role is Role.DEPARTMENT:
        if not actor.department or not department_assignments(actor, ticket):
            raise DepartmentForbidden("该工单未派给本单位，无权查看或办理", ticket=ticket.number)
        return mask_for_department(ticket)
    raise RoleForbidden("无权查看工单", role=actor.role.value)


def mask_for_department(ticket: Ticket) -> Ticket:
    """Departments never see a confidential caller's identity (工单保密)."""
    if not ticket.caller.confidential:
        return ticket
    return dataclasses.replace(ticket, caller=Caller(name=None, phone=None, confidential=True))


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
