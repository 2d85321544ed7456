"""Work-order use cases: each checks and writes in one transaction, then publishes its events."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from tickets import clocks, store
from tickets.access import (
    access_ticket,
    department_assignments,
    normalize_phone,
    optional_text,
    require_text,
)
from tickets.db import Database
from tickets.errors import (
    Conflict,
    DepartmentForbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RoleForbidden,
    VersionConflict,
)
from tickets.model import (
    CITIZEN,
    STATUS_LABELS,
    Action,
    Actor,
    Assignment,
    AssignmentRole,
    AssignmentState,
    Clock,
    ExtensionState,
    Kind,
    NewTicket,
    Role,
    Satisfaction,
    Status,
    Ticket,
    TicketEvent,
    TicketFilter,
    Urgency,
)
from tickets.workflow import (
    DEPARTMENT_ACTIONS,
    FINAL,
    allowed_actions,
    check_role,
    next_assignment_state,
    next_status,
)


class Directory(Protocol):
    """The department and region directory (implemented in routing)."""

    def has_department(self, code: str) -> bool: ...
    def has_region(self, code: str) -> bool: ...
    def can_forward(self, from_code: str, to_code: str) -> bool: ...


class DeadlinePolicy(Protocol):
    """Statutory time limits (implemented in routing)."""

    def sign_due(self, urgency: Urgency, start: datetime) -> datetime: ...
    def reply_due(self, kind: Kind, urgency: Urgency, start: datetime) -> datetime: ...
    def revisit_due(self, start: datetime) -> datetime: ...
    def warn_at(self, urgency: Urgency, start: datetime, due: datetime) -> datetime: ...


class Publisher(Protocol):
    async def publish(self, events: Sequence[TicketEvent]) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    content: int = 4000
    summary: int = 2000
    reply: int = 8000
    name: int = 50
    address: int = 200
    reason: int = 1000


@dataclasses.dataclass(slots=True)
class _Change:
    """What one use case does to one order, applied by TicketService._apply."""

    action: Action
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str | None = None
    old: dict[str, Any] = dataclasses.field(default_factory=dict)
    new: dict[str, Any] = dataclasses.field(default_factory=dict)
    assignment_id: int | None = None
    status: Status | None = None  # explicit target; default: the transition table's
    after: Callable[[Connection, Ticket], None] | None = None  # extra writes after the CAS


def utcnow() -> datetime:
    return datetime.now(UTC)


class TicketService:
    def __init__(
        self,
        db: Database,
        directory: Directory,
        deadlines: DeadlinePolicy,
        publisher: Publisher,
        *,
        clock: Callable[[], datetime] = utcnow,
        timezone: str = "Asia/Shanghai",
        limits: Limits = Limits(),
    ) -> None:
        self.db = db
        self.directory = directory
        self.deadlines = deadlines
        self.publisher = publisher
        self.clock = clock
        self.tz = ZoneInfo(timezone)
        self.limits = limits

    def _now(self) -> datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("clock returned a naive datetime: times must carry a zone")
        return now.astimezone(UTC)

    # -- intake -------------------------------------------------------------------------------
    def validate_new(self, new: NewTicket) -> NewTicket:
        """Apply the intake rules shared by every channel; returns the normalised request."""
        lim = self.limits
        caller = new.caller
        phone = normalize_phone(caller.phone) if caller.phone else None
        if caller.confidential and not phone:
            raise InvalidInput("保密诉求须留联系电话以便回复", field="phone", confidential=True)
        name = optional_text(caller.name, "name", "姓名", lim.name)
        region = new.region or None
        if region is not None and not self.directory.has_region(region):
            raise InvalidInput(f"未知区划代码 {region}", field="region")
        return dataclasses.replace(
            new,
            content=require_text(new.content, "content", "诉求内容", lim.content),
            summary=optional_text(new.summary, "summary", "诉求汇总", lim.summary),
            title=optional_text(new.title, "title", "标题", 200),
            address=optional_text(new.address, "address", "地址", lim.address),
            region=region,
            caller=dataclasses.replace(caller, phone=phone, name=name),
        )

    async def submit(self, new: NewTicket, actor: Actor = CITIZEN) -> Ticket:
        """受理: register a request from any channel; durable when this returns."""
        new = self.validate_new(new)

        def tx(conn: Connection) -> tuple[Ticket, list[TicketEvent]]:
            now = self._now()
            day = now.astimezone(self.tz).strftime("%Y%m%d")
            number = f"{day}{store.next_daily_sequence(conn, day):06d}"
            ticket_id = store.insert_ticket(conn, new, number, now)
            ev = store.insert_event(
                conn,
                ticket_id=ticket_id,
                at=now,
                actor_role=actor.role,
                actor_id=actor.user_id,
                actor_name=actor.label,
                action="create",
                from_status=None,
                to_status=Status.NEW,
                new={"channel": new.channel.value, "number": number},
            )
            # built from what was inserted rather than read back: intake is the hot path
            ticket = Ticket(
                id=ticket_id,
                number=number,
                version=1,
                status=Status.NEW,
                channel=new.channel,
                kind=new.kind,
                urgency=new.urgency,
                content=new.content,
                caller=new.caller,
                created_at=now,
                updated_at=now,
                title=new.title,
                summary=new.summary,
                category=new.category,
                region=new.region,
                address=new.address,
                language=new.language,
                attachments=new.attachments,
            )
            return ticket, [ev]

        ticket, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return ticket

    # -- reading ------------------------------------------------------------------------------
    async def get(self, actor: Actor, ticket_id: int) -> Ticket:
        ticket = await self.db.read(lambda c: store.get_ticket(c, ticket_id))
        if ticket is None:
            raise NotFound("工单不存在", ticket_id=ticket_id)
        return access_ticket(actor, ticket)

    async def get_by_number(self, actor: Actor, number: str) -> Ticket:
        ticket = await self.db.read(lambda c: store.get_ticket_by_number(c, number))
        if ticket is None:
            raise NotFound("工单不存在", number=number)
        return access_ticket(actor, ticket)

    async def list_tickets(self, actor: Actor, f: TicketFilter) -> tuple[list[Ticket], int]:
        if actor.role is Role.DEPARTMENT:
            if not actor.department:
                raise DepartmentForbidden("账号未关联承办单位")
            scope: str | None = actor.department
        elif actor.role in (Role.CITIZEN,):
            raise RoleForbidden("无权查看工单列表")
        else:
            scope = None

        def tx(conn: Connection) -> tuple[list[Ticket], int]:
            return store.list_tickets(conn, f, scope), store.count_tickets(conn, f, scope)

        found, total = await self.db.read(tx)
        return [access_ticket(actor, t) for t in found], total

    async def events(self, actor: Actor, ticket_id: int) -> list[TicketEvent]:
        await self.get(actor, ticket_id)
        return await self.db.read(lambda c: store.list_events(c, ticket_id))

    async def track(self, number: str, phone: str) -> Ticket:
        """The citizen's view: number and the phone given at submission must both match."""
        try:
            wanted = normalize_phone(phone)
        except InvalidInput:
            raise NotFound("未找到与该号码和电话匹配的工单") from None
        ticket = await self.db.read(lambda c: store.get_ticket_by_number(c, number))
        if ticket is None or ticket.caller.phone != wanted:
            raise NotFound("未找到与该号码和电话匹配的工单")
        return ticket

    def actions_for(self, actor: Actor, ticket: Ticket) -> list[Action]:
        """The actions the UI should offer `actor` on `ticket` (before per-action input checks)."""
        if actor.role is not Role.DEPARTMENT:
            pending = any(
                a.active and a.extension_state is ExtensionState.REQUESTED
                for a in ticket.assignments
            )
            return [
                a
                for a in allowed_actions(ticket.status, actor.role)
                if pending or a not in (Action.APPROVE_EXTENSION, Action.DENY_EXTENSION)
            ]
        out = []
        for a in department_assignments(actor, ticket):
            if not a.active:
                continue
            for action in allowed_actions(ticket.status, Role.DEPARTMENT):
                try:
                    next_assignment_state(ticket.status, a.role, a.state, action)
                except IllegalTransition:
                    continue
                if action not in out:
                    out.append(action)
        return out

    # -- the transaction skeleton -------------------------------------------------------------
    async def _apply(
        self,
        actor: Actor,
        ticket_id: int,
        version: int,
        action: Action,
        decide: Callable[[Connection, Ticket, datetime], _Change],
    ) -> Ticket:
        """Load, check access, role and version, decide, compare-and-set, audit; then publish."""

        def tx(conn: Connection) -> tuple[Ticket, list[TicketEvent]]:
            now = self._now()
            ticket = store.get_ticket(conn, ticket_id)
            if ticket is None:
                raise NotFound("工单不存在", ticket_id=ticket_id)
            if actor.role is not Role.CITIZEN:  # citizens come in through track(number, phone)
                access_ticket(actor, ticket)
            check_role(actor.role, action)
            if ticket.version != version:
                raise VersionConflict(
                    "工单已被他人修改，请刷新后重试", current_version=ticket.version
                )
            if action not in DEPARTMENT_ACTIONS:  # those are checked on the assignment
                next_status(ticket.status, action)  # illegal here → IllegalTransition, first
            change = decide(conn, ticket, now)
            to_status = change.status or next_status(ticket.status, change.action)
            values = {"status": to_status.value, "updated_at": now, **change.values}
            if to_status is Status.REOPENED:
                values["closed_at"] = None
            if not store.update_ticket(conn, ticket.id, version, values):
                raise VersionConflict("工单已被他人修改，请刷新后重试")
            if change.after is not None:
                change.after(conn, ticket)
            fresh = store.get_ticket(conn, ticket.id)
            assert fresh is not None
            clocks.sync(conn, fresh, now, self.deadlines)
            ev = store.insert_event(
                conn,
                ticket_id=ticket.id,
                at=now,
                actor_role=actor.role,
                actor_id=actor.user_id,
                actor_name=actor.label,
                action=change.action.value,
                from_status=ticket.status,
                to_status=to_status,
                reason=change.reason,
                old=change.old,
                new=change.new,
                assignment_id=change.assignment_id,
            )
            return fresh, [ev]

        ticket, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return ticket if actor.role is Role.CITIZEN else access_ticket(actor, ticket)

    def _own_assignment(self, actor: Actor, ticket: Ticket) -> Assignment:
        mine = [a for a in department_assignments(actor, ticket) if a.active]
        if not mine:
            raise IllegalTransition("本单位在该工单上没有待办的承办任务")
        return mine[-1]

    async def _department_step(
        self,
        actor: Actor,
        ticket_id: int,
        version: int,
        action: Action,
        extra: Callable[[Ticket, Assignment, datetime], dict[str, Any]],
        reason: str | None = None,
        ticket_values: Callable[[Ticket, Assignment, datetime], dict[str, Any]] | None = None,
    ) -> Ticket:
        """签收 / 退单 / 办结反馈 on the acting department's own assignment."""

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            a = self._own_assignment(actor, t)
            a_state, status = next_assignment_state(t.status, a.role, a.state, action)
            values = {"state": a_state.value, **extra(t, a, now)}

            def after(c: Connection, _t: Ticket) -> None:
                store.update_assignment(c, a.id, values)

            return _Change(
                action=action,
                status=status,
                values=ticket_values(t, a, now) if ticket_values else {},
                reason=reason,
                old={"assignment_state": a.state.value},
                new={"assignment_state": a_state.value, "role": a.role.value},
                assignment_id=a.id,
                after=after,
            )

        return await self._apply(actor, ticket_id, version, action, decide)

    # -- deadline clocks ----------------------------------------------------------------------
    async def clocks(self, actor: Actor, ticket_id: int) -> list[Clock]:
        await self.get(actor, ticket_id)
        return await self.db.read(lambda c: store.list_clocks(c, ticket_id))

    async def fire_due_clocks(self, limit: int = 500) -> int:
        """One watcher step: warn at warn_ratio, mark overdue at the deadline; an overdue
        sign-for is urged (催办), an overdue reply is supervised (督办). Returns clocks handled.

        Idempotent: each clock's state and next look are written in the same transaction as
        its event, so a restart or a second watcher never fires a step twice."""

        def tx(conn: Connection) -> tuple[int, list[TicketEvent]]:
            now = self._now()
            due = store.due_clocks(conn, now, limit)
            return len(due), [clocks.fire(conn, c, now) for c in due]

        n, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return n

    # -- the centre's actions -----------------------------------------------------------------
    async def answer(self, actor: Actor, ticket_id: int, version: int, text: str) -> Ticket:
        """直接答复: the agent answers a consultation without dispatching it."""
        text = require_text(text, "answer", "答复内容", self.limits.reply)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.ANSWER,
            lambda c, t, now: _Change(
                Action.ANSWER,
                values={"answer": text, "answered_at": now},
                new={"answer": text},
                after=lambda c2, _t: _cancel(c2, t.id),  # no unit keeps a live task
            ),
        )

    async def dispatch(
        self,
        actor: Actor,
        ticket_id: int,
        version: int,
        lead: str,
        assists: Sequence[str] = (),
        note: str | None = None,
    ) -> Ticket:
        """派单 (also 改派, and re-dispatch after 退单 / 重启) to a lead and assisting units."""
        assists = list(dict.fromkeys(assists))
        if lead in assists:
            raise InvalidInput("主办单位不能同时是协办单位", field="assists")
        for code in [lead, *assists]:
            if not self.directory.has_department(code):
                raise InvalidInput(f"未知承办单位 {code}", field="department", department=code)
        note = optional_text(note, "note", "派单说明", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            sign_due = self.deadlines.sign_due(t.urgency, now)
            if t.status is Status.REOPENED or t.reply_due is None:
                # a reopened order (回访不满意) is handled anew: a fresh clock from now
                start = now if t.status is Status.REOPENED else t.created_at
                reply_due = self.deadlines.reply_due(t.kind, t.urgency, start)
            else:
                # otherwise the statutory clock runs from receipt, not from this dispatch
                reply_due = t.reply_due

            def after(c: Connection, _t: Ticket) -> None:
                store.cancel_active_assignments(c, t.id)
                for code, role in [(lead, AssignmentRole.LEAD)] + [
                    (a, AssignmentRole.ASSIST) for a in assists
                ]:
                    store.insert_assignment(
                        c,
                        ticket_id=t.id,
                        department=code,
                        role=role,
                        now=now,
                        sign_due=sign_due,
                        reply_due=reply_due,
                    )

            prev = [a.department for a in t.assignments if a.active]
            return _Change(
                Action.DISPATCH,
                values={"reply_due": reply_due},
                reason=note,
                old={"departments": prev},
                new={"lead": lead, "assists": assists},
                after=after,
            )

        return await self._apply(actor, ticket_id, version, Action.DISPATCH, decide)

    async def decide_extension(
        self, actor: Actor, ticket_id: int, version: int, approve: bool, reason: str | None = None
    ) -> Ticket:
        """同意 / 驳回延期 requested by the lead department."""
        action = Action.APPROVE_EXTENSION if approve else Action.DENY_EXTENSION
        reason = optional_text(reason, "reason", "审批意见", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            # a request dies with its assignment (returned, forwarded, re-dispatched)
            pending = [
                a
                for a in t.assignments
                if a.active and a.extension_state is ExtensionState.REQUESTED
            ]
            if not pending:
                raise IllegalTransition("该工单没有待审批的延期申请")
            a = pending[-1]
            a_values: dict[str, Any] = {
                "extension_state": (
                    ExtensionState.APPROVED if approve else ExtensionState.DENIED
                ).value
            }
            t_values: dict[str, Any] = {}
            if approve:
                a_values["reply_due"] = a.extension_until
                if a.role is AssignmentRole.LEAD:
                    t_values["reply_due"] = a.extension_until
            return _Change(
                action,
                values=t_values,
                reason=reason,
                old={"reply_due": _iso(a.reply_due)},
                new={"reply_due": _iso(a.extension_until if approve else a.reply_due)},
                assignment_id=a.id,
                after=lambda c, _t: store.update_assignment(c, a.id, a_values),
            )

        return await self._apply(actor, ticket_id, version, action, decide)

    async def review(
        self, actor: Actor, ticket_id: int, version: int, approve: bool, reason: str | None = None
    ) -> Ticket:
        """审核 the lead department's reply: pass publishes it, reject sends it back (重办)."""
        if not approve:
            reason = require_text(reason, "reason", "退回理由", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            lead = t.lead
            if approve:
                text = lead.reply if lead else None
                return _Change(
                    Action.APPROVE,
                    values={"answer": text, "answered_at": now},
                    reason=reason,
                    new={"answer": text},
                )
            assert lead is not None  # REPLIED always has a lead that replied
            return _Change(
                Action.REJECT,
                values={"rework_count": t.rework_count + 1},
                reason=reason,
                assignment_id=lead.id,
                after=lambda c, _t: store.update_assignment(
                    c, lead.id, {"state": AssignmentState.ACCEPTED.value}
                ),
            )

        action = Action.APPROVE if approve else Action.REJECT
        return await self._apply(actor, ticket_id, version, action, decide)

    async def revisit(
        self,
        actor: Actor,
        ticket_id: int,
        version: int,
        satisfaction: Satisfaction,
        note: str | None = None,
    ) -> Ticket:
        """回访: 满意 / 基本满意 completes the follow-up; 不满意 reopens for re-dispatch."""
        note = optional_text(note, "note", "回访记录", self.limits.reason)
        action = Action.REOPEN if satisfaction is Satisfaction.UNSATISFIED else Action.REVISIT

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            # 回访 follows an answer; 不满意 must not reopen a closed order through the back door
            if t.status not in (Status.ANSWERED, Status.REVIEWED):
                raise IllegalTransition(
                    f"工单处于“{STATUS_LABELS[t.status]}”状态，不能回访或评价",
                    status=t.status.value,
                    action=Action.REVISIT.value,
                )
            return _Change(
                action,
                values={"satisfaction": satisfaction.value, "satisfaction_note": note},
                reason=note,
                old={"satisfaction": t.satisfaction.value if t.satisfaction else None},
                new={"satisfaction": satisfaction.value},
            )

        return await self._apply(actor, ticket_id, version, action, decide)

    async def rate(
        self, number: str, phone: str, satisfaction: Satisfaction, note: str | None = None
    ) -> Ticket:
        """The citizen rates the answer from the tracking page (number + phone)."""
        ticket = await self.track(number, phone)
        if ticket.status not in (Status.ANSWERED, Status.REVIEWED):
            raise IllegalTransition(
                "工单答复后才能评价，或该工单已经评价过", status=ticket.status.value
            )
        return await self.revisit(CITIZEN, ticket.id, ticket.version, satisfaction, note)

    async def reopen(self, actor: Actor, ticket_id: int, version: int, reason: str) -> Ticket:
        reason = require_text(reason, "reason", "重启理由", self.limits.reason)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.REOPEN,
            lambda c, t, now: _Change(Action.REOPEN, reason=reason),
        )

    async def close(
        self, actor: Actor, ticket_id: int, version: int, note: str | None = None
    ) -> Ticket:
        note = optional_text(note, "note", "归档说明", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            return _Change(
                Action.CLOSE,
                values={"closed_at": now},
                reason=note,
                after=lambda c, _t: _cancel(c, t.id),
            )

        return await self._apply(actor, ticket_id, version, Action.CLOSE, decide)

    async def merge(self, actor: Actor, ticket_id: int, version: int, master_number: str) -> Ticket:
        """合并: a duplicate (多人同诉) joins a master order and stops on its own."""

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            master = store.get_ticket_by_number(conn, master_number, lock=True)
            if master is None:
                raise InvalidInput(f"主工单 {master_number} 不存在", field="master")
            if master.id == t.id:
                raise InvalidInput("不能把工单合并到自身", field="master")
            if master.status in FINAL:
                raise Conflict("主工单已办结或已合并，不能再并入", master=master_number)

            def after(c: Connection, _t: Ticket) -> None:
                store.cancel_active_assignments(c, t.id)
                store.insert_event(
                    c,
                    ticket_id=master.id,
                    at=now,
                    actor_role=actor.role,
                    actor_id=actor.user_id,
                    actor_name=actor.label,
                    action="merged_in",
                    from_status=master.status,
                    to_status=master.status,
                    new={"duplicate": t.number},
                )

            return _Change(
                Action.MERGE,
                values={"master_id": master.id},
                new={"master": master.number},
                after=after,
            )

        return await self._apply(actor, ticket_id, version, Action.MERGE, decide)

    async def supervise(
        self, actor: Actor, ticket_id: int, version: int, note: str | None = None
    ) -> Ticket:
        note = optional_text(note, "note", "督办意见", self.limits.reason)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.SUPERVISE,
            lambda c, t, now: _Change(
                Action.SUPERVISE,
                values={"supervised": True},
                reason=note,
                old={"supervised": t.supervised},
                new={"supervised": True},
            ),
        )

    async def urge(
        self, actor: Actor, ticket_id: int, version: int, note: str | None = None
    ) -> Ticket:
        note = optional_text(note, "note", "催办意见", self.limits.reason)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.URGE,
            lambda c, t, now: _Change(
                Action.URGE,
                values={"urge_count": t.urge_count + 1},
                reason=note,
                new={"urge_count": t.urge_count + 1},
            ),
        )

    async def edit(
        self, actor: Actor, ticket_id: int, version: int, changes: dict[str, Any]
    ) -> Ticket:
        """修改受理信息: summary (诉求汇总), title, kind, urgency, category, region, address."""
        lim = self.limits
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "summary":
                clean[key] = optional_text(value, key, "诉求汇总", lim.summary)
            elif key == "title":
                clean[key] = optional_text(value, key, "标题", 200)
            elif key == "address":
                clean[key] = optional_text(value, key, "地址", lim.address)
            elif key == "kind":
                clean[key] = Kind(value).value
            elif key == "urgency":
                clean[key] = Urgency(value).value
            elif key == "category":
                clean[key] = [require_text(v, key, "分类", 50) for v in value]
            elif key == "region":
                if value and not self.directory.has_region(value):
                    raise InvalidInput(f"未知区划代码 {value}", field="region")
                clean[key] = value or None
            else:
                raise InvalidInput(f"不能修改字段 {key}", field=key)
        if not clean:
            raise InvalidInput("没有要修改的内容", field="changes")

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            old = {k: _plain(getattr(t, k)) for k in clean}
            values = dict(clean)
            live = [a for a in t.assignments if a.active]
            after = None
            if live and ("kind" in clean or "urgency" in clean):
                # a corrected kind or urgency changes the time limits of the live tasks
                kind = Kind(clean.get("kind", t.kind))
                urgency = Urgency(clean.get("urgency", t.urgency))
                reply_due = self.deadlines.reply_due(kind, urgency, t.created_at)
                values["reply_due"] = reply_due

                def after(c: Connection, _t: Ticket) -> None:
                    for a in live:
                        moved: dict[str, Any] = {"reply_due": reply_due}
                        if a.state is AssignmentState.PENDING:
                            moved["sign_due"] = self.deadlines.sign_due(urgency, a.created_at)
                        store.update_assignment(c, a.id, moved)

            return _Change(Action.EDIT, values=values, old=old, new=clean, after=after)

        return await self._apply(actor, ticket_id, version, Action.EDIT, decide)

    # -- the departments' actions -------------------------------------------------------------
    async def sign(self, actor: Actor, ticket_id: int, version: int) -> Ticket:
        """签收."""
        return await self._department_step(
            actor, ticket_id, version, Action.SIGN, lambda t, a, now: {"signed_at": now}
        )

    async def return_(self, actor: Actor, ticket_id: int, version: int, reason: str) -> Ticket:
        """退单 with a reason, back to the dispatchers."""
        reason = require_text(reason, "reason", "退单理由", self.limits.reason)
        return await self._department_step(
            actor,
            ticket_id,
            version,
            Action.RETURN,
            lambda t, a, now: {"return_reason": reason},
            reason=reason,
        )

    async def reply(self, actor: Actor, ticket_id: int, version: int, text: str) -> Ticket:
        """办结反馈: the lead's reply goes to review; an assisting department's is its input."""
        text = require_text(text, "reply", "办理结果", self.limits.reply)
        return await self._department_step(
            actor,
            ticket_id,
            version,
            Action.REPLY,
            lambda t, a, now: {"reply": text, "replied_at": now},
        )

    async def forward(
        self, actor: Actor, ticket_id: int, version: int, department: str, note: str | None = None
    ) -> Ticket:
        """二级派单: the lead department passes the order down to a unit one level below."""
        if actor.role is not Role.DEPARTMENT or not actor.department:
            raise RoleForbidden("只有承办单位可以下派")
        if not self.directory.has_department(department):
            raise InvalidInput(f"未知承办单位 {department}", field="department")
        if not self.directory.can_forward(actor.department, department):
            raise InvalidInput("只能下派给本单位下一级区划的单位", field="department")
        note = optional_text(note, "note", "下派说明", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            a = self._own_assignment(actor, t)
            a_state, status = next_assignment_state(t.status, a.role, a.state, Action.FORWARD)

            def after(c: Connection, _t: Ticket) -> None:
                store.update_assignment(c, a.id, {"state": a_state.value})
                # a unit that was assisting becomes the lead: one live task per unit
                store.cancel_active_assignments(c, t.id, department)
                store.insert_assignment(
                    c,
                    ticket_id=t.id,
                    department=department,
                    role=a.role,
                    now=now,
                    sign_due=self.deadlines.sign_due(t.urgency, now),
                    reply_due=a.reply_due,
                    forwarded_from=a.id,
                )

            return _Change(
                Action.FORWARD,
                status=status,
                reason=note,
                old={"department": a.department},
                new={"department": department},
                assignment_id=a.id,
                after=after,
            )

        return await self._apply(actor, ticket_id, version, Action.FORWARD, decide)

    async def request_extension(
        self, actor: Actor, ticket_id: int, version: int, until: datetime, reason: str
    ) -> Ticket:
        """申请延期 to a new reply deadline, decided by a dispatcher or supervisor."""
        reason = require_text(reason, "reason", "延期理由", self.limits.reason)
        if until.tzinfo is None:
            raise InvalidInput("延期时间须带时区", field="until")

        def decide(conn: Connection, t: Ticket, now: datetime) -> _Change:
            a = self._own_assignment(actor, t)
            next_assignment_state(t.status, a.role, a.state, Action.REQUEST_EXTENSION)
            if a.extension_state is ExtensionState.REQUESTED:
                raise Conflict("已有待审批的延期申请")
            if until <= max(now, a.reply_due or now):
                raise InvalidInput("延期后的时限必须晚于当前时限", field="until")
            values = {
                "extension_state": ExtensionState.REQUESTED.value,
                "extension_until": until,
                "extension_reason": reason,
            }
            return _Change(
                Action.REQUEST_EXTENSION,
                reason=reason,
                old={"reply_due": _iso(a.reply_due)},
                new={"requested_until": _iso(until)},
                assignment_id=a.id,
                after=lambda c, _t: store.update_assignment(c, a.id, values),
            )

        return await self._apply(actor, ticket_id, version, Action.REQUEST_EXTENSION, decide)


def _cancel(conn: Connection, ticket_id: int) -> None:
    store.cancel_active_assignments(conn, ticket_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value
