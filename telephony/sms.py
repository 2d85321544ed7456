"""The SMS channel: incoming messages become orders, supplements or survey answers; outgoing
ones go through a durable outbox to the gateway (Kannel), in order, retried, reported."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy.engine import Connection

from telephony import sms_store as store
from telephony.config import SmsSettings
from tickets.access import mask_phone, normalize_phone
from tickets.db import Database
from tickets.errors import DatabaseUnavailable, DomainError, InvalidInput, VersionConflict
from tickets.model import (
    CITIZEN,
    Actor,
    Caller,
    Channel,
    NewTicket,
    Role,
    Satisfaction,
    Status,
    Ticket,
    TicketFilter,
)
from tickets.service import TicketService
from tickets.workflow import IN_HAND

log = logging.getLogger(__name__)

MAX_MT_CHARS = 670
SEND_CONCURRENCY = 8  # sendsms requests in flight (different recipients)
SEND_LEASE = timedelta(minutes=2)  # a claimed message is due again after this
PENDING_STALE = timedelta(minutes=5)  # an incoming message still "pending" this long: retry
ORDER_NUMBER = re.compile(r"(?<!\d)(\d{14})(?!\d)")
SURVEY_WORDS = {
    "1": Satisfaction.SATISFIED,
    "满意": Satisfaction.SATISFIED,
    "2": Satisfaction.BASIC,
    "基本满意": Satisfaction.BASIC,
    "3": Satisfaction.UNSATISFIED,
    "不满意": Satisfaction.UNSATISFIED,
}
STOP_WORDS = {"TD", "T", "STOP", "退订", "N"}
OPEN = IN_HAND  # the orders an SMS from the same citizen can add to (市民补充)
_CENTRE = Actor(Role.SYSTEM, name="短信接入")  # reads orders on the citizen's behalf
CITIZEN_PURPOSES = frozenset({"ack", "supplement", "reply", "survey", "survey_thanks", "stopped"})
CAP_PERIOD = timedelta(hours=24)  # [sms] citizen_texts_per_day counts texts within this


class TooLong(InvalidInput):
    """A message over the configured length (HTTP 413)."""

    code = "message_too_long"


@dataclass(frozen=True)
class Incoming:
    sender: str
    receiver: str
    text: str
    key: str  # the gateway's message id, or a digest of sender + time + text


@dataclass(frozen=True)
class Outcome:
    handled_as: str  # new | supplement | survey | stop | blocked | limited | duplicate
    ticket: Ticket | None = None


class SendError(Exception):
    """The gateway did not take the message; `permanent` ones are not retried."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Gateway(Protocol):
    async def send(self, msg_id: int, recipient: str, text: str) -> None: ...


class KannelGateway:
    """Kannel's sendsms: UTF-8 in, sent as UCS-2 (coding=2), split and concatenated by Kannel,
    delivery reports to dlr_url with our message id."""

    def __init__(self, settings: SmsSettings, dlr_url: str, session: aiohttp.ClientSession):
        self.s = settings
        self.dlr_url = dlr_url
        self.session = session
        self.token = f"&token={settings.gateway_token}" if settings.gateway_token else ""

    async def send(self, msg_id: int, recipient: str, text: str) -> None:
        s = self.s
        params = {
            "username": s.username,
            "password": s.password,
            "from": s.sender,
            "to": recipient,
            "text": text,
            "charset": "UTF-8",
            "coding": "2",
            "dlr-mask": "31",
            # Kannel fills %d (report type) and %T (time) when it calls back
            "dlr-url": f"{self.dlr_url}?id={msg_id}&type=%d&ts=%T{self.token}",
        }
        try:
            async with asyncio.timeout(s.send_timeout_s):
                async with self.session.get(s.sendsms_url, params=params) as resp:
                    body = (await resp.text())[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SendError(f"网关不可达: {type(exc).__name__} {exc}") from None
        if resp.status in (200, 202):
            return
        # 4xx: Kannel refused this message (bad number, denied): retrying will not help
        raise SendError(f"网关拒绝 HTTP {resp.status}: {body}", permanent=400 <= resp.status < 500)


def digest_key(sender: str, receiver: str, text: str, at: datetime) -> str:
    """A key for gateways without message ids: same sender, text and minute → same message."""
    raw = f"{sender}|{receiver}|{text}|{at.strftime('%Y%m%d%H%M')}"
    return "sha:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def clean_text(text: str) -> str:
    return " ".join(text.replace("\u3000", " ").split())


class SmsService:
    def __init__(
        self,
        settings: SmsSettings,
        db: Database,
        tickets: TicketService,
        *,
        public_url: str,
        timezone: str = "Asia/Shanghai",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.s = settings
        self.db = db
        self.tickets = tickets
        self.public_url = public_url.rstrip("/")
        self.tz = ZoneInfo(timezone)
        self.now = now
        self.wake = asyncio.Event()

    # -- incoming -----------------------------------------------------------------------------
    def parse(self, sender: str, receiver: str, text: str, gateway_id: str | None) -> Incoming:
        """Check an incoming message; InvalidInput (4xx) for what cannot be a citizen's SMS."""
        try:
            phone = normalize_phone(sender)
        except InvalidInput:
            raise InvalidInput("发送号码无效", field="from") from None
        text = clean_text(text)
        if not text:
            raise InvalidInput("短信内容为空", field="text")
        if len(text) > self.s.max_text_chars:
            raise TooLong(f"短信过长（最多 {self.s.max_text_chars} 字）", field="text")
        key = f"gw:{gateway_id}" if gateway_id else digest_key(phone, receiver, text, self.now())
        return Incoming(phone, receiver.strip()[:32], text, key[:120])

    async def receive(self, msg: Incoming) -> Outcome:
        """Durable before it returns: the gateway may then forget the message. The inbox row
        is written first (pending): a redelivery, concurrent or later, finds it and does
        nothing, unless the first handling died (then it is taken over after a while)."""
        now = self.now()
        phone = msg.sender
        blocked, recent = await self.db.read(
            lambda c: (store.is_blocked(c, phone), store.count_from(c, phone, store.hour_ago(now)))
        )
        row = {
            "key": msg.key,
            "sender": phone,
            "receiver": msg.receiver,
            "text": msg.text,
            "received_at": now,
            "handled_as": "pending",
            "ticket_id": None,
        }
        if not await self.db.write(lambda c: store.insert_inbox(c, row)):
            known = await self.db.read(lambda c: store.get_inbox(c, msg.key))
            stale = known is not None and known[0] == "pending" and now - known[1] > PENDING_STALE
            if not stale or known is None:
                return Outcome("duplicate")
            seen = known[1]
            if not await self.db.write(lambda c: store.take_over_inbox(c, msg.key, seen, now)):
                return Outcome("duplicate")
        outcome: Outcome
        if blocked:
            outcome = Outcome("blocked")
        elif recent >= self.s.per_number_per_hour:
            outcome = Outcome("limited")
        elif msg.text.upper() in STOP_WORDS:
            await self.db.write(lambda c: store.opt_out(c, phone, now))
            outcome = Outcome("stop")
        else:
            outcome = await self._route(msg)
        ticket_id = outcome.ticket.id if outcome.ticket else None
        await self.db.write(lambda c: store.finish_inbox(c, msg.key, outcome.handled_as, ticket_id))
        log.info("SMS from %s: %s", mask_phone(phone), outcome.handled_as)
        if outcome.handled_as == "stop":
            await self.notify(phone, "stopped", None, urgent=True)
        return outcome

    async def receive_signed(self, msg: Incoming, signature: str) -> Outcome | None:
        """A message from the signed webhook, the signature already checked: None when that
        signature was taken before (a replayed request). Signatures are kept two windows,
        long enough to outlive every request their timestamps let in."""
        now = self.now()
        sig = signature.strip().lower()
        keep = timedelta(seconds=2 * self.s.webhook_window_s)
        first = await self.db.write(
            partial(store.remember_signature, signature=sig, now=now, forget_before=now - keep)
        )
        if not first:
            log.warning("SMS webhook: replayed request from %s refused", mask_phone(msg.sender))
            return None
        try:
            return await self.receive(msg)
        except Exception:
            # not taken: the provider's retry of this very request must still get in
            try:
                await self.db.write(lambda c: store.forget_signature(c, sig))
            except Exception:
                log.exception("SMS webhook: could not forget signature of a failed request")
            raise

    async def _route(self, msg: Incoming) -> Outcome:
        phone = msg.sender
        since = self.now() - timedelta(days=self.s.survey_days)
        answer = SURVEY_WORDS.get(msg.text.strip("。.! ！"))
        if answer is not None:
            ticket_id = await self.db.read(lambda c: store.last_survey(c, phone, since))
            if ticket_id is not None:
                done = await self._survey(ticket_id, answer)
                if done is not None:
                    return Outcome("survey", done)
        quoted = ORDER_NUMBER.search(msg.text)
        target: Ticket | None = None
        if quoted:
            try:
                target = await self.tickets.track(quoted.group(1), phone)
            except DomainError:
                target = None
        if target is None:
            mine, _ = await self.tickets.list_tickets(_CENTRE, _filter(phone))
            target = next((t for t in mine if t.status in OPEN), None)
        for _ in range(3):  # someone may change the order meanwhile: read it again and retry
            if target is None or target.status not in OPEN:
                break
            try:
                t = await self.tickets.supplement(CITIZEN, target.id, target.version, msg.text)
            except VersionConflict:
                target = await self.tickets.get(_CENTRE, target.id)
                continue
            except DomainError as exc:  # closed meanwhile: a new order then
                log.info("supplement to %s refused (%s); new order", target.number, exc)
                break
            await self.notify(phone, "supplement", t)
            return Outcome("supplement", t)
        ticket = await self.tickets.submit(
            NewTicket(
                channel=Channel.SMS,
                content=msg.text,
                caller=Caller(phone=phone),
                intake_key=f"sms:{msg.key}",
            )
        )
        return Outcome("new", ticket)

    async def _survey(self, ticket_id: int, answer: Satisfaction) -> Ticket | None:
        try:
            t = await self.tickets.get(_CENTRE, ticket_id)
            if t.status not in (Status.ANSWERED, Status.REVIEWED):
                return None
            done = await self.tickets.revisit(CITIZEN, t.id, t.version, answer, "短信回访")
        except DomainError as exc:
            log.info("survey answer for order %d not recorded: %s", ticket_id, exc)
            return None
        if done.caller.phone:
            await self.notify(done.caller.phone, "survey_thanks", done)
        return done

    # -- outgoing -----------------------------------------------------------------------------
    def render(
        self, purpose: str, ticket: Ticket | None, template: str | None = None, **extra: str
    ) -> str:
        """The text of a notice; `template` names another template than the purpose's own."""
        key = template or purpose
        mn = ticket is not None and ticket.language == "mn-Mong" and purpose in CITIZEN_PURPOSES
        text_of = (self.s.templates_mn.get(key) if mn else None) or self.s.templates[key]
        values = {
            "number": ticket.number if ticket else "",
            "link": f"{self.public_url}/track?number={ticket.number}" if ticket else "",
            "title": (ticket.title or ticket.content[:20]) if ticket else "",
            "department": "",
            "due": "",
            "clock": "",
            "count": "",
            "numbers": "",
            **extra,
        }
        text = text_of.format(**values)
        # Kannel sends at most max-messages parts (10 × 67 UCS-2 characters) and silently cuts
        # the rest: cut it here, visibly
        return text if len(text) <= MAX_MT_CHARS else text[: MAX_MT_CHARS - 1] + "…"

    def in_quiet_hours(self, at: datetime) -> datetime | None:
        """When quiet hours end, if `at` falls in them (local time)."""
        local = at.astimezone(self.tz)
        start = dtime.fromisoformat(self.s.quiet_from)
        end = dtime.fromisoformat(self.s.quiet_until)
        t = local.time()
        quiet = (start <= t or t < end) if start > end else (start <= t < end)
        if not quiet:
            return None
        day = local.date() if t < end else local.date() + timedelta(days=1)
        return datetime.combine(day, end, self.tz).astimezone(UTC)

    async def notify(
        self,
        recipient: str,
        purpose: str,
        ticket: Ticket | None,
        *,
        urgent: bool = False,
        dedupe: str | None = None,
        **extra: str,
    ) -> int | None:
        """Put one message in the outbox (None: not queued — opted out, or already queued)."""
        now = self.now()
        if purpose == "survey" and await self.db.read(lambda c: store.is_opted_out(c, recipient)):
            return None
        text = self.render(purpose, ticket, **extra)
        next_at = now
        if purpose in CITIZEN_PURPOSES and not urgent:
            next_at = self.in_quiet_hours(now) or now
        row: dict[str, Any] = {
            "recipient": recipient,
            "text": text,
            "purpose": purpose,
            "ticket_id": ticket.id if ticket else None,
            "status": "queued" if self.s.backend != "outbox" else "kept",
            "attempts": 0,
            "next_at": next_at,
            "created_at": now,
            "dedupe": dedupe,
        }
        if purpose in CITIZEN_PURPOSES:
            msg_id = await self.db.write(partial(self._enqueue_for_citizen, row=row, ticket=ticket))
        else:  # staff notices: each is work for someone, never folded or capped
            msg_id = await self.db.write(lambda c: store.enqueue(c, row))
        self.wake.set()
        return msg_id

    def _enqueue_for_citizen(
        self, conn: Connection, row: dict[str, Any], ticket: Ticket | None
    ) -> int | None:
        """Queue a citizen's notice under the number's lock (one decision at a time across
        threads and processes): an acknowledgement is folded into the number's open one, or
        opens the next window; past the daily cap the text is kept as "limited"."""
        recipient, now = row["recipient"], row["created_at"]
        store.lock_recipient(conn, recipient, now)
        if row["dedupe"] is not None and store.dedupe_taken(conn, row["dedupe"]):
            return None  # this event's notice exists (perhaps folded): once is enough
        window = timedelta(seconds=self.s.ack_window_s)
        if row["purpose"] == "ack" and window and ticket is not None:
            last = store.last_ack_carrier(conn, recipient)
            if last is not None and last.fold_until is not None and now < last.fold_until:
                if store.hold_unsent(conn, last.id):
                    msg_id = store.enqueue(
                        conn, {**row, "status": "folded", "next_at": None, "folded_into": last.id}
                    )
                    numbers = store.carried_numbers(conn, last.id)
                    store.set_text(conn, last.id, self._folded_ack(ticket, numbers))
                    return msg_id
                # a sender has the window's text already: this one opens the next window
                row = {**row, "next_at": last.fold_until, "fold_until": last.fold_until + window}
            else:
                row = {**row, "fold_until": row["next_at"] + window}
        cap = self.s.citizen_texts_per_day
        if store.count_texts_to(conn, recipient, CITIZEN_PURPOSES, now - CAP_PERIOD) >= cap:
            log.warning("SMS to %s over the daily cap: kept, not sent", mask_phone(recipient))
            row = {
                **row,
                "status": "limited",
                "next_at": None,
                "fold_until": None,
                "last_error": f"超出每个号码 24 小时 {cap} 条的上限，未发送",
            }
        return store.enqueue(conn, row)

    def _folded_ack(self, ticket: Ticket, numbers: list[str]) -> str:
        """One acknowledgement for several orders: the first numbers and how many in all."""
        if len(numbers) == 1:
            return self.render("ack", ticket)
        shown = numbers[: self.s.ack_fold_max_numbers]
        mn = ticket.language == "mn-Mong"
        listed = (", " if mn else "、").join(shown)
        if len(shown) < len(numbers):
            listed += f" … ({len(numbers)})" if mn else f"等{len(numbers)}件"
        return self.render(
            "ack",
            ticket,
            template="ack_folded",
            count=str(len(numbers)),
            numbers=listed,
            link=f"{self.public_url}/track",
        )

    async def send_due(self, gateway: Gateway, limit: int = 50) -> int:
        """One pass of the sender: each recipient's oldest due message (so at most one per
        recipient is in flight, keeping their order), SEND_CONCURRENCY at a time."""
        now = self.now()
        batch = await self.db.read(lambda c: store.due(c, now, limit))
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def one(msg: store.Outgoing) -> bool:
            text = await self.db.write(
                partial(store.claim, msg_id=msg.id, now=now, lease=SEND_LEASE)
            )
            if text is None:  # another sender took it
                return False
            async with gate:
                try:
                    # the text as claimed: acknowledgements folded in since it was read count
                    await gateway.send(msg.id, msg.recipient, text)
                except SendError as exc:
                    await self._failed(msg, exc, now)
                    return False
            values = {
                "status": "sent",
                "attempts": msg.attempts + 1,
                "sent_at": now,
                "next_at": None,
                "last_error": None,
            }
            await self.db.write(partial(store.update_outbox, msg_id=msg.id, values=values))
            return True

        return sum(await asyncio.gather(*(one(m) for m in batch)))

    async def _failed(self, msg: store.Outgoing, exc: SendError, now: datetime) -> None:
        attempts = msg.attempts + 1
        final = exc.permanent or attempts >= self.s.max_attempts
        delay = min(self.s.retry_max_s, self.s.retry_base_s * 2 ** (attempts - 1))
        values: dict[str, Any] = {
            "status": "failed" if final else "queued",
            "attempts": attempts,
            "last_error": str(exc)[:300],
            "next_at": None if final else now + timedelta(seconds=delay),
        }
        if final:
            log.error("SMS %d to %s failed for good: %s", msg.id, mask_phone(msg.recipient), exc)
        await self.db.write(partial(store.update_outbox, msg_id=msg.id, values=values))

    async def run_sender(self, gateway: Gateway) -> None:
        while True:
            try:
                while await self.send_due(gateway):
                    pass
            except DatabaseUnavailable:  # logged once per outage by the database
                pass
            except Exception:  # keep the sender alive whatever one pass met
                log.exception("SMS sender pass failed")
            self.wake.clear()
            try:
                async with asyncio.timeout(self.s.poll_interval_s):
                    await self.wake.wait()
            except TimeoutError:
                pass

    async def delivery_report(self, msg_id: int, report: int) -> bool:
        """Kannel's DLR types: 1 delivered, 2 failed, 4 buffered, 8 submitted, 16 rejected."""
        now = self.now()
        msg = await self.db.read(lambda c: store.get_outbox(c, msg_id))
        if msg is None:
            return False
        values: dict[str, Any] = {}
        if report & 1:
            values = {"status": "delivered", "delivered_at": now}
        elif report & (2 | 16):
            values = {"status": "failed", "last_error": f"投递失败（状态报告 {report}）"}
        if values:
            await self.db.write(lambda c: store.report_delivery(c, msg_id, values))
        return True

    # -- reading and block list -----------------------------------------------------------------
    async def outbox(self, **filters: Any) -> list[store.Outgoing]:
        return await self.db.read(lambda c: store.list_outbox(c, **filters))

    async def block(self, phone: str, reason: str) -> None:
        phone = normalize_phone(phone)
        now = self.now()
        await self.db.write(lambda c: store.block(c, phone, reason, now))

    async def unblock(self, phone: str) -> bool:
        phone = normalize_phone(phone)
        return bool(await self.db.write(lambda c: store.unblock(c, phone)))

    async def blocked(self) -> list[tuple[str, str, datetime]]:
        return await self.db.read(store.list_blocked)


def _filter(phone: str) -> TicketFilter:
    return TicketFilter(phone=phone, limit=20)
