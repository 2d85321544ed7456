"""Turn work-order dataclasses into JSON-ready dicts, times in local time (Asia/Shanghai)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from tickets import timing
from tickets.model import (
    ACTION_LABELS,
    ASSIGNMENT_STATE_LABELS,
    LABELS,
    ROUTE_STATE_LABELS,
    STATUS_LABELS,
    Action,
    Assignment,
    Caller,
    Clock,
    EventType,
    RouteState,
    Status,
    Ticket,
    TicketEvent,
    event_label,
)

FIELD_LABELS = {
    "version": "版本号",
    "text": "内容",
    "lead": "主办单位",
    "assists": "协办单位",
    "note": "说明",
    "reason": "理由",
    "department": "下派单位",
    "until": "延期至",
    "satisfaction": "满意度",
    "master": "主工单编号",
    "summary": "诉求汇总",
    "title": "标题",
    "kind": "类型",
    "urgency": "紧急程度",
    "category": "分类",
    "region": "区划",
    "address": "地址",
    "content": "诉求内容",
    "channel": "渠道",
    "phone": "电话",
    "name": "姓名",
    "language": "语言",
    "confidential": "保密",
    "supervised": "督办",
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


def time_left(due: datetime, now: datetime) -> str:
    """剩余 2天3小时 / 超期 5小时 (whole hours; minutes under an hour)."""
    delta = due - now
    late = delta < timedelta(0)
    minutes = int(abs(delta).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        text = f"{days}天{hours}小时" if hours else f"{days}天"
    elif hours:
        text = f"{hours}小时"
    else:
        text = f"{mins}分钟"
    return ("超期 " if late else "剩余 ") + text


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Presenter:
    def __init__(self, names: Names, tz: ZoneInfo, clock: Callable[[], datetime] = _utcnow) -> None:
        self.names = names
        self.tz = tz
        self.now = clock  # "now" for deadline marks (the service's clock)

    def time(self, value: datetime | None) -> str | None:
        if not value:
            return None
        try:
            return value.astimezone(self.tz).isoformat(timespec="seconds")
        except OverflowError:  # a stored extreme (year 9999) must not break a read
            return value.isoformat(timespec="seconds")

    def local(self, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if not value:
            return ""
        try:
            return value.astimezone(self.tz).strftime(fmt)
        except OverflowError:
            return value.strftime(fmt) + " UTC"

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
            "caller": self.caller(t.caller),
            "attachments": [self.attachment(t, n, a) for n, a in enumerate(t.attachments)],
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
            "route_state_label": ROUTE_STATE_LABELS.get(RouteState(t.route_state), t.route_state),
            "suggestion": t.suggestion,
            "assignments": [self.assignment(a) for a in t.assignments],
            **self.timing(t),
        }
        if actions is not None:
            out["actions"] = [{"action": a.value, "label": ACTION_LABELS[a]} for a in actions]
        return out

    @staticmethod
    def caller(c: Caller) -> dict[str, Any]:
        """`masked`: what is shown is not the full identity (the order's caller_view)."""
        return {
            "name": c.name,
            "phone": c.phone,
            "confidential": c.confidential,
            "masked": c.masked,
        }

    def attachment(self, t: Ticket, n: int, a: dict[str, Any]) -> dict[str, Any]:
        """An attachment as readers see it: what it is and where to fetch it, never the
        server's file path."""
        if a.get("type") == "location":  # a place (Open311's lat/long), nothing to fetch
            return {"n": n, "type": "location", "lat": a.get("lat"), "long": a.get("long")}
        out = {
            "n": n,
            "type": a.get("type", "file"),
            "name": a.get("name"),
            "media_type": a.get(
                "media_type", "audio/wav" if a.get("type") == "recording" else None
            ),
            "size": a.get("size"),
            "seconds": a.get("seconds"),
            "by": a.get("by"),
            "url": f"/api/v1/tickets/{t.id}/attachments/{n}",
            # deleted when its retention period ended (the entry stays)
            "purged": True if a.get("purged_at") else None,
        }
        return {k: v for k, v in out.items() if v is not None}

    def timing(self, t: Ticket) -> dict[str, Any]:
        """Marks (特急, 已超期, 待审批延期 …) and the deadline that matters now, by the one rule
        in tickets.timing over the order's live clocks."""
        now = self.now()
        nd = timing.next_deadline(t, now)
        return {
            "marks": [
                {"code": m.value, "label": timing.MARK_LABELS[m], "tone": timing.MARK_TONES[m]}
                for m in timing.marks(t, now)
            ],
            "deadline": None
            if nd is None
            else {
                "kind": nd.kind.value,
                "kind_label": CLOCK_LABELS[nd.kind.value],
                "due_at": self.time(nd.due_at),
                "phase": nd.phase.value,
                "held_by_centre": not nd.department_clock,
            },
        }

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
        return {
            "id": e.id,
            "at": self.time(e.at),
            "actor": {"role": e.actor_role.value, "id": e.actor_id, "name": e.actor_name},
            "action": e.action,
            "action_label": event_label(e.action),
            "description": self.describe(e),
            "from_status": e.from_status.value if e.from_status else None,
            "to_status": e.to_status.value if e.to_status else None,
            "reason": e.reason,
            "old": e.old,
            "new": e.new,
            "assignment_id": e.assignment_id,
        }

    # -- what an audit event changed, in words (pages and the API share it) ----------------
    def _iso_local(self, value: object) -> str:
        if not isinstance(value, str) or not value:
            return "—"
        try:
            return self.local(datetime.fromisoformat(value))
        except ValueError:
            return value

    def _show(self, key: str, value: object) -> str:
        if value is None or value == "" or value == []:
            return "（空）"
        if key in ("kind", "urgency", "channel", "satisfaction"):
            return LABELS.get(str(value), str(value))
        if key == "region":
            return self.names.region_name(str(value))
        if isinstance(value, bool):
            return "是" if value else "否"
        if isinstance(value, list):
            return "、".join(str(v) for v in value)
        return str(value)

    def describe(self, e: TicketEvent) -> str:
        """What an audit event changed, in a sentence (its reason is shown beside it)."""
        names = self.names
        new, old = e.new or {}, e.old or {}
        role = LABELS.get(str(new.get("role", "")), "")
        match e.action:
            case EventType.CREATE:
                channel = LABELS.get(str(new.get("channel", "")), "")
                return f"编号 {new.get('number', '')}，渠道：{channel}"
            case Action.DISPATCH:
                text = f"主办：{names.department_name(str(new.get('lead', '')))}"
                assists = [names.department_name(str(c)) for c in new.get("assists") or []]
                return text + (f"；协办：{'、'.join(assists)}" if assists else "")
            case Action.FORWARD:
                src, dst = str(old.get("department", "")), str(new.get("department", ""))
                return f"{names.department_name(src)} → {names.department_name(dst)}"
            case Action.REQUEST_EXTENSION:
                return f"申请延期至 {self._iso_local(new.get('requested_until'))}"
            case Action.APPROVE_EXTENSION | Action.DENY_EXTENSION:
                before = self._iso_local(old.get("reply_due"))
                after = self._iso_local(new.get("reply_due"))
                return f"办理时限：{before} → {after}"
            case Action.EDIT:
                return "；".join(
                    f"{FIELD_LABELS.get(k, k)}：{self._show(k, old.get(k))} → {self._show(k, v)}"
                    for k, v in new.items()
                )
            case Action.MERGE:
                return f"并入主工单 {new.get('master', '')}"
            case EventType.MERGED_IN:
                return f"重复工单 {new.get('duplicate', '')} 并入本工单"
            case Action.ANSWER | Action.APPROVE if new.get("answer"):
                return f"答复：{new['answer']}"
            case Action.REVISIT | Action.REOPEN if new.get("satisfaction"):
                return f"满意度：{LABELS.get(str(new['satisfaction']), '')}"
            case Action.REOPEN:
                return "重新办理：新的办理期限自重启时起算"
            case Action.URGE:
                return f"第 {new.get('urge_count', '')} 次催办"
            case Action.SUPERVISE:
                return "列入督办"
            case Action.SUPPLEMENT:
                return f"市民补充：{new.get('text', '')}"
            case Action.SIGN:
                return f"（{role}）已签收" if role else "已签收"
            case Action.RETURN:
                return f"（{role}）退回热线，待重新派单" if role else "退回热线，待重新派单"
            case Action.REPLY:
                reply = new.get("reply")
                prefix = f"（{role}）" if role else ""
                return f"{prefix}办理结果：{reply}" if reply else f"{prefix}已反馈办理结果"
            case EventType.TRIAGE_REVIEW:
                return self.suggestion_text(new)
            case EventType.PURGE:
                files = int(new.get("files") or 0)
                if new.get("scope") == "files":
                    return f"保存期限届满，删除附件文件 {files} 个"
                extra = f"，删除文件 {files} 个" if files else ""
                return f"保存期限届满，来电人信息和诉求内容已清除{extra}"
            case EventType.DEADLINE_WARNING | EventType.DEADLINE_OVERDUE:
                clock = CLOCK_LABELS.get(str(new.get("clock", "")), "时限")
                dept = new.get("department")
                who = names.department_name(str(dept)) if dept else "热线（待重新派单）"
                verb = "即将到期" if e.action == EventType.DEADLINE_WARNING else "已超期"
                return f"{who}：{clock}{verb}（{self._iso_local(new.get('due_at'))}）"
        return ""

    def suggestion_text(self, s: dict[str, Any] | None) -> str:
        """The triage's suggestion in one short line for a list row."""
        if not s:
            return ""
        parts = []
        top3 = [x for x in s.get("top3") or [] if isinstance(x, dict)]
        if top3:
            best = top3[0]
            parts.append(
                f"分类建议：{best.get('label', '')}（{float(best.get('probability') or 0):.0%}）"
            )
        dept = self.suggested_department(s)
        if dept:
            parts.append(f"建议承办：{self.names.department_name(dept)}")
        if s.get("confidence") is not None:
            parts.append(f"置信度 {float(s['confidence']):.0%}")
        return "；".join(parts)

    def suggestion_lines(self, s: dict[str, Any] | None) -> list[tuple[str, str]]:
        """(label, text) rows of the triage's suggestion for the dispatcher."""
        if not s:
            return []
        out: list[tuple[str, str]] = []
        top3 = [x for x in s.get("top3") or [] if isinstance(x, dict)]
        if top3:
            out.append(
                (
                    "分类建议",
                    "、".join(
                        f"{x.get('label', '')}（{float(x.get('probability') or 0):.0%}）"
                        for x in top3
                    ),
                )
            )
        category = s.get("category") or []
        if category:
            out.append(("采用分类", " / ".join(str(c) for c in category)))
        region = s.get("region")
        if isinstance(region, dict) and region.get("code"):
            out.append(("识别区划", f"{region.get('name', '')}（{region.get('reason', '')}）"))
        dept = s.get("department")
        if isinstance(dept, dict) and dept.get("department"):
            name = self.names.department_name(str(dept["department"]))
            explanation = dept.get("explanation")
            out.append(("建议承办", f"{name}" + (f"（{explanation}）" if explanation else "")))
        if s.get("confidence") is not None:
            out.append(("置信度", f"{float(s['confidence']):.0%}"))
        if s.get("answerable"):
            out.append(("提示", "知识库有现成答复，可直接答复"))
        return out

    def suggested_department(self, s: dict[str, Any] | None) -> str | None:
        dept = (s or {}).get("department")
        return (
            str(dept["department"]) if isinstance(dept, dict) and dept.get("department") else None
        )
