"""The triage's writes on new orders: dispatch one it is sure about, or hold it for review.

The triage (routing/triage.py) handles a batch of orders it has just read, so these take the
order as read instead of reading it again, and write only what a new order's routing changes;
the compare-and-set (version, still new and still pending) makes a stale read or a second run
of the same job a no-op. A person's dispatch goes through TicketService.dispatch as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from tickets import clocks, stats_store, store
from tickets.core import TicketCore
from tickets.errors import InvalidInput
from tickets.model import (
    SYSTEM,
    Action,
    Assignment,
    AssignmentRole,
    AssignmentState,
    EventType,
    RouteState,
    Status,
    Ticket,
    TicketEvent,
)
from tickets.workflow import check_role, next_status


class SystemRouting(TicketCore):
    async def untriaged(self, ticket_ids: Sequence[int]) -> list[Ticket]:
        """Those of these orders still waiting for the triage (new, route_state pending), read
        in one round of queries."""
        return await self.db.read(lambda c: store.get_tickets(c, ticket_ids, untriaged=True))

    async def hold_for_review(self, ticket_id: int, suggestion: dict[str, Any]) -> bool:
        """The triage was not sure: keep the order for a dispatcher, with its suggestion.
        False when somebody already acted on the order (nothing is changed then)."""

        def tx(conn: Connection) -> tuple[bool, list[TicketEvent]]:
            now = self._now()
            if not store.set_triage(conn, ticket_id, RouteState.REVIEW.value, suggestion):
                return False, []
            ev = store.insert_event(
                conn,
                ticket_id=ticket_id,
                at=now,
                actor_role=SYSTEM.role,
                actor_id=None,
                actor_name=SYSTEM.label,
                action=EventType.TRIAGE_REVIEW,
                from_status=Status.NEW,
                to_status=Status.NEW,
                new=suggestion,
            )
            stats_store.refresh_id(conn, ticket_id, self.tz, now)  # the suggested category
            return True, [ev]

        held, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return held

    async def auto_dispatch(self, t: Ticket, lead: str, suggestion: dict[str, Any]) -> bool:
        """派单 by the system to `lead` of the new order `t` as the triage read it: the same
        result as TicketService.dispatch(SYSTEM, …) on a new order (status, assignment, sign
        and reply clocks, audit event), without reading the order again. False when the order
        is no longer new, pending and at that version (somebody acted first)."""
        if not self.directory.has_department(lead):
            raise InvalidInput(f"未知承办单位 {lead}", field="department", department=lead)
        check_role(SYSTEM.role, Action.DISPATCH)
        to_status = next_status(t.status, Action.DISPATCH)  # a new order only

        def tx(conn: Connection) -> tuple[bool, list[TicketEvent]]:
            now = self._now()
            sign_due = self.deadlines.sign_due(t.urgency, now)
            # the handling period runs from receipt (TicketService.dispatch, first dispatch)
            reply_due = t.reply_due or self.deadlines.reply_due(t.kind, t.urgency, t.created_at)
            values = {
                "status": to_status.value,
                "updated_at": now,
                "route_state": RouteState.AUTO.value,
                "suggestion": suggestion,
                "reply_due": reply_due,
            }
            if not store.update_untriaged(conn, t.id, t.version, values):
                return False, []
            role = AssignmentRole.LEAD
            assignment_id = store.insert_assignment(
                conn,
                ticket_id=t.id,
                department=lead,
                role=role,
                now=now,
                sign_due=sign_due,
                reply_due=reply_due,
            )
            assignment = Assignment(
                assignment_id, t.id, lead, role, AssignmentState.PENDING, now, sign_due, reply_due
            )
            fresh = dataclasses.replace(
                t,
                status=to_status,
                version=t.version + 1,
                updated_at=now,
                route_state=RouteState.AUTO.value,
                suggestion=suggestion,
                reply_due=reply_due,
                assignments=(assignment,),
            )
            clocks.sync(conn, fresh, now, self.deadlines, live=())  # a new order has none
            ev = store.insert_event(
                conn,
                ticket_id=t.id,
                at=now,
                actor_role=SYSTEM.role,
                actor_id=SYSTEM.user_id,
                actor_name=SYSTEM.label,
                action=Action.DISPATCH.value,
                from_status=t.status,
                to_status=to_status,
                old={"departments": []},
                new={"lead": lead, "assists": []},
            )
            stats_store.refresh(conn, fresh, self.tz, now)  # aggregates, same transaction
            return True, [ev]

        done, events = await self.db.write(tx)
        await self.publisher.publish(events)
        return done
