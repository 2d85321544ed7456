"""Notifications by SMS from work-order events: acknowledgement, dispatch notice, deadline
warnings and overdue notices, the reply notice and the 回访 survey.

Driven by the durable work queue (tickets/outbox.py, topic "notice"): each event that calls
for a notice has a job written in its own transaction, so no notice is lost to a crash, a
lagging bus or an outage, and none needs a catch-up at start. A job done twice is harmless:
each notice carries a dedupe key made of the event, and the outbox keeps one per key."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from routing.directory import Directory
from telephony.sms import SmsService
from tickets.access import normalize_phone
from tickets.errors import DomainError, InvalidInput
from tickets.model import Actor, Channel, Role, Ticket, TicketEvent
from tickets.outbox import EVENT_TOPICS, NOTICE, Job, JobQueue, consume

log = logging.getLogger(__name__)

_READER = Actor(Role.SYSTEM, name="短信通知")
CLOCK_LABELS = {"sign": "签收", "reply": "办结", "revisit": "回访"}
ACK_CHANNELS = frozenset({Channel.WEB, Channel.SMS, Channel.PHONE})
NOTIFIED_ACTIONS = EVENT_TOPICS[NOTICE] or frozenset()  # the events that enqueue a notice job
BATCH = 200  # events per claim: one read of the events, one of their orders


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

    async def handle_jobs(self, jobs: list[Job]) -> dict[int, str]:
        """The notices of a claimed batch of events; returns {job id: error} to retry."""
        wanted = {int(j.payload["event_id"]) for j in jobs if "event_id" in j.payload}
        events = await self.sms.tickets.events_by_id(sorted(wanted))
        orders = await self.sms.tickets.get_many(sorted({ev.ticket_id for ev in events}))
        done = await asyncio.gather(
            *(self.handle(ev, orders.get(ev.ticket_id)) for ev in events),
            return_exceptions=True,
        )
        errors: dict[int, str] = {}
        for ev, result in zip(events, done, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                errors[ev.id] = f"{type(result).__name__}: {result}"
                log.debug("notice for event %d failed, will retry: %s", ev.id, result)
        return {
            j.id: errors[j.payload["event_id"]] for j in jobs if j.payload.get("event_id") in errors
        }

    async def run(self, queue: JobQueue, wake: asyncio.Event | None = None) -> None:
        """Make the notices of every event from the durable queue, forever."""
        await consume(queue, self.handle_jobs, batch=BATCH, wake=wake)

    def _local(self, iso: str | None) -> str:
        if not iso:
            return ""
        return (
            datetime.fromisoformat(iso.replace("Z", "+00:00"))
            .astimezone(self.tz)
            .strftime("%m月%d日%H:%M")
        )

    async def handle(self, ev: TicketEvent, ticket: Ticket | None = None) -> None:
        """The notices `ev` calls for (`ticket`: its order, if already read)."""
        key = f"{ev.action}:{ev.id}"  # one notice per event, however often it is seen
        if ticket is not None:
            t: Ticket | None = ticket
        elif ev.action in NOTIFIED_ACTIONS:
            t = await self._ticket(ev)
        else:
            return
        if ev.action == "create":
            phone = mobile(t.caller.phone) if t else None
            if t and phone and t.channel in ACK_CHANNELS:
                await self.sms.notify(phone, "ack", t, urgent=True, dedupe=f"ack:{key}")
        elif ev.action == "dispatch":
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
            phone = mobile(t.caller.phone) if t else None
            if t and phone:
                await self.sms.notify(phone, "reply", t, dedupe=f"reply:{key}")
                await self.sms.notify(phone, "survey", t, dedupe=f"survey:{key}")

    async def _ticket(self, ev: TicketEvent) -> Ticket | None:
        try:
            return await self.sms.tickets.get(_READER, ev.ticket_id)
        except DomainError:
            return None
