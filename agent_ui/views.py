"""Turn work-order dataclasses into JSON-ready dicts, times in local time (Asia/Shanghai)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tickets.model import (
    ACTION_LABELS,
    ASSIGNMENT_STATE_LABELS,
    LABELS,
    STATUS_LABELS,
    Action,
    Assignment,
    Clock,
    Status,
    Ticket,
    TicketEvent,
)

SYSTEM_EVENT_LABELS = {
    "create": "受理",
    "merged_in": "并入重复工单",
    "deadline_warning": "时限预警",
    "deadline_overdue": "超期",
    "triage_review": "待人工派单（分类建议）",
}
CLOCK_LABELS = {"sign": "签收时限", "reply": "办结时限", "revisit": "回访时限"}
CLOCK_STATE_LABELS = {
    "running": "计时中",
    "warned": "已预警",
    "overdue": "已超期",
    "stopped": "已结束",
}


class Names(Protocol):
    def department_name(self, code: str) -> str: ...
    def region_name(self, code: str) -> str: ...


class Presenter:
    def __init__(self, names: Names, tz: ZoneInfo) -> None:
        self.names = names
        self.tz = tz

    def time(self, value: datetime | None) -> str | None:
        return value.astimezone(self.tz).isoformat(timespec="seconds") if value else None

    def local(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(self.tz).strftime(fmt) if value else ""

    def assignment(self, a: Assignment) -> dict[str, Any]:
        return {
            "id": a.id,
            "department": a.department,
            "department_name": self.names.department_name(a.department),
            "role": a.role.value,
            "role_label": LABELS[a.role.value],
            "state": a.state.value,
            "state_label": ASSIGNMENT_STATE_LABELS[a.state],
            "created_at": self.time(a.created_at),
            "sign_due": self.time(a.sign_due),
            "reply_due": self.time(a.reply_due),
            "signed_at": self.time(a.signed_at),
            "replied_at": self.time(a.replied_at),
            "reply": a.reply,
            "return_reason": a.return_reason,
            "extension": {
                "state": a.extension_state.value,
                "until": self.time(a.extension_until),
                "reason": a.extension_reason,
            },
            "forwarded_from": a.forwarded_from,
        }

    def ticket(self, t: Ticket, actions: list[Action] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": t.id,
            "number": t.number,
            "version": t.version,
            "status": t.status.value,
            "status_label": STATUS_LABELS[t.status],
            "channel": t.channel.value,
            "channel_label": LABELS[t.channel.value],
            "kind": t.kind.value,
            "kind_label": LABELS[t.kind.value],
            "urgency": t.urgency.value,
            "urgency_label": LABELS[t.urgency.value],
            "title": t.title,
            "content": t.content,
            "summary": t.summary,
            "category": list(t.category),
            "region": t.region,
            "region_name": self.names.region_name(t.region) if t.region else None,
            "address": t.address,
            "language": t.language,
            "caller": {
                "name": t.caller.name,
                "phone": t.caller.phone,
                "confidential": t.caller.confidential,
            },
            "attachments": list(t.attachments),
            "answer": t.answer,
            "answered_at": self.time(t.answered_at),
            "satisfaction": t.satisfaction.value if t.satisfaction else None,
            "satisfaction_label": LABELS[t.satisfaction.value] if t.satisfaction else None,
            "master_id": t.master_id,
            "supervised": t.supervised,
            "urge_count": t.urge_count,
            "rework_count": t.rework_count,
            "reply_due": self.time(t.reply_due),
            "created_at": self.time(t.created_at),
            "updated_at": self.time(t.updated_at),
            "closed_at": self.time(t.closed_at),
            "route_state": t.route_state,
            "suggestion": t.suggestion,
            "assignments": [self.assignment(a) for a in t.assignments],
        }
        if actions is not None:
            out["actions"] = [{"action": a.value, "label": ACTION_LABELS[a]} for a in actions]
        return out

    def citizen(self, t: Ticket, main: Ticket | None = None) -> dict[str, Any]:
        """What the citizen sees when tracking: no staff names, no internal notes. A merged
        duplicate also shows its main order (`main`): number, status, department and, once
        public, its answer; never the main order's caller."""
        public_answer = self._answer_is_public(t)
        lead = t.lead
        return {
            "number": t.number,
            "status": t.status.value,
            "status_label": STATUS_LABELS[t.status],
            "kind": t.kind.value,
            "kind_label": LABELS[t.kind.value],
            "channel": t.channel.value,
            "created_at": self.time(t.created_at),
            "department_name": self.names.department_name(lead.department) if lead else None,
            "answer": t.answer if public_answer else None,
            "answered_at": self.time(t.answered_at) if public_answer else None,
            "can_rate": t.status in (Status.ANSWERED, Status.REVIEWED),
            "satisfaction": t.satisfaction.value if t.satisfaction else None,
            "satisfaction_label": LABELS[t.satisfaction.value] if t.satisfaction else None,
            "merged_into": self.main_order(main) if main is not None else None,
        }

    def main_order(self, main: Ticket) -> dict[str, Any]:
        """The public part of the order a duplicate was merged into."""
        public_answer = self._answer_is_public(main)
        lead = main.lead
        return {
            "number": main.number,
            "status": main.status.value,
            "status_label": STATUS_LABELS[main.status],
            "department_name": self.names.department_name(lead.department) if lead else None,
            "answer": main.answer if public_answer else None,
            "answered_at": self.time(main.answered_at) if public_answer else None,
        }

    @staticmethod
    def _answer_is_public(t: Ticket) -> bool:
        """An answer is shown to citizens once given directly or approved (审核), not before."""
        return t.status in (Status.ANSWERED, Status.REVIEWED, Status.REVISITED, Status.CLOSED)

    def clock(self, c: Clock) -> dict[str, Any]:
        return {
            "kind": c.kind.value,
            "kind_label": CLOCK_LABELS[c.kind.value],
            "state": c.state.value,
            "state_label": CLOCK_STATE_LABELS[c.state.value],
            "assignment_id": c.assignment_id,
            "start_at": self.time(c.start_at),
            "warn_at": self.time(c.warn_at),
            "due_at": self.time(c.due_at),
        }

    def event(self, e: TicketEvent) -> dict[str, Any]:
        try:
            label = ACTION_LABELS[Action(e.action)]
        except ValueError:
            label = SYSTEM_EVENT_LABELS.get(e.action, e.action)
        return {
            "id": e.id,
            "at": self.time(e.at),
            "actor": {"role": e.actor_role.value, "id": e.actor_id, "name": e.actor_name},
            "action": e.action,
            "action_label": label,
            "from_status": e.from_status.value if e.from_status else None,
            "to_status": e.to_status.value if e.to_status else None,
            "reason": e.reason,
            "old": e.old,
            "new": e.new,
            "assignment_id": e.assignment_id,
        }
