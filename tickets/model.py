"""Work-order (工单) data: enums with Chinese labels, and the dataclasses other packages see."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    PHONE = "phone"
    WEB = "web"
    SMS = "sms"
    WALK_IN = "walk_in"


class Kind(StrEnum):
    CONSULT = "consult"
    HELP = "help"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"
    PRAISE = "praise"
    OTHER = "other"


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class Status(StrEnum):
    NEW = "new"  # 已受理
    ANSWERED = "answered"  # 已直接答复
    DISPATCHED = "dispatched"  # 已派单, 待签收
    ACCEPTED = "accepted"  # 已签收, 办理中
    RETURNED = "returned"  # 已退单, 待重新派单
    REPLIED = "replied"  # 已办结反馈, 待审核
    REWORK = "rework"  # 审核不通过, 重办
    REVIEWED = "reviewed"  # 已审核, 待回访
    REVISITED = "revisited"  # 已回访
    REOPENED = "reopened"  # 不满意重启, 待重新派单
    CLOSED = "closed"  # 已办结归档
    MERGED = "merged"  # 已合并到主工单


class Action(StrEnum):
    ANSWER = "answer"  # 直接答复
    DISPATCH = "dispatch"  # 派单 / 改派 / 重新派单
    SIGN = "sign"  # 签收
    RETURN = "return"  # 退单
    FORWARD = "forward"  # 二级派单 (down one level)
    REQUEST_EXTENSION = "request_extension"  # 申请延期
    APPROVE_EXTENSION = "approve_extension"  # 同意延期
    DENY_EXTENSION = "deny_extension"  # 不同意延期
    REPLY = "reply"  # 办结反馈
    APPROVE = "approve"  # 审核通过
    REJECT = "reject"  # 审核不通过 → 重办
    REVISIT = "revisit"  # 回访 (满意 / 基本满意)
    REOPEN = "reopen"  # 回访不满意 → 重启
    CLOSE = "close"  # 办结归档
    MERGE = "merge"  # 合并到主工单
    SUPERVISE = "supervise"  # 督办
    URGE = "urge"  # 催办
    EDIT = "edit"  # 修改受理信息 (summary, kind, category, urgency, region)
    SUPPLEMENT = "supplement"  # 市民补充 (a later message from the caller, e.g. by SMS)
    ATTACH = "attach"  # 添加附件 (a photo or document)


class AssignmentRole(StrEnum):
    LEAD = "lead"  # 主办
    ASSIST = "assist"  # 协办


class AssignmentState(StrEnum):
    PENDING = "pending"  # 待签收
    ACCEPTED = "accepted"  # 办理中
    RETURNED = "returned"  # 已退单
    FORWARDED = "forwarded"  # 已下派
    REPLIED = "replied"  # 已反馈
    CANCELLED = "cancelled"  # 已撤回 (re-dispatched, merged or closed)


class ExtensionState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    BASIC = "basic"  # 基本满意
    UNSATISFIED = "unsatisfied"  # 不满意


class Role(StrEnum):
    AGENT = "agent"
    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    DEPARTMENT = "department"
    MANAGER = "manager"
    ADMIN = "admin"
    CITIZEN = "citizen"  # not a login: the caller acting through the public endpoints
    SYSTEM = "system"  # timers and gateways


LABELS: dict[str, str] = {
    # channels
    "phone": "电话",
    "web": "网站",
    "sms": "短信",
    "walk_in": "来访",
    # kinds
    "consult": "咨询",
    "help": "求助",
    "complaint": "投诉",
    "report": "举报",
    "suggestion": "建议",
    "praise": "表扬",
    "other": "其他",
    # urgency
    "normal": "一般",
    "urgent": "紧急",
    "emergency": "特急",
    # satisfaction
    "satisfied": "满意",
    "basic": "基本满意",
    "unsatisfied": "不满意",
    # roles
    "agent": "话务员",
    "dispatcher": "派单员",
    "supervisor": "班长",
    "department": "承办单位",
    "manager": "领导",
    "admin": "管理员",
    "citizen": "市民",
    "system": "系统",
    "lead": "主办",
    "assist": "协办",
}

STATUS_LABELS: dict[Status, str] = {
    Status.NEW: "已受理",
    Status.ANSWERED: "已直接答复",
    Status.DISPATCHED: "已派单",
    Status.ACCEPTED: "办理中",
    Status.RETURNED: "已退单",
    Status.REPLIED: "已反馈待审核",
    Status.REWORK: "重办中",
    Status.REVIEWED: "已审核待回访",
    Status.REVISITED: "已回访",
    Status.REOPENED: "已重启",
    Status.CLOSED: "已办结",
    Status.MERGED: "已合并",
}

ACTION_LABELS: dict[Action, str] = {
    Action.ANSWER: "直接答复",
    Action.DISPATCH: "派单",
    Action.SIGN: "签收",
    Action.RETURN: "退单",
    Action.FORWARD: "下派",
    Action.REQUEST_EXTENSION: "申请延期",
    Action.APPROVE_EXTENSION: "同意延期",
    Action.DENY_EXTENSION: "驳回延期",
    Action.REPLY: "办结反馈",
    Action.APPROVE: "审核通过",
    Action.REJECT: "审核不通过",
    Action.REVISIT: "回访",
    Action.REOPEN: "重启",
    Action.CLOSE: "办结归档",
    Action.MERGE: "合并",
    Action.SUPERVISE: "督办",
    Action.URGE: "催办",
    Action.EDIT: "修改",
    Action.SUPPLEMENT: "市民补充",
    Action.ATTACH: "添加附件",
}


class EventType(StrEnum):
    """Audit events that are not workflow actions (those carry an Action's value)."""

    CREATE = "create"  # 受理
    MERGED_IN = "merged_in"  # a duplicate joined this order
    TRIAGE_REVIEW = "triage_review"  # the triage was not sure: a dispatcher decides
    DEADLINE_WARNING = "deadline_warning"  # 80 % of a time limit used
    DEADLINE_OVERDUE = "deadline_overdue"  # a time limit passed
    PURGE = "purge"  # retention: personal data or files removed (tickets/retention.py)


EVENT_TYPE_LABELS: dict[EventType, str] = {
    EventType.CREATE: "受理",
    EventType.MERGED_IN: "并入重复工单",
    EventType.TRIAGE_REVIEW: "待人工派单（分类建议）",
    EventType.DEADLINE_WARNING: "时限预警",
    EventType.DEADLINE_OVERDUE: "超期",
    EventType.PURGE: "按保存期限清除",
}


def event_label(action: str) -> str:
    """The Chinese wording of an audit event's type (a workflow action or an EventType)."""
    try:
        return ACTION_LABELS[Action(action)]
    except ValueError:
        pass
    try:
        return EVENT_TYPE_LABELS[EventType(action)]
    except ValueError:
        return action  # an event type from a newer version: show its code rather than fail


class RouteState(StrEnum):
    """How an order found its department (triage)."""

    PENDING = "pending"  # not triaged yet
    AUTO = "auto"  # dispatched by the classifier
    REVIEW = "review"  # waits for a dispatcher, with the triage's suggestion
    MANUAL = "manual"  # a person decided


ROUTE_STATE_LABELS: dict[RouteState, str] = {
    RouteState.PENDING: "待分类",
    RouteState.AUTO: "自动派单",
    RouteState.REVIEW: "待人工派单",
    RouteState.MANUAL: "人工处理",
}

ASSIGNMENT_STATE_LABELS: dict[AssignmentState, str] = {
    AssignmentState.PENDING: "待签收",
    AssignmentState.ACCEPTED: "办理中",
    AssignmentState.RETURNED: "已退单",
    AssignmentState.FORWARDED: "已下派",
    AssignmentState.REPLIED: "已反馈",
    AssignmentState.CANCELLED: "已撤回",
}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 for audit records (None stays None)."""
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a logged-in user, the citizen through a public endpoint, or the system."""

    role: Role
    user_id: int | None = None
    name: str = ""
    department: str | None = None

    @property
    def label(self) -> str:
        return self.name or LABELS[self.role]


CITIZEN = Actor(Role.CITIZEN, name="市民")
SYSTEM = Actor(Role.SYSTEM, name="系统")


@dataclass(frozen=True, slots=True)
class Caller:
    name: str | None = None
    phone: str | None = None
    confidential: bool = False
    # what is shown is not the caller's full identity (tickets.access.caller_view): a
    # confidential caller, or a number the viewer's role does not need
    masked: bool = False


@dataclass(frozen=True, slots=True)
class NewTicket:
    """What intake (web, phone, SMS, walk-in) hands to the store."""

    channel: Channel
    content: str
    caller: Caller = Caller()
    kind: Kind = Kind.OTHER
    urgency: Urgency = Urgency.NORMAL
    title: str | None = None
    summary: str | None = None
    category: tuple[str, ...] = ()
    region: str | None = None
    address: str | None = None
    language: str = "zh-Hans"
    attachments: tuple[dict[str, Any], ...] = ()
    # the channel's id of this request (e.g. "call:<uuid>"): submitting it twice gives one order
    intake_key: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    id: int
    ticket_id: int
    department: str
    role: AssignmentRole
    state: AssignmentState
    created_at: datetime
    sign_due: datetime | None
    reply_due: datetime | None
    signed_at: datetime | None = None
    replied_at: datetime | None = None
    reply: str | None = None
    return_reason: str | None = None
    extension_state: ExtensionState = ExtensionState.NONE
    extension_until: datetime | None = None
    extension_reason: str | None = None
    forwarded_from: int | None = None
    ended_at: datetime | None = None  # returned, forwarded or withdrawn at

    @property
    def active(self) -> bool:
        return self.state in (AssignmentState.PENDING, AssignmentState.ACCEPTED)


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    number: str
    version: int
    status: Status
    channel: Channel
    kind: Kind
    urgency: Urgency
    content: str
    caller: Caller
    created_at: datetime
    updated_at: datetime
    title: str | None = None
    summary: str | None = None
    category: tuple[str, ...] = ()
    region: str | None = None
    address: str | None = None
    language: str = "zh-Hans"
    attachments: tuple[dict[str, Any], ...] = ()
    answer: str | None = None  # 直接答复 or the reviewed department reply, shown to the citizen
    answered_at: datetime | None = None
    satisfaction: Satisfaction | None = None
    satisfaction_note: str | None = None
    master_id: int | None = None
    supervised: bool = False
    urge_count: int = 0
    rework_count: int = 0
    reply_due: datetime | None = None
    closed_at: datetime | None = None
    route_state: str = "pending"  # a RouteState value (triage)
    suggestion: dict[str, Any] | None = None  # classifier / region / department suggestion
    assignments: tuple[Assignment, ...] = field(default=())
    # start of the current handling period: receipt, or the latest 重启 (GB/T 33358 重新办理)
    handling_from: datetime | None = None
    # the live deadline clocks, when the reader asked for them (lists and pages do)
    clocks: tuple[Clock, ...] = field(default=())

    @property
    def lead(self) -> Assignment | None:
        """The lead (主办) assignment currently in force, if any."""
        for a in reversed(self.assignments):
            if a.role is AssignmentRole.LEAD and a.state is not AssignmentState.CANCELLED:
                return a
        return None


@dataclass(frozen=True, slots=True)
class TicketEvent:
    id: int
    ticket_id: int
    at: datetime
    actor_role: Role
    actor_id: int | None
    actor_name: str
    action: str
    from_status: Status | None
    to_status: Status | None
    reason: str | None
    old: dict[str, Any]
    new: dict[str, Any]
    assignment_id: int | None = None


class ClockKind(StrEnum):
    SIGN = "sign"  # 签收时限
    REPLY = "reply"  # 办结时限
    REVISIT = "revisit"  # 回访时限


class ClockState(StrEnum):
    RUNNING = "running"
    WARNED = "warned"  # warn_ratio of the time used
    OVERDUE = "overdue"  # past the deadline (超期)
    STOPPED = "stopped"  # its step is done, or its task withdrawn


@dataclass(frozen=True, slots=True)
class Clock:
    id: int
    ticket_id: int
    assignment_id: int | None
    kind: ClockKind
    state: ClockState
    start_at: datetime
    warn_at: datetime
    due_at: datetime
    next_at: datetime | None


@dataclass(frozen=True, slots=True)
class TicketFilter:
    channel: Channel | None = None
    status: Status | None = None
    statuses: tuple[Status, ...] = ()  # any of these (a queue such as 待重新派单)
    department: str | None = None
    # with department (or a department's own scope): only orders where its task is in these
    # states (待签收 = pending, 办理中 = accepted)
    assignment_states: tuple[AssignmentState, ...] = ()
    kind: Kind | None = None
    phone: str | None = None
    supervised: bool | None = None
    route_state: str | None = None
    regions: tuple[str, ...] = ()  # any of these region codes (a league and its banners)
    number_prefix: str | None = None
    q: str | None = None  # words in the content, summary, title or address
    # only these orders (a list's word filter answered by the search port: `q` is then not
    # matched again in the store)
    ids: tuple[int, ...] | None = None
    overdue: bool | None = None  # a running time limit has passed
    extension_requested: bool | None = None
    category: str | None = None  # a category name at any level
    created_from: datetime | None = None
    created_until: datetime | None = None  # exclusive
    urged: bool | None = None  # 催办 at least once
    sort: str = "new"  # new (newest first) | due (earliest live deadline first)
    limit: int = 50
    offset: int = 0


class AccessKind(StrEnum):
    """Reads of personal data that are audited one by one (tickets/privacy.py says when)."""

    PHONE_REVEALED = "phone_revealed"  # 显示号码: a masked caller shown in full, with a reason
    RECORDING_PLAYED = "recording_played"  # a call or voicemail recording fetched
    ATTACHMENT_FETCHED = "attachment_fetched"  # a photo or document of an order fetched
    CONFIDENTIAL_OPENED = "confidential_opened"  # a confidential order's page or record opened
    ORDERS_EXPORTED = "orders_exported"  # an order list downloaded (CSV), callers included


ACCESS_KIND_LABELS: dict[AccessKind, str] = {
    AccessKind.PHONE_REVEALED: "查看来电人号码",
    AccessKind.RECORDING_PLAYED: "收听录音",
    AccessKind.ATTACHMENT_FETCHED: "下载附件",
    AccessKind.CONFIDENTIAL_OPENED: "打开保密工单",
    AccessKind.ORDERS_EXPORTED: "导出工单列表",
}


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One audited read: who, in which role, when, what, of which order, why, from where."""

    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    actor_role: Role
    department: str | None
    kind: AccessKind
    ticket_id: int | None
    ticket_number: str | None
    subject: str | None  # which file or call: "attachment:2", "call:<id>"
    reason: str | None
    client: str | None  # the client's address


@dataclass(frozen=True, slots=True)
class AccessFilter:
    kind: AccessKind | None = None
    ticket_number: str | None = None
    actor: str | None = None  # a part of the person's name
    actor_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    limit: int = 50
    offset: int = 0
