"""Work-order use cases: each checks and writes in one transaction, then publishes its events."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from tickets import store
from tickets.access import (
    optional_text,
    require_text,
    time_in_range,
)
from tickets.core import (
    Change,
    DeadlinePolicy,
    Directory,
    Limits,
    Publisher,
    cancel_live_tasks,
    plain,
    utcnow,
)
from tickets.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    RoleForbidden,
)
from tickets.model import (
    CITIZEN,
    STATUS_LABELS,
    Action,
    Actor,
    AssignmentRole,
    AssignmentState,
    EventType,
    ExtensionState,
    Kind,
    Role,
    Satisfaction,
    Status,
    Ticket,
    Urgency,
    iso,
)
from tickets.system_routing import SystemRouting
from tickets.workflow import (
    FINAL,
    next_assignment_state,
)

__all__ = ["DeadlinePolicy", "Directory", "Limits", "Publisher", "TicketService", "utcnow"]


class TicketService(SystemRouting):
    """The lifecycle actions of the hotline centre and of the departments."""

    # -- the centre's actions -----------------------------------------------------------------
    async def answer(self, actor: Actor, ticket_id: int, version: int, text: str) -> Ticket:
        """直接答复: the agent answers a consultation without dispatching it."""
        text = require_text(text, "answer", "答复内容", self.limits.reply)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.ANSWER,
            lambda c, t, now: Change(
                Action.ANSWER,
                values={"answer": text, "answered_at": now},
                new={"answer": text},
                after=lambda c2, _t: cancel_live_tasks(c2, t.id, now),  # no unit keeps a task
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
        suggestion: dict[str, Any] | None = None,
    ) -> Ticket:
        """派单 (also 改派, and re-dispatch after 退单 / 重启) to a lead and assisting units.

        By the triage (actor SYSTEM, with its `suggestion`) the order is marked routed
        automatically; by a person, the decision is kept as a labelled example."""
        assists = list(dict.fromkeys(assists))
        if lead in assists:
            raise InvalidInput("主办单位不能同时是协办单位", field="assists")
        for code in [lead, *assists]:
            if not self.directory.has_department(code):
                raise InvalidInput(f"未知承办单位 {code}", field="department", department=code)
        note = optional_text(note, "note", "派单说明", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            sign_due = self.deadlines.sign_due(t.urgency, now)
            if t.status is Status.REOPENED and t.handling_from is None:
                # reopened before handling periods were kept (migration 0006): anew from now
                reply_due = self.deadlines.reply_due(t.kind, t.urgency, now)
            elif t.reply_due is None:
                reply_due = self.deadlines.reply_due(t.kind, t.urgency, t.created_at)
            else:
                # the handling period runs from receipt (or from the reopening that started
                # it, which set reply_due), not from this dispatch
                reply_due = t.reply_due

            by_system = actor.role is Role.SYSTEM

            def after(c: Connection, _t: Ticket) -> None:
                store.cancel_active_assignments(c, t.id, now)
                if not by_system:
                    source = "dispatch" if t.status is Status.NEW else "redispatch"
                    store.insert_example(c, example_row(t, lead, source, actor, now))
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
            values: dict[str, Any] = {"reply_due": reply_due}
            if by_system:
                values.update(route_state="auto", suggestion=suggestion)
            elif t.route_state in ("pending", "review"):
                values["route_state"] = "manual"
            return Change(
                Action.DISPATCH,
                values=values,
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

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
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
                # a request stored before dates were bounded cannot be granted as it is
                time_in_range(
                    a.extension_until or now,
                    now,
                    past=timedelta(days=366),
                    future=timedelta(days=self.limits.extension_days),
                    field="until",
                    label="申请的延期时间",
                )
                a_values["reply_due"] = a.extension_until
                if a.role is AssignmentRole.LEAD:
                    t_values["reply_due"] = a.extension_until
            return Change(
                action,
                values=t_values,
                reason=reason,
                old={"reply_due": iso(a.reply_due)},
                new={"reply_due": iso(a.extension_until if approve else a.reply_due)},
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

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            lead = t.lead
            if approve:
                text = lead.reply if lead else None
                return Change(
                    Action.APPROVE,
                    values={"answer": text, "answered_at": now},
                    reason=reason,
                    new={"answer": text},
                )
            assert lead is not None  # REPLIED always has a lead that replied
            return Change(
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
        resolved: bool | None = None,
    ) -> Ticket:
        """回访: 满意 / 基本满意 completes the follow-up; 不满意 reopens for re-dispatch.
        `resolved`: the citizen's answer to “问题是否已解决” (解决率), when asked."""
        note = optional_text(note, "note", "回访记录", self.limits.reason)
        action = Action.REOPEN if satisfaction is Satisfaction.UNSATISFIED else Action.REVISIT

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            # 回访 follows an answer; 不满意 must not reopen a closed order through the back door
            if t.status not in (Status.ANSWERED, Status.REVIEWED):
                raise IllegalTransition(
                    f"工单处于“{STATUS_LABELS[t.status]}”状态，不能回访或评价",
                    status=t.status.value,
                    action=Action.REVISIT.value,
                )
            return Change(
                action,
                values={"satisfaction": satisfaction.value, "satisfaction_note": note},
                reason=note,
                old={"satisfaction": t.satisfaction.value if t.satisfaction else None},
                new={"satisfaction": satisfaction.value}
                | ({} if resolved is None else {"resolved": resolved}),
            )

        return await self._apply(actor, ticket_id, version, action, decide)

    async def rate(
        self,
        number: str,
        phone: str,
        satisfaction: Satisfaction,
        note: str | None = None,
        resolved: bool | None = None,
    ) -> Ticket:
        """The citizen rates the answer from the tracking page (number + phone)."""
        ticket = await self.track(number, phone)
        if ticket.status is Status.MERGED:
            # the main order's answer is rated once, by its own caller (see track_with_main)
            raise IllegalTransition(
                "该诉求已并入主工单办理，答复由主工单的诉求人评价", status=ticket.status.value
            )
        if ticket.status not in (Status.ANSWERED, Status.REVIEWED):
            raise IllegalTransition(
                "工单答复后才能评价，或该工单已经评价过", status=ticket.status.value
            )
        return await self.revisit(CITIZEN, ticket.id, ticket.version, satisfaction, note, resolved)

    async def reopen(self, actor: Actor, ticket_id: int, version: int, reason: str) -> Ticket:
        reason = require_text(reason, "reason", "重启理由", self.limits.reason)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.REOPEN,
            lambda c, t, now: Change(Action.REOPEN, reason=reason),
        )

    async def close(
        self, actor: Actor, ticket_id: int, version: int, note: str | None = None
    ) -> Ticket:
        note = optional_text(note, "note", "归档说明", self.limits.reason)

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            return Change(
                Action.CLOSE,
                values={"closed_at": now},
                reason=note,
                after=lambda c, _t: cancel_live_tasks(c, t.id, now),
            )

        return await self._apply(actor, ticket_id, version, Action.CLOSE, decide)

    async def merge(self, actor: Actor, ticket_id: int, version: int, master_number: str) -> Ticket:
        """合并: a duplicate (多人同诉) joins a master order and stops on its own."""

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            master = store.get_ticket_by_number(conn, master_number, lock=True)
            if master is None:
                raise InvalidInput(f"主工单 {master_number} 不存在", field="master")
            if master.id == t.id:
                raise InvalidInput("不能把工单合并到自身", field="master")
            if master.status in FINAL:
                raise Conflict("主工单已办结或已合并，不能再并入", master=master_number)

            def after(c: Connection, _t: Ticket) -> None:
                store.cancel_active_assignments(c, t.id, now)
                store.insert_event(
                    c,
                    ticket_id=master.id,
                    at=now,
                    actor_role=actor.role,
                    actor_id=actor.user_id,
                    actor_name=actor.label,
                    action=EventType.MERGED_IN,
                    from_status=master.status,
                    to_status=master.status,
                    new={"duplicate": t.number},
                )

            return Change(
                Action.MERGE,
                values={"master_id": master.id},
                new={"master": master.number},
                after=after,
            )

        return await self._apply(actor, ticket_id, version, Action.MERGE, decide)

    async def track_with_main(self, number: str, phone: str) -> tuple[Ticket, Ticket | None]:
        """The citizen's order (number + phone) and, for a merged duplicate, the main order it
        now lives on, so its citizen can follow the main order's status and answer."""
        ticket = await self.track(number, phone)
        return ticket, await self.main_order(ticket)

    async def main_order(self, ticket: Ticket) -> Ticket | None:
        """The order a merged duplicate joined, following later merges of that order; None for
        an order that was not merged. No access check: callers show only its public part."""
        master_id = ticket.master_id
        if master_id is None:
            return None

        def tx(conn: Connection) -> Ticket | None:
            seen = {ticket.id}
            main = store.get_ticket(conn, master_id)
            # a merge refuses a final main order, so the chain is short and has no cycle;
            # `seen` only guards against a damaged database
            while main is not None and main.master_id is not None and main.id not in seen:
                seen.add(main.id)
                main = store.get_ticket(conn, main.master_id)
            return main

        return await self.db.read(tx)

    async def supervise(
        self, actor: Actor, ticket_id: int, version: int, note: str | None = None
    ) -> Ticket:
        note = optional_text(note, "note", "督办意见", self.limits.reason)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.SUPERVISE,
            lambda c, t, now: Change(
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
            lambda c, t, now: Change(
                Action.URGE,
                values={"urge_count": t.urge_count + 1},
                reason=note,
                new={"urge_count": t.urge_count + 1},
            ),
        )

    async def supplement(self, actor: Actor, ticket_id: int, version: int, text: str) -> Ticket:
        """市民补充: a later message from the caller joins the order as an audit event."""
        text = require_text(text, "text", "补充内容", self.limits.content)
        return await self._apply(
            actor,
            ticket_id,
            version,
            Action.SUPPLEMENT,
            lambda c, t, now: Change(Action.SUPPLEMENT, values={}, new={"text": text}),
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
                clean[key] = _member(Kind, value, key, "类型")
            elif key == "urgency":
                clean[key] = _member(Urgency, value, key, "紧急程度")
            elif key == "category":
                if not isinstance(value, list | tuple):
                    raise InvalidInput("分类应为列表", field=key)
                clean[key] = [require_text(v, key, "分类", 50) for v in value]
            elif key == "region":
                if value and not self.directory.has_region(value):
                    raise InvalidInput(f"未知区划代码 {value}", field="region")
                clean[key] = value or None
            else:
                raise InvalidInput(f"不能修改字段 {key}", field=key)
        if not clean:
            raise InvalidInput("没有要修改的内容", field="changes")

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            old = {k: plain(getattr(t, k)) for k in clean}
            values = dict(clean)
            live = [a for a in t.assignments if a.active]
            after = None
            if live and ("kind" in clean or "urgency" in clean):
                # a corrected kind or urgency changes the time limits of the live tasks
                kind = Kind(clean.get("kind", t.kind))
                urgency = Urgency(clean.get("urgency", t.urgency))
                reply_due = self.deadlines.reply_due(kind, urgency, t.handling_from or t.created_at)
                values["reply_due"] = reply_due

                def after(c: Connection, _t: Ticket) -> None:
                    for a in live:
                        moved: dict[str, Any] = {"reply_due": reply_due}
                        if a.state is AssignmentState.PENDING:
                            moved["sign_due"] = self.deadlines.sign_due(urgency, a.created_at)
                        store.update_assignment(c, a.id, moved)

            if "category" in clean and list(t.category) != clean["category"]:
                corrected = dataclasses.replace(t, category=tuple(clean["category"]))
                lead = t.lead
                handling = lead.department if lead and lead.active else None
                row = example_row(corrected, handling, "correction", actor, now)
                previous = after

                def after(c: Connection, _t: Ticket) -> None:
                    if previous is not None:
                        previous(c, _t)
                    store.insert_example(c, row)

            return Change(Action.EDIT, values=values, old=old, new=clean, after=after)

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
            lambda t, a, now: {"return_reason": reason, "ended_at": now},
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
            detail={"reply": text},
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

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            a = self._own_assignment(actor, t)
            a_state, status = next_assignment_state(t.status, a.role, a.state, Action.FORWARD)

            def after(c: Connection, _t: Ticket) -> None:
                store.update_assignment(c, a.id, {"state": a_state.value, "ended_at": now})
                # a unit that was assisting becomes the lead: one live task per unit
                store.cancel_active_assignments(c, t.id, now, department)
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

            return Change(
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
        asked = until

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            a = self._own_assignment(actor, t)
            next_assignment_state(t.status, a.role, a.state, Action.REQUEST_EXTENSION)
            # a sane range: a far date would overflow local time and the working-day walks
            until = time_in_range(
                asked,
                now,
                past=timedelta(0),
                future=timedelta(days=self.limits.extension_days),
                field="until",
                label="延期时间",
            )
            if a.extension_state is ExtensionState.REQUESTED:
                raise Conflict("已有待审批的延期申请")
            if until <= max(now, a.reply_due or now):
                raise InvalidInput("延期后的时限必须晚于当前时限", field="until")
            values = {
                "extension_state": ExtensionState.REQUESTED.value,
                "extension_until": until,
                "extension_reason": reason,
            }
            return Change(
                Action.REQUEST_EXTENSION,
                reason=reason,
                old={"reply_due": iso(a.reply_due)},
                new={"requested_until": iso(until)},
                assignment_id=a.id,
                after=lambda c, _t: store.update_assignment(c, a.id, values),
            )

        return await self._apply(actor, ticket_id, version, Action.REQUEST_EXTENSION, decide)


def _member(enum: Any, value: object, field: str, label: str) -> str:
    try:
        return str(enum(value).value)
    except ValueError:
        raise InvalidInput(f"{label}的值无效", field=field) from None


def example_row(
    t: Ticket, department: str | None, source: str, actor: Actor, now: datetime
) -> dict[str, Any]:
    """A labelled example from a person's decision on `t` (classifier training data)."""
    text = "\n".join(x for x in (t.title, t.content, t.summary) if x)
    return {
        "ticket_id": t.id,
        "text": text,
        "category": list(t.category),
        "department": department,
        "source": source,
        "actor_id": actor.user_id,
        "created_at": now,
    }
