"""Use cases of the public 曝光纠错 column: supervisors choose answered orders, edit a redacted
text and publish it; the public reads only what was approved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from tickets import cases_store, store
from tickets.access import optional_text, require_text
from tickets.cases import CaseState, PublicCase, leaks, redact
from tickets.db import Database
from tickets.errors import Conflict, IllegalTransition, InvalidInput, NotFound, RoleForbidden
from tickets.indicators import CENTRE, OPEN_STATUSES, order_dims
from tickets.model import Actor, Kind, Role, Status, Ticket

EDIT_ROLES = frozenset({Role.SUPERVISOR})
VIEW_ROLES = frozenset({Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})
# the citizen has the answer: the case can be shown with it
ANSWERED = frozenset({Status.ANSWERED, Status.REVIEWED, Status.REVISITED, Status.CLOSED})
LIMITS = {"title": 200, "question": 4000, "answer": 8000}


@dataclass(frozen=True, slots=True)
class CaseText:
    """What a supervisor approves (each field as the public will read it)."""

    title: str
    question: str
    answer: str
    title_mn: str | None = None
    question_mn: str | None = None
    answer_mn: str | None = None


def _caller_names(t: Ticket) -> tuple[str, ...]:
    return tuple(n for n in (t.caller.name,) if n)


class CaseService:
    def __init__(self, db: Database, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.db = db
        self.clock = clock

    @staticmethod
    def _check(actor: Actor, roles: frozenset[Role]) -> None:
        if actor.role not in roles:
            raise RoleForbidden("当前角色无权管理曝光纠错栏目", role=actor.role.value)

    # -- staff --------------------------------------------------------------------------------
    async def start(self, actor: Actor, number: str) -> PublicCase:
        """A draft from an answered order, its texts redacted; the existing one if any."""
        self._check(actor, EDIT_ROLES)

        def tx(conn: Connection) -> PublicCase:
            t = store.get_ticket_by_number(conn, number.strip())
            if t is None:
                raise NotFound("工单不存在", number=number)
            known = cases_store.get_case_of_ticket(conn, t.id)
            if known is not None:
                return known
            if t.status not in ANSWERED or not t.answer or t.answered_at is None:
                raise IllegalTransition("只能公开已答复的工单", status=t.status.value)
            names = _caller_names(t)
            lead = t.lead
            dims = order_dims(t)
            now = self.clock()
            title = redact(t.title or (t.summary or t.content)[:40], names)[:200]
            case_id = cases_store.insert_case(
                conn,
                {
                    "ticket_id": t.id,
                    "version": 1,
                    "state": CaseState.DRAFT.value,
                    "title": title,
                    "question": redact(t.summary or t.content, names)[: LIMITS["question"]],
                    "answer": redact(t.answer, names)[: LIMITS["answer"]],
                    "department": lead.department if lead and lead.replied_at else CENTRE,
                    "kind": dims.kind,
                    "category": dims.category,
                    "region": dims.region,
                    "received_at": t.created_at,
                    "answered_at": t.answered_at,
                    "satisfaction": t.satisfaction.value if t.satisfaction else None,
                    "created_by": actor.user_id,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            found = cases_store.get_case(conn, case_id)
            assert found is not None
            return found

        return await self.db.write(tx)

    def _clean(self, text: CaseText) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: require_text(getattr(text, k), k, label, LIMITS[k])
            for k, label in (("title", "标题"), ("question", "诉求摘要"), ("answer", "答复"))
        }
        for k, label in (("title_mn", "蒙古文标题"), ("question_mn", "蒙古文诉求摘要")):
            out[k] = optional_text(getattr(text, k), k, label, 2 * LIMITS[k[:-3]])
        out["answer_mn"] = optional_text(text.answer_mn, "answer_mn", "蒙古文答复", 16000)
        return out

    async def edit(
        self, actor: Actor, case_id: int, version: int, text: CaseText, publish: bool = False
    ) -> PublicCase:
        """Save the approved text; with `publish`, refuse it if anything identifying is left."""
        self._check(actor, EDIT_ROLES)
        values = self._clean(text)

        def tx(conn: Connection) -> PublicCase:
            case = self._load(conn, case_id, version)
            now = self.clock()
            changes = {**values, "updated_at": now}
            if publish:
                t = store.get_ticket(conn, case.ticket_id)
                names = _caller_names(t) if t else ()
                problems = {k: leaks(v, names) for k, v in values.items() if v}
                problems = {k: p for k, p in problems.items() if p}
                if problems:
                    found = "、".join(dict.fromkeys(p for ps in problems.values() for p in ps))
                    raise InvalidInput(
                        f"公开内容中仍有个人信息（{found}），请删改后再公开",
                        field=next(iter(problems)),
                        leaks=problems,
                    )
                changes.update(
                    state=CaseState.PUBLISHED.value, published_by=actor.user_id, published_at=now
                )
            if not cases_store.update_case(conn, case_id, version, changes):
                raise Conflict("该案例已被他人修改，请刷新后重试")
            fresh = cases_store.get_case(conn, case_id)
            assert fresh is not None
            return fresh

        return await self.db.write(tx)

    async def withdraw(self, actor: Actor, case_id: int, version: int) -> PublicCase:
        self._check(actor, EDIT_ROLES)

        def tx(conn: Connection) -> PublicCase:
            case = self._load(conn, case_id, version)
            if case.state != CaseState.PUBLISHED:
                raise IllegalTransition("只有已公开的案例可以撤回")
            values = {"state": CaseState.WITHDRAWN.value, "updated_at": self.clock()}
            if not cases_store.update_case(conn, case_id, version, values):
                raise Conflict("该案例已被他人修改，请刷新后重试")
            fresh = cases_store.get_case(conn, case_id)
            assert fresh is not None
            return fresh

        return await self.db.write(tx)

    @staticmethod
    def _load(conn: Connection, case_id: int, version: int) -> PublicCase:
        case = cases_store.get_case(conn, case_id)
        if case is None:
            raise NotFound("案例不存在", case=case_id)
        if case.version != version:
            raise Conflict("该案例已被他人修改，请刷新后重试", current_version=case.version)
        return case

    async def get(self, actor: Actor, case_id: int) -> PublicCase:
        self._check(actor, VIEW_ROLES)
        case = await self.db.read(lambda c: cases_store.get_case(c, case_id))
        if case is None:
            raise NotFound("案例不存在", case=case_id)
        return case

    async def list_cases(
        self, actor: Actor, state: str | None, limit: int = 50, offset: int = 0
    ) -> tuple[list[PublicCase], int]:
        self._check(actor, VIEW_ROLES)
        if state is not None and state not in {s.value for s in CaseState}:
            raise InvalidInput(f"未知状态 {state}", field="state")
        return await self.db.read(lambda c: cases_store.list_cases(c, state, limit, offset))

    # -- the public -----------------------------------------------------------------------------
    async def published(self, limit: int, offset: int = 0) -> tuple[list[PublicCase], int]:
        return await self.db.read(
            lambda c: cases_store.list_cases(c, CaseState.PUBLISHED.value, limit, offset)
        )

    async def published_case(self, case_id: int) -> PublicCase:
        case = await self.db.read(lambda c: cases_store.get_case(c, case_id))
        if case is None or case.state != CaseState.PUBLISHED:
            raise NotFound("案例不存在或未公开", case=case_id)
        return case

    async def published_for_ticket(self, ticket_id: int) -> PublicCase | None:
        case = await self.db.read(lambda c: cases_store.get_case_of_ticket(c, ticket_id))
        return case if case is not None and case.state == CaseState.PUBLISHED else None

    async def public_requests(
        self,
        *,
        since: datetime,
        until: datetime,
        numbers: Sequence[str] = (),
        kinds: Sequence[str] = (),
        closed: bool | None = None,
        limit: int = 200,
    ) -> list[tuple[Ticket, PublicCase | None]]:
        """Orders as third-party apps may list them (Open311): never a confidential caller's
        or a 举报 (whose existence can expose the person who reported), each with its published
        case when there is one (the only text of the order the public may read)."""

        def tx(conn: Connection) -> list[tuple[Ticket, PublicCase | None]]:
            found = cases_store.list_public_requests(
                conn,
                since=since,
                until=until,
                numbers=numbers,
                kinds=kinds,
                open_statuses=[s.value for s in OPEN_STATUSES],
                closed=closed,
                hidden_kinds=[Kind.REPORT.value],
                limit=limit,
            )
            published = cases_store.published_by_ticket(conn, [t.id for t in found])
            return [(t, published.get(t.id)) for t in found]

        return await self.db.read(tx)
