"""The access log: reads of personal data that are audited one by one (who, role, when, what,
which order, why, from where), and the "show number" action that writes one.

What is logged (the rule; README "Personal data"):
- a masked caller revealed in full (显示号码), always with the reason the person gives;
- a recording played (a call's or a voicemail's), an attachment fetched: every fetch;
- a confidential order's record opened (its page, GET /tickets/{id} or by number): every time.
Lists, searches and ordinary orders' pages are not logged row by row: they show a confidential
caller masked, and numbers masked to roles that do not need them, so they reveal nothing the
log would have to account for; every change to an order is in its own audit trail
(ticket_events). The log is written before the data is handed out: no entry, no data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Connection

from tickets import privacy_store as store
from tickets.access import REVEAL_ROLES, require_text
from tickets.core import TicketCore, utcnow
from tickets.db import Database
from tickets.errors import InvalidInput, RoleForbidden
from tickets.model import AccessEvent, AccessFilter, AccessKind, Actor, Caller, Ticket

REASON_MAX = 500
REASON_MIN = 2  # "回拨" is a reason; a lone character is not


class AccessLog:
    def __init__(
        self, db: Database, tickets: TicketCore, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.tickets = tickets
        self.clock = clock

    async def record(
        self,
        actor: Actor,
        kind: AccessKind,
        *,
        ticket_id: int | None = None,
        subject: str | None = None,
        reason: str | None = None,
        client: str | None = None,
    ) -> None:
        values = {
            "at": self.clock(),
            "actor_id": actor.user_id,
            "actor_name": actor.label[:100],
            "actor_role": actor.role.value,
            "department": actor.department,
            "kind": kind.value,
            "ticket_id": ticket_id,
            "subject": subject[:80] if subject else None,
            "reason": reason,
            "client": client[:64] if client else None,
        }
        await self.db.write(lambda c: store.insert_access(c, values))

    async def opened(self, actor: Actor, ticket: Ticket, client: str | None) -> None:
        """A record of the order was opened: logged when the order is confidential."""
        if ticket.caller.confidential:
            await self.record(
                actor, AccessKind.CONFIDENTIAL_OPENED, ticket_id=ticket.id, client=client
            )

    async def reveal_caller(
        self, actor: Actor, ticket_id: int, reason: str | None, client: str | None
    ) -> Caller:
        """显示号码: the caller in full, for the centre, with a reason; logged first."""
        if actor.role not in REVEAL_ROLES:
            raise RoleForbidden("当前角色无权查看来电人号码", role=actor.role.value)
        ticket = await self.tickets.get(actor, ticket_id)  # 404 for an order it may not read
        text = require_text(reason, "reason", "查看理由", REASON_MAX)
        if len(text) < REASON_MIN:
            raise InvalidInput("请写明查看号码的理由（如：回拨市民核实诉求）", field="reason")
        await self.record(
            actor, AccessKind.PHONE_REVEALED, ticket_id=ticket.id, reason=text, client=client
        )
        c = ticket.caller
        return Caller(c.name, c.phone, c.confidential)

    async def list(self, f: AccessFilter) -> tuple[list[AccessEvent], int]:
        def tx(conn: Connection) -> tuple[list[AccessEvent], int]:
            return store.list_access(conn, f), store.count_access(conn, f)

        return await self.db.read(tx)
