"""Work-order service core: ports, intake, reading, the transaction skeleton, deadline clocks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tickets import clocks, stats_store, store
from tickets.access import (
    access_ticket,
    department_assignments,
    involvement_end,
    normalize_phone,
    optional_text,
    require_text,
    visible_events,
)
from tickets.db import Database
from tickets.errors import (
    DepartmentForbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    RoleForbidden,
    VersionConflict,
)
from tickets.model import (
    CITIZEN,
    SYSTEM,
    Action,
    Actor,
    Assignment,
    Clock,
    EventType,
    ExtensionState,
    Kind,
    NewTicket,
    Role,
    RouteState,
    Status,
    Ticket,
    TicketEvent,
    TicketFilter,
    Urgency,
)
from tickets.workflow import (
    DEPARTMENT_ACTIONS,
    ROUTING_DECISIONS,
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
    extension_days: int = 180  # the latest a 延期 may run to, from now


@dataclasses.dataclass(slots=True)
class Change:
    """What one use case does to one order, applied by TicketService._apply."""

    action: Action
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str | None = None
    old: dict[str, Any] = dataclasses.field(default_factory=dict)
    new: dict[str, Any] = dataclasses.field(default_factory=dict)
    assignment_id: int | None = None
    status: Status | None = None  # explicit target; default: the transition table's
    after: Callable[[Connection, Ticket], None] | None = None  # extra writes after the CAS


_UNROUTED = frozenset({RouteState.PENDING.value, RouteState.REVIEW.value})


def utcnow() -> datetime:
    return datetime.now(UTC)


class TicketCore:
    """State, intake, reading and the transaction skeleton the use cases share."""

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

    def now(self) -> datetime:
        """The service's "now" in UTC (its clock is injected; tests move it)."""
        return self._now()

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
            if new.intake_key is not None:
                # a redelivered request (gateway retry, worker restart) is the same order
                known = store.get_ticket_by_intake_key(conn, new.intake_key)
                if known is not None:
                    return known, []
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
                action=EventType.CREATE,
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
            stats_store.record_new(conn, ticket, ev, self.tz)  # aggregates, same transaction
            return ticket, [ev]

        try:
            ticket, events = await self.db.write(tx)
        except IntegrityError:
            # two deliveries of one channel message raced past the check: the other won
            known = await self.find_by_intake_key(new.intake_key) if new.intake_key else None
            if known is None:
                raise
            return known
        await self.publisher.publish(events)
        return ticket

    # -- reading ------------------------------------------------------------------------------
    async def get(self, actor: Actor, ticket_id: int, *, with_clocks: bool = False) -> Ticket:
        """The order as `actor` may see it (with its live deadline clocks if asked)."""

        def tx(conn: Connection) -> Ticket | None:
            return _clocked(conn, store.get_ticket(conn, ticket_id), with_clocks)

        ticket = await self.db.read(tx)
        if ticket is None:
            raise NotFound("工单不存在")
        return access_ticket(actor, ticket)

    async def find_by_intake_key(self, key: str) -> Ticket | None:
        """The order a channel message became (for the channel's own retries; no access check:
        callers are intake adapters, not users)."""
        return await self.db.read(lambda c: store.get_ticket_by_intake_key(c, key))

    async def get_by_number(
        self, actor: Actor, number: str, *, with_clocks: bool = False
    ) -> Ticket:
        def tx(conn: Connection) -> Ticket | None:
            return _clocked(conn, store.get_ticket_by_number(conn, number), with_clocks)

        ticket = await self.db.read(tx)
        if ticket is None:
            raise NotFound("工单不存在")
        return access_ticket(actor, ticket)

    def _list_scope(self, actor: Actor) -> str | None:
        """The department a list is limited to (None: every order)."""
        if actor.role is Role.DEPARTMENT:
            if not actor.department:
                raise DepartmentForbidden("账号未关联承办单位")
            return actor.department
        if actor.role in (Role.CITIZEN,):
            raise RoleForbidden("无权查看工单列表")
        return None

    async def count_due_between(self, start: datetime, end: datetime) -> int:
        """Orders with a running time limit falling in [start, end) (the wallboard's 今日到期)."""
        return await self.db.read(lambda c: store.count_due_between(c, start, end))

    async def count_created_between(self, start: datetime, end: datetime) -> int:
        return await self.db.read(lambda c: store.count_created_between(c, start, end))

    async def count_tickets(self, actor: Actor, f: TicketFilter, limit: int | None = None) -> int:
        """How many orders match (`limit`: counted up to that many)."""
        scope = self._list_scope(actor)
        now = self._now()
        return await self.db.read(lambda c: store.count_tickets(c, f, scope, now, limit))

    async def list_tickets(
        self, actor: Actor, f: TicketFilter, count_limit: int | None = None
    ) -> tuple[list[Ticket], int]:
        """A page of the orders the actor may see, and how many match (`count_limit`: counted
        up to that many; the page's own rows still count)."""
        scope = self._list_scope(actor)

        now = self._now()

        def tx(conn: Connection) -> tuple[list[Ticket], int]:
            found = store.list_tickets(conn, f, scope, now)
            live = store.live_clocks_of(conn, [t.id for t in found])
            found = [dataclasses.replace(t, clocks=tuple(live[t.id])) for t in found]
            if len(found) < f.limit and (found or not f.offset):
                return found, f.offset + len(found)  # the last page: nothing to count
            limit = None if count_limit is None else max(count_limit, f.offset + len(found))
            return found, store.count_tickets(conn, f, scope, now, limit)

        found, total = await self.db.read(tx)
        return [access_ticket(actor, t) for t in found], total

    async def get_many(self, ticket_ids: Sequence[int]) -> dict[int, Ticket]:
        """Several orders by id, in one read (no access check: for the platform's own
        background work, which shows nothing to a user)."""
        found = await self.db.read(lambda c: store.get_tickets(c, ticket_ids))
        return {t.id: t for t in found}

    async def events_by_id(self, event_ids: Sequence[int]) -> list[TicketEvent]:
        """Audit events by id, oldest first (no access check: for background work)."""
        return await self.db.read(lambda c: store.get_events(c, event_ids))

    async def events_after(self, after_id: int, limit: int) -> list[TicketEvent]:
        """Events with ids after `after_id`, oldest first (no access check: the live push
        filters them per reader)."""
        return await self.db.read(lambda c: store.list_events_after(c, after_id, limit))

    async def events(self, actor: Actor, ticket_id: int) -> list[TicketEvent]:
        def tx(conn: Connection) -> tuple[Ticket | None, list[TicketEvent]]:
            return store.get_ticket(conn, ticket_id), store.list_events(conn, ticket_id)

        ticket, found = await self.db.read(tx)
        if ticket is None:
            raise NotFound("工单不存在")
        access_ticket(actor, ticket)
        return visible_events(actor, ticket, found)

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
        decide: Callable[[Connection, Ticket, datetime], Change],
    ) -> Ticket:
        """Load, check access, role and version, decide, compare-and-set, audit; then publish."""

        def tx(conn: Connection) -> tuple[Ticket, list[TicketEvent]]:
            now = self._now()
            ticket = store.get_ticket(conn, ticket_id)
            if ticket is None:
                raise NotFound("工单不存在")
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
            if change.action in ROUTING_DECISIONS and ticket.route_state in _UNROUTED:
                values.setdefault("route_state", RouteState.MANUAL.value)
            if to_status is Status.REOPENED:
                values["closed_at"] = None
                values["handling_from"] = now
                values["reply_due"] = clocks.reopened_reply_due(ticket, now, self.deadlines)
            if not store.update_ticket(conn, ticket.id, version, values):
                raise VersionConflict("工单已被他人修改，请刷新后重试")
            if change.after is not None:
                change.after(conn, ticket)
            fresh = store.get_ticket(conn, ticket.id)
            assert fresh is not None
            clocks.sync(conn, fresh, now, self.deadlines)
            # the answer carries its clocks: the caller sees its marks without another read
            fresh = dataclasses.replace(fresh, clocks=tuple(store.list_live_clocks(conn, fresh.id)))
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
            stats_store.refresh(conn, fresh, self.tz, now)  # aggregates, same transaction
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
        detail: dict[str, Any] | None = None,
    ) -> Ticket:
        """签收 / 退单 / 办结反馈 on the acting department's own assignment; `detail` goes into
        the audit event (e.g. the reply's text, so the history shows what was answered)."""

        def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
            a = self._own_assignment(actor, t)
            a_state, status = next_assignment_state(t.status, a.role, a.state, action)
            values = {"state": a_state.value, **extra(t, a, now)}

            def after(c: Connection, _t: Ticket) -> None:
                store.update_assignment(c, a.id, values)

            return Change(
                action=action,
                status=status,
                reason=reason,
                old={"assignment_state": a.state.value},
                new={"assignment_state": a_state.value, "role": a.role.value, **(detail or {})},
                assignment_id=a.id,
                after=after,
            )

        return await self._apply(actor, ticket_id, version, action, decide)

    # -- attachments ----------------------------------------------------------------------------
    async def attach(
        self, actor: Actor, ticket_id: int, meta: dict[str, Any], *, max_files: int
    ) -> Ticket:
        """添加附件: a stored file's metadata joins the order (audited; no version needed from
        the caller: adding a file conflicts with nothing, so a concurrent change is retried)."""
        for _ in range(5):
            current = await self.get(SYSTEM, ticket_id)

            def decide(conn: Connection, t: Ticket, now: datetime) -> Change:
                if actor.role is Role.DEPARTMENT:
                    self._own_assignment(actor, t)  # only while it handles the order
                files = [a for a in t.attachments if a.get("type") == "file"]
                if len(files) >= max_files:
                    raise InvalidInput(f"每张工单最多 {max_files} 个附件", field="file")
                entry = {**meta, "at": now.isoformat(), "by": actor.label}
                shown: dict[str, Any] = {
                    k: meta[k] for k in ("name", "media_type", "size") if k in meta
                }
                return Change(
                    Action.ATTACH, values={"attachments": [*t.attachments, entry]}, new=shown
                )

            try:
                return await self._apply(actor, ticket_id, current.version, Action.ATTACH, decide)
            except VersionConflict:
                continue
        raise VersionConflict("工单正忙，请稍后重试")

    # -- learning -------------------------------------------------------------------------------
    async def training_examples(self) -> list[tuple[str, list[str], str | None, str]]:
        return await self.db.read(store.list_examples)

    # -- deadline clocks ----------------------------------------------------------------------
    async def clocks(self, actor: Actor, ticket_id: int) -> list[Clock]:
        def tx(conn: Connection) -> tuple[Ticket | None, list[Clock]]:
            return store.get_ticket(conn, ticket_id), store.list_clocks(conn, ticket_id)

        ticket, found = await self.db.read(tx)
        if ticket is None:
            raise NotFound("工单不存在")
        access_ticket(actor, ticket)
        if actor.role is Role.DEPARTMENT and involvement_end(actor.department or "", ticket):
            # a past assignee keeps only its own tasks' clocks
            own = {a.id for a in ticket.assignments if a.department == actor.department}
            found = [c for c in found if c.assignment_id in own]
        return found

    async def fire_due_clocks(self, limit: int = 500) -> int:
        """One watcher step: warn at warn_ratio, mark overdue at the deadline; an overdue
        sign-for is urged (催办), an overdue reply is supervised (督办). Returns clocks handled.

        Idempotent: each clock's state and next look are written in the same transaction as
        its event, so a restart or a second watcher never fires a step twice."""

        def tx(conn: Connection) -> tuple[int, list[TicketEvent]]:
            now = self._now()
            due = store.due_clocks(conn, now, limit)
            # and their orders' rows, skipping those a user's change holds (they are looked
            # at again next round): what follows reads and counts (the statistics' facts)
            # under that lock, and the watcher never waits for a user's transaction while it
            # holds clocks that transaction may update (a deadlock)
            free = store.lock_free_tickets(conn, (c.ticket_id for c in due))
            due = [c for c in due if c.ticket_id in free]
            fired = [clocks.fire(conn, c, now) for c in due]
            for ticket_id in dict.fromkeys(e.ticket_id for e in fired):  # overdue counts
                stats_store.refresh_id(conn, ticket_id, self.tz, now)
            return len(due), fired

        n, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return n


def _clocked(conn: Connection, t: Ticket | None, with_clocks: bool) -> Ticket | None:
    """`t` with its live deadline clocks attached, when asked for."""
    if t is None or not with_clocks:
        return t
    return dataclasses.replace(t, clocks=tuple(store.list_live_clocks(conn, t.id)))


def cancel_live_tasks(conn: Connection, ticket_id: int, now: datetime) -> None:
    store.cancel_active_assignments(conn, ticket_id, now)


def plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value
