"""Notifications by SMS from work-order events: acknowledgement, dispatch notice, deadline
warnings and overdue notices, the reply notice and the 回访 survey."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from routing.directory import Directory
from telephony.sms import SmsService
from tickets.access import normalize_phone
from tickets.errors import DomainError, InvalidInput
from tickets.model import Actor, Channel, Role, Ticket, TicketEvent

log = logging.getLogger(__name__)

_READER = Actor(Role.SYSTEM, name="短信通知")
CLOCK_LABELS = {"sign": "签收", "reply": "办结", "revisit": "回访"}
ACK_CHANNELS = frozenset({Channel.WEB, Channel.SMS, Channel.PHONE})
NOTIFIED_ACTIONS = (
    "create",
    "dispatch",
    "deadline_warning",
    "deadline_overdue",
    "answer",
    "approve",
)


def mobile(phone: str | None) -> str | None:
    """Only mobile numbers get text messages."""
    if not phone:
        return None
    try:
        p = normalize_phone(phone)
    except InvalidInput:
        return None
    return p if len(p) == 11 and p.startswith("1") else None


class Notifier:
    def __init__(self, sms: SmsService, directory: Directory, timezone: str) -> None:
        self.sms = sms
        self.directory = directory
        self.tz = ZoneInfo(timezone)

    async def catch_up(self, hours: float = 24) -> int:
        """Notices for the events of the last hours (a crash between an order's commit and its
        notice, a lagging bus): each event's notice is queued once, so repeats cost nothing."""
        since = datetime.now(UTC) - timedelta(hours=hours)
        seen = await self.sms.tickets.events_since(since, NOTIFIED_ACTIONS)
        for ev in seen:
            try:
                await self.handle(ev)
            except Exception:  # one bad event must not stop the catch-up
                log.exception("notice catch-up for event %d failed", ev.id)
        return len(seen)

    async def run(self, events: asyncio.Queue[TicketEvent]) -> None:
        while True:
            ev = await events.get()
            try:
                await self.handle(ev)
            except Exception:  # one event's notice must not stop the others
                log.exception("notice for event %s of order %d failed", ev.action, ev.ticket_id)

    def _local(self, iso: str | None) -> str:
        if not iso:
            return ""
        return (
            datetime.fromisoformat(iso.replace("Z", "+00:00"))
            .astimezone(self.tz)
            .strftime("%m月%d日%H:%M")
        )

    async def handle(self, ev: TicketEvent) -> None:
        key = f"{ev.action}:{ev.id}"  # one notice per event, however often it is seen
        if ev.action == "create":
            t = await self._ticket(ev)
            phone = mobile(t.caller.phone) if t else None
            if t and phone and t.channel in ACK_CHANNELS:
                await self.sms.notify(phone, "ack", t, urgent=True, dedupe=f"ack:{key}")
        elif ev.action == "dispatch":
            t = await self._ticket(ev)
            if t is None:
                return
            for a in t.assignments:
                dept = self.directory.department(a.department)
                contact = mobile(dept.sms) if dept else None
                if a.active and contact and dept:
                    await self.sms.notify(
                        contact,
                        "dispatch",
                        t,
                        dedupe=f"{key}:{a.id}",
                        department=dept.name,
                        due=self._local(a.sign_due.isoformat() if a.sign_due else None),
                    )
        elif ev.action in ("deadline_warning", "deadline_overdue"):
            t = await self._ticket(ev)
            if t is None:
                return
            purpose = "warning" if ev.action == "deadline_warning" else "overdue"
            dept = self.directory.department(str(ev.new.get("department") or ""))
            to = [mobile(dept.sms) if dept else None]
            if purpose == "overdue":
                to += list(self.sms.s.supervisor_phones)
            for n, phone in enumerate(p for p in to if p):
                await self.sms.notify(
                    phone,
                    purpose,
                    t,
                    dedupe=f"{key}:{n}",
                    clock=CLOCK_LABELS.get(str(ev.new.get("clock")), ""),
                    due=self._local(ev.new.get("due_at")),
                )
        elif ev.action in ("answer", "approve"):
            # the citizen-visible answer is final: tell the caller, then ask for the rating
            t = await self._ticket(ev)
            phone = mobile(t.caller.phone) if t else None
            if t and phone:
                await self.sms.notify(phone, "reply", t, dedupe=f"reply:{key}")
                await self.sms.notify(phone, "survey", t, dedupe=f"survey:{key}")

    async def _ticket(self, ev: TicketEvent) -> Ticket | None:
        try:
            return await self.sms.tickets.get(_READER, ev.ticket_id)
        except DomainError:
            return None
