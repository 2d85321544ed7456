"""多人同诉 and 诉求汇总: near-duplicate candidates found at intake, and groups of many callers'
orders about one problem around a main order. Joining and leaving are audited on both orders.

Merged duplicates (the MERGE workflow action) count as members of their master's group; linked
members keep their own workflow (each caller still gets an answer) and can leave again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from tickets import group_store, search_store, store
from tickets.core import Publisher
from tickets.db import Database
from tickets.errors import Conflict, InvalidInput, NotFound, RoleForbidden
from tickets.model import SYSTEM, Actor, Role, Status, Ticket, TicketEvent

CENTRE_ROLES = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.SYSTEM})
READ_ROLES = CENTRE_ROLES | {Role.MANAGER, Role.DEPARTMENT}
REASON_LABELS = {
    "same_caller": "同一来电人",
    "same_content": "内容和地点相同",
    "manual": "人工归并",
    "merge": "已合并",
}


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    number: str
    status: Status
    reason: str
    score: float | None
    phone: str | None  # only for counting callers; never shown to departments


@dataclass(frozen=True, slots=True)
class GroupView:
    main_id: int
    main_number: str
    main_phone: str | None  # only for counting callers
    members: tuple[Member, ...]

    @property
    def orders(self) -> int:
        return 1 + len(self.members)

    @property
    def callers(self) -> int:
        """Distinct callers (an order without a phone counts as one of its own)."""
        phones = {m.phone for m in self.members if m.phone}
        if self.main_phone:
            phones.add(self.main_phone)
        anonymous = sum(1 for m in self.members if not m.phone) + (0 if self.main_phone else 1)
        return len(phones) + anonymous


@dataclass(frozen=True, slots=True)
class Candidate:
    other_id: int
    number: str
    status: Status
    reason: str
    score: float
    state: str  # open | grouped | merged | dismissed
    created_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GroupService:
    def __init__(
        self, db: Database, publisher: Publisher, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.clock = clock

    # -- intake: candidates -------------------------------------------------------------------
    async def record_candidates(
        self, ticket_id: int, found: Sequence[tuple[int, str, float]]
    ) -> int:
        """Flag near-duplicates of a new order (system); one audit event lists them."""

        def tx(conn: Connection) -> tuple[int, list[TicketEvent]]:
            now = self.clock()
            added = [
                (other, reason, round(score, 3))
                for other, reason, score in found
                if group_store.insert_candidate(conn, ticket_id, other, reason, score, now)
            ]
            if not added:
                return 0, []
            numbers = {t.id: t.number for t in _tickets(conn, [o for o, _, _ in added])}
            ev = _event(
                conn,
                ticket_id,
                SYSTEM,
                "similar_found",
                now,
                new={
                    "candidates": [
                        {"number": numbers.get(o), "reason": r, "score": s} for o, r, s in added
                    ]
                },
            )
            return len(added), [ev]

        n, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return n

    async def candidates(self, actor: Actor, ticket_id: int) -> list[Candidate]:
        _require(actor, CENTRE_ROLES | {Role.MANAGER})
        rows = await self.db.read(lambda c: group_store.candidates(c, ticket_id))
        out = []
        for r in rows:
            other = r["other_id"] if r["ticket_id"] == ticket_id else r["ticket_id"]
            out.append(
                Candidate(
                    other,
                    r["number"],
                    Status(r["status"]),
                    r["reason"],
                    float(r["score"]),
                    r["state"],
                    r["created_at"],
                )
            )
        return out

    async def dismiss(self, actor: Actor, ticket_id: int, other_id: int) -> None:
        _require(actor, CENTRE_ROLES)

        def tx(conn: Connection) -> list[TicketEvent]:
            if not group_store.set_candidate_state(conn, ticket_id, other_id, "dismissed"):
                raise Conflict("这两张工单不在相似工单候选中", other=other_id)
            other = _ticket(conn, other_id)
            ev = _event(
                conn,
                ticket_id,
                actor,
                "similar_dismissed",
                self.clock(),
                new={"number": other.number},
            )
            return [ev]

        await self.publisher.publish(await self.db.write(tx))

    # -- groups -------------------------------------------------------------------------------
    async def join(
        self,
        actor: Actor,
        ticket_id: int,
        main_number: str,
        reason: str = "manual",
        score: float | None = None,
    ) -> GroupView:
        """The order joins the 多人同诉 group of `main_number` (made the group's main order
        when it has none yet)."""
        _require(actor, CENTRE_ROLES)
        if reason not in REASON_LABELS:
            raise InvalidInput("未知的归并原因", field="reason")

        def tx(conn: Connection) -> tuple[GroupView, list[TicketEvent]]:
            now = self.clock()
            t = _ticket(conn, ticket_id)
            main = store.get_ticket_by_number(conn, main_number, lock=True)
            if main is None:
                raise InvalidInput(f"主工单 {main_number} 不存在", field="main")
            main = _group_main(conn, main)
            if main.id == t.id:
                raise InvalidInput("不能把工单归入以它为主单的组", field="main")
            if t.status is Status.MERGED or group_store.membership(conn, t.id):
                raise Conflict("该工单已在多人同诉组中", number=t.number)
            own = group_store.group_id_of_main(conn, t.id)
            if own is not None and group_store.members(conn, t.id):
                raise Conflict("该工单是另一组的主单，请先移出其成员", number=t.number)
            group_id = group_store.group_id_of_main(conn, main.id) or group_store.insert_group(
                conn, main.id, now, actor.label
            )
            if not group_store.insert_member(conn, group_id, t.id, reason, score, now, actor.label):
                raise Conflict("该工单已在多人同诉组中", number=t.number)
            group_store.set_candidate_state(conn, t.id, main.id, "grouped")
            view = _view(conn, main)
            events = [
                _event(
                    conn, t.id, actor, "grouped", now, new={"main": main.number, "reason": reason}
                ),
                _event(
                    conn,
                    main.id,
                    actor,
                    "group_joined",
                    now,
                    new={"member": t.number, "orders": view.orders},
                ),
            ]
            return view, events

        view, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return view

    async def leave(self, actor: Actor, ticket_id: int, reason: str) -> None:
        """Un-group: a linked member leaves its group (merged duplicates stay merged)."""
        _require(actor, CENTRE_ROLES)
        reason = (reason or "").strip()
        if not reason:
            raise InvalidInput("请填写移出理由", field="reason")

        def tx(conn: Connection) -> list[TicketEvent]:
            now = self.clock()
            t = _ticket(conn, ticket_id)
            found = group_store.membership(conn, t.id)
            if found is None:
                raise Conflict("该工单不是多人同诉组的成员（已合并的工单不能移出）")
            _, main_id = found
            group_store.delete_member(conn, t.id)
            main = _ticket(conn, main_id)
            return [
                _event(
                    conn, t.id, actor, "ungrouped", now, reason=reason, new={"main": main.number}
                ),
                _event(
                    conn,
                    main.id,
                    actor,
                    "group_left",
                    now,
                    reason=reason,
                    new={"member": t.number, "orders": _view(conn, main).orders},
                ),
            ]

        await self.publisher.publish(await self.db.write(tx))

    async def view(self, ticket_id: int) -> GroupView | None:
        """The group the order belongs to (as main, member or merged duplicate), if any;
        callers check access to the order itself first."""

        def tx(conn: Connection) -> GroupView | None:
            main = _group_main(conn, _ticket(conn, ticket_id))
            view = _view(conn, main)
            return view if view.members else None

        return await self.db.read(tx)

    async def mains(self, ticket_ids: Sequence[int]) -> dict[int, str]:
        return await self.db.read(lambda c: group_store.group_mains(c, ticket_ids))


def _require(actor: Actor, roles: frozenset[Role]) -> None:
    if actor.role not in roles:
        raise RoleForbidden("当前角色无权进行多人同诉归并", role=actor.role.value)


def _ticket(conn: Connection, ticket_id: int) -> Ticket:
    t = store.get_ticket(conn, ticket_id)
    if t is None:
        raise NotFound("工单不存在", ticket_id=ticket_id)
    return t


def _tickets(conn: Connection, ids: Sequence[int]) -> list[Ticket]:
    return search_store.get_tickets(conn, ids)


def _group_main(conn: Connection, t: Ticket) -> Ticket:
    """The main order of t's group: its master if merged, its group's main if linked."""
    if t.master_id is not None:
        return _ticket(conn, t.master_id)
    found = group_store.membership(conn, t.id)
    return _ticket(conn, found[1]) if found else t


def _view(conn: Connection, main: Ticket) -> GroupView:
    members = tuple(
        Member(
            r["id"],
            r["number"],
            Status(r["status"]),
            r["reason"],
            r["score"],
            r["caller_phone"],
        )
        for r in group_store.members(conn, main.id)
    )
    return GroupView(main.id, main.number, main.caller.phone, members)


def _event(
    conn: Connection,
    ticket_id: int,
    actor: Actor,
    action: str,
    now: datetime,
    *,
    reason: str | None = None,
    new: dict[str, Any] | None = None,
) -> TicketEvent:
    status = store.get_ticket(conn, ticket_id)
    current = status.status if status else None
    return store.insert_event(
        conn,
        ticket_id=ticket_id,
        at=now,
        actor_role=actor.role,
        actor_id=actor.user_id,
        actor_name=actor.label,
        action=action,
        from_status=current,
        to_status=current,
        reason=reason,
        new=new or {},
    )
