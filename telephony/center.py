"""The call centre in the main process: the workers' link server, the queue, call records,
voicemail → work order, status look-ups, outbound calls and CTI events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from telephony import outbound, retention, store
from telephony.acd import Acd, AcdError, Agent, AgentState
from telephony.config import TelephonySettings
from telephony.live import LiveCall, WorkerLink
from telephony.model import CallRecord, CtiEvent
from telephony.protocol import Link, LinkError, accept
from telephony.softphone import Conversations, softphone_uri
from telephony.standby import Standby, StandbySetup
from telephony.voicemail import VoicemailFiler
from tickets.db import Database
from tickets.errors import Conflict, DatabaseUnavailable, InvalidInput, NotFound
from tickets.model import Actor, Role, Satisfaction, Ticket
from tickets.service import TicketService

log = logging.getLogger(__name__)

# sip:user@host[:port][;params] — no URI headers (?…), nothing a dial string could smuggle in
AGENT_URI = re.compile(
    r"^sips?:[A-Za-z0-9._~+-]{1,64}@(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]+\])"
    r"(:\d{1,5})?(;[A-Za-z0-9=._-]{1,64})*$"
)
SPOOL_SWEEP_S = 60.0
SURVEY_ACTOR = Actor(Role.CITIZEN, name="市民（电话回访）")
CENTRE = Actor(Role.SYSTEM, name="呼叫中心")  # reads orders for the IVR and the survey
SURVEY_ANSWERS = {
    "1": Satisfaction.SATISFIED,
    "2": Satisfaction.BASIC,
    "3": Satisfaction.UNSATISFIED,
}


class Bus(Protocol):
    async def publish(self, events: Sequence[Any], topic: str = "tickets") -> None: ...


class RestDays(Protocol):
    def is_workday(self, day: Any) -> bool: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallCenter:
    """Everything about calls that needs more than one worker's view."""

    def __init__(
        self,
        settings: TelephonySettings,
        tickets: TicketService,
        db: Database,
        bus: Bus,
        *,
        spool: Path,
        recordings: Path,
        timezone: str = "Asia/Shanghai",
        rest_days: RestDays | None = None,
        now: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        standby: StandbySetup | None = None,
    ) -> None:
        """`standby`: one of several call-centre processes sharing the queue through a store
        (telephony/standby.py); None: the only one, with its own workers (the default)."""
        self.settings = settings
        self.tickets = tickets
        self.db = db
        self.bus = bus
        self.tz = ZoneInfo(timezone)
        self.rest_days = rest_days
        self.now = now
        self.monotonic = monotonic
        self.acd = Acd(settings.queue_timeout_s, settings.wrapup_s)
        self.calls: dict[str, LiveCall] = {}
        self.workers: dict[int, WorkerLink] = {}
        self.token = standby.token if standby else secrets.token_urlsafe(24)
        self.port = 0
        # the one process that runs the queue; a standby waits (its agents' API answers 503)
        self.active = standby is None
        self.voicemail = VoicemailFiler(tickets, db, spool, recordings, now=now)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Future[None] | None = None
        self.worker_joined = asyncio.Event()
        self.conversations = Conversations(self)
        self.standby = Standby(self, standby) if standby else None

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1") -> None:
        if self.standby is not None:  # listens once it holds the lease
            self.standby.start()
            return
        await self.voicemail.recover(live=set())
        await self.listen(host, 0)

    async def listen(self, host: str, port: int) -> None:
        """Take workers' links and run the queue."""
        self._server = await asyncio.start_server(self._on_worker, host, port, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]
        self.active = True
        self._ticker = asyncio.ensure_future(self._tick_loop())

    async def unlisten(self) -> None:
        """No more links or queue here; the workers' links close (their handlers, seeing the
        centre inactive, leave the calls to the next active centre)."""
        self.active = False
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for w in list(self.workers.values()):
            await w.link.close()

    async def stop(self) -> None:
        if self.standby is not None:
            await self.standby.stop()  # the calls go on: the next active centre takes them
        await self.unlisten()
        # each worker's handler closes its calls' records as its link ends: let them finish
        handlers = list(self._handlers)
        if handlers:
            await asyncio.wait(handlers, timeout=10)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_worker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
            me.add_done_callback(self._handlers.discard)
        hello = await accept(reader, writer, self.token)
        if hello is None:
            return
        if not self.active:
            writer.close()
            return
        index = int(hello.get("worker", -1))
        wl = WorkerLink(index, int(hello.get("pid", 0)), Link(reader, writer, self._noop))
        wl.link.handler = lambda op, args: self._handle(wl, op, args)
        try:
            if self.standby is not None:
                reports = [r for r in hello.get("calls") or [] if isinstance(r, dict)]
                await self.standby.adopt(wl, reports)
            old = self.workers.get(index)
            self.workers[index] = wl  # listed once its calls are taken over
            if old is not None:
                await old.link.close()
            self.worker_joined.set()
            log.info("SIP worker %d (pid %d) linked", index, wl.pid)
            await wl.link.run()
        except Exception:  # e.g. the database away while adopting: the worker links again
            log.exception("SIP worker %d: link failed", index)
            await wl.link.close()
        finally:
            if self.workers.get(index) is wl:
                del self.workers[index]
            await self._worker_gone(wl)

    async def _noop(self, op: str, args: dict[str, Any]) -> dict[str, Any] | None:
        return None

    async def _worker_gone(self, wl: WorkerLink) -> None:
        """A worker died or stopped: its voicemails become orders, then its calls are over.
        With a standby its link may only have dropped: the calls wait for it to link again."""
        if self.standby is not None:
            self.standby.link_lost(wl)
            return
        await self.calls_over(set(wl.calls), f"worker {wl.index}")

    async def calls_over(self, dead: set[str], where: str) -> None:
        """Calls no worker holds any more: their voicemails become orders, the records close."""
        try:
            for call, ticket in await self.voicemail.recover(live=set(self.calls) - dead):
                self._filed(call, ticket)
        except Exception:  # the spool sweep retries every minute
            log.exception("voicemail recovery after %s failed", where)
        for call in dead:
            try:
                await self._end(call, "")
            except Exception:  # one record that cannot be closed must not keep the others open
                log.exception("closing call %s of %s failed", call, where)

    # -- requests from workers ----------------------------------------------------------------
    async def _handle(self, wl: WorkerLink, op: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._serve(wl, op, args)
        finally:
            self.changed()

    def changed(self) -> None:
        """The queue, an agent or a call may have changed: a standby's store gets it soon."""
        if self.standby is not None:
            self.standby.touch()

    async def _serve(self, wl: WorkerLink, op: str, args: dict[str, Any]) -> dict[str, Any]:
        call = str(args.get("call", ""))
        if op == "offered":
            await self._offered(wl, call, args)
        elif op == "language":
            self._update(call, language=str(args.get("language", "")))
        elif op == "status":
            return {"status": await self._status(str(args["number"]), str(args.get("caller", "")))}
        elif op == "enqueue":
            return await self._enqueue(
                call, str(args.get("kind", "other")), str(args.get("path", ""))
            )
        elif op == "position":
            return {"position": self.acd.position(call)}
        elif op == "answered":
            await self._answered(call, str(args["agent"]), str(args.get("recording") or ""))
        elif op in ("ring_failed", "ring_unavailable"):
            missed = op == "ring_failed"
            self.acd.ring_failed(call, str(args["agent"]), self.monotonic(), missed=missed)
            await self._agent_event(str(args["agent"]))
        elif op == "voicemail":
            return await self._voicemail(call)
        elif op == "ringing":
            path, transfer = str(args.get("path", "")), bool(args.get("transfer"))
            await self.conversations.ringing(call, str(args["agent"]), path, transfer)
        elif op == "joined":
            await self.conversations.joined(call, str(args["agent"]))
        elif op == "left":
            await self.conversations.left(call, str(args["agent"]), bool(args.get("wrapup")))
        elif op == "conversation":
            parties = [p for p in args.get("parties", []) if isinstance(p, dict)]
            await self.conversations.conversation(call, bool(args.get("held")), parties)
        elif op == "survey_done":
            await self._survey_done(call, int(args["ticket"]), str(args.get("answer", "")))
        elif op == "ended":
            await self._end(call, str(args.get("path", "")))
        else:
            raise ValueError(f"unknown op {op!r}")
        return {}

    async def _offered(self, wl: WorkerLink, call: str, args: dict[str, Any]) -> None:
        live = self.calls.get(call)
        if live is not None:  # an outbound leg we originated: already recorded
            live.link = wl.link
            return
        rec = CallRecord(
            id=call,
            direction="in",
            purpose="intake",
            caller=str(args.get("caller", ""))[:64],
            dialled=str(args.get("dialled", ""))[:64],
            worker=wl.index,
            offered_at=self.now(),
        )
        live = self.calls[call] = LiveCall(rec, wl.link, self.monotonic())
        wl.calls.add(call)
        try:
            await self.db.write(lambda c: store.insert_call(c, rec))
        finally:
            live.stored.set()
        await self._cti("call.offered", call, caller=rec.caller)

    def _update(self, call: str, **values: Any) -> None:
        live = self.calls.get(call)
        if live is not None:
            for k, v in values.items():
                setattr(live.record, k, v)

    async def _status(self, number: str, caller: str) -> str | None:
        """A work order's status, only to the phone that submitted it (as on the web)."""
        if not number.isdigit():
            return None
        try:
            ticket = await self.tickets.track(number, caller)
        except (NotFound, InvalidInput):
            return None
        return ticket.status.value

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.tz)
        s = self.settings
        rest_day = self.rest_days is not None and not self.rest_days.is_workday(local.date())
        if s.closed_on_rest_days and rest_day:
            return False
        start = dtime.fromisoformat(s.open_from)
        hhmm = local.time()
        if s.open_until == "24:00":
            return hhmm >= start
        return start <= hhmm < dtime.fromisoformat(s.open_until)

    async def _enqueue(self, call: str, kind: str, path: str = "") -> dict[str, Any]:
        live = self.calls.get(call)
        if live is None:
            raise KeyError("unknown call")
        live.record.kind = kind
        if path:
            live.record.ivr_path = path[:400]
        if not self.is_open(self.now()):
            return {"queued": False, "reason": "closed"}
        if live.record.queued_at is None:  # queued again after a transfer: the first time counts
            live.record.queued_at = self.now()
            live.queued = self.monotonic()
        position = self.acd.position(call)  # asked again (a worker's retry after a failover)
        if position is None:
            position = self.acd.enqueue(call, kind, live.record.caller, self.monotonic())
        await self._cti("call.queued", call, caller=live.record.caller, kind=kind)
        self._match()
        return {"queued": True, "position": position}

    async def _answered(self, call: str, agent: str, recording: str) -> None:
        live = self.calls.get(call)
        if live is None:  # the call ended meanwhile: the agent is free again
            self.acd.ended(call, agent, self.monotonic())
            return
        if agent:
            self.acd.answered(call, agent, self.monotonic())
            live.agent = agent
            live.agents.add(agent)
        self._update(call, answered_at=self.now(), agent=agent or None, recording=recording or None)
        rec = live.record
        values = {"answered_at": rec.answered_at, "agent": rec.agent, "recording": rec.recording}
        await live.stored.wait()
        await self.db.write(lambda c: store.update_call(c, call, values))
        await self._cti("call.answered", call, caller=rec.caller, agent=rec.agent)
        if agent:
            await self._agent_event(agent)

    async def _voicemail(self, call: str) -> dict[str, Any]:
        ticket = await self.voicemail.file(call)
        self._filed(call, ticket)
        return {"number": ticket.number}

    def _filed(self, call: str, ticket: Ticket) -> None:
        """The call's voicemail is an order now: its record says so when it ends."""
        live = self.calls.get(call)
        if live is not None:
            live.record.ticket_id = ticket.id
            live.record.outcome = "voicemail"
            live.record.recording = ticket.attachments[0]["path"] if ticket.attachments else None

    async def _survey_done(self, call: str, ticket_id: int, answer: str) -> None:
        satisfaction = SURVEY_ANSWERS.get(answer)
        self._update(call, outcome="survey")
        if satisfaction is None:
            log.info("回访电话 %s: no answer given", call)
            return
        try:
            ticket = await self.tickets.get(CENTRE, ticket_id)
            await self.tickets.revisit(
                SURVEY_ACTOR, ticket.id, ticket.version, satisfaction, "电话回访按键"
            )
        except Exception as exc:  # the order moved on meanwhile: the answer is logged, not lost
            log.warning(
                "回访电话 %s: result %s not recorded on order %d: %s", call, answer, ticket_id, exc
            )

    async def _end(self, call: str, path: str) -> None:
        live = self.calls.pop(call, None)
        if live is None:
            return
        for wl in self.workers.values():
            wl.calls.discard(call)
        waiting = self.acd.remove(call)
        rec = live.record
        rec.ended_at = self.now()
        rec.ivr_path = (path or rec.ivr_path)[:400]
        if rec.outcome is None:
            if rec.answered_at is not None:
                rec.outcome = "answered" if rec.purpose == "intake" else rec.purpose
            elif waiting is not None:
                rec.outcome = "abandoned"
            elif rec.direction == "out":
                rec.outcome = "failed"
            else:
                rec.outcome = "ivr"
        for agent in sorted(live.agents | ({live.agent} if live.agent else set())):
            self.acd.ended(call, agent, self.monotonic())
            await self._agent_event(agent)
        await self.conversations.ended(call, live)
        values = {
            "ended_at": rec.ended_at,
            "ivr_path": rec.ivr_path,
            "outcome": rec.outcome,
            "language": rec.language,
            "kind": rec.kind,
            "queued_at": rec.queued_at,
            "ticket_id": rec.ticket_id,
            "recording": rec.recording,
        }
        await live.stored.wait()
        await self.db.write(lambda c: store.update_call(c, call, values))
        await self._cti("call.ended", call, caller=rec.caller, outcome=rec.outcome)
        self._match()

    # -- the queue ----------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        last_sweep = self.monotonic()
        while True:
            await asyncio.sleep(0.2)
            try:
                await self._tick()
                if self.standby is not None:
                    await self.standby.sweep()
                if self.monotonic() - last_sweep >= SPOOL_SWEEP_S:
                    # a voicemail whose filing failed (database away) is retried here
                    last_sweep = self.monotonic()
                    await self.voicemail.recover(live=set(self.calls))
            except DatabaseUnavailable:  # logged once per outage; the sweep comes again
                pass
            except Exception:  # the queue must keep running whatever one caller did
                log.exception("call queue tick failed")

    async def _tick(self) -> None:
        for waiting in self.acd.tick(self.monotonic()):
            live = self.calls.get(waiting.call)
            if live is not None and live.link is not None:
                # not awaited here: one slow worker must not hold up the queue for everyone
                self._spawn(self._to_voicemail(live.link, waiting.call))
        self._match()

    async def _to_voicemail(self, link: Link, call: str) -> None:
        with contextlib.suppress(LinkError):
            await link.request("voicemail", call=call)

    def _match(self) -> None:
        for offer in self.acd.offers(self.monotonic()):
            live = self.calls.get(offer.call)
            if live is None or live.link is None:
                # a call whose worker has not linked again yet (standby) is not the agent's miss
                missed = live is None
                self.acd.ring_failed(
                    offer.call, offer.agent.username, self.monotonic(), missed=missed
                )
                continue
            self._spawn(self._ring(live.link, offer.call, offer.agent))
        self.changed()

    async def _ring(self, link: Link, call: str, agent: Agent) -> None:
        await self._agent_event(agent.username)
        # call.ringing (the screen pop, the softphone's ring) follows once the worker reports
        # the agent's phone or page ringing (Conversations.ringing): a browser can answer then
        try:
            await link.request("connect", call=call, agent=agent.username, uri=agent.uri)
        except LinkError:
            self.acd.ring_failed(call, agent.username, self.monotonic())

    # -- agents (called by the web console) ---------------------------------------------------
    async def softphone_login(self, username: str, role: str = "agent") -> Agent:
        """Sign in to take calls in the browser (telephony/webrtc.py in the workers)."""
        if not self.settings.webrtc.enabled:
            raise Conflict("软电话未启用（telephony.webrtc.enabled = false），请用话机签入")
        uri = softphone_uri(username)
        agent = self._acd(lambda: self.acd.login(username, uri, self.monotonic(), role))
        await self._agent_event(username)
        return agent

    async def agent_login(self, username: str, uri: str, role: str = "agent") -> Agent:
        m = AGENT_URI.match(uri)
        if m is None:
            raise InvalidInput("坐席电话地址应为 sip:用户@主机[:端口] 形式", field="uri")
        if m.group("host").lower() not in {h.lower() for h in self.settings.agent_hosts}:
            # the queue and call-backs dial this address: only the centre's own phones
            raise InvalidInput(
                "坐席电话须在本中心的话机/注册服务器上（telephony.agent_hosts）", field="uri"
            )
        agent = self._acd(lambda: self.acd.login(username, uri, self.monotonic(), role))
        await self._agent_event(username)
        return agent

    async def agent_logout(self, username: str) -> None:
        self._acd(lambda: self.acd.logout(username))
        await self._cti("agent.state", None, agent=username, state="offline")

    async def agent_state(self, username: str, state: str, reason: str = "") -> Agent:
        try:
            wanted = AgentState(state)
        except ValueError:
            raise InvalidInput("状态只能是 available、paused 或 wrapup", field="state") from None
        agent = self._acd(lambda: self.acd.set_state(username, wanted, self.monotonic(), reason))
        await self._agent_event(username)
        self._match()
        return agent

    def _acd(self, fn: Callable[[], Agent]) -> Agent:
        try:
            return fn()
        except AcdError as exc:
            raise Conflict(str(exc)) from None
        finally:
            self.changed()

    async def _agent_event(self, username: str) -> None:
        self.changed()
        agent = self.acd.agents.get(username)
        if agent is not None:
            await self._cti(
                "agent.state",
                agent.call,
                agent=username,
                state=agent.state.value,
                reason=agent.reason,
                softphone=agent.softphone,
                wrapup_s=(
                    round(max(0.0, agent.wrapup_until - self.monotonic()), 1)
                    if agent.wrapup_until is not None
                    else None
                ),
            )

    def snapshot(self) -> dict[str, Any]:
        """The live wallboard: agents, waiting callers, calls in progress, workers."""
        now = self.monotonic()
        return {
            "agents": [
                {
                    "username": a.username,
                    "uri": a.uri,
                    "state": a.state.value,
                    "reason": a.reason,
                    "seconds": round(now - a.since, 1),
                    "call": a.call,
                    "answered": a.answered,
                }
                for a in sorted(self.acd.agents.values(), key=lambda a: a.username)
            ],
            "waiting": [
                {
                    "call": w.call,
                    "kind": w.kind,
                    "caller": w.caller,
                    "seconds": round(now - w.queued_at, 1),
                    "ringing": w.ringing,
                }
                for w in self.acd.waiting.values()
            ],
            "calls": len(self.calls),
            "workers": [
                {"index": w.index, "pid": w.pid, "calls": len(w.calls)}
                for w in sorted(self.workers.values(), key=lambda w: w.index)
            ],
        }

    # -- outbound -----------------------------------------------------------------------------
    async def originate(self, username: str, ticket: Ticket, purpose: str) -> str:
        """A call-back or a 回访 survey call to the phone of this work order, and only that."""
        return await outbound.originate(self, username, ticket, purpose)

    async def link_ticket(self, call_id: str, ticket_id: int, agent: str) -> bool:
        """The order an agent registered for the call they took: the call record points at it.
        Only the agent who answered may link it (False otherwise, or for an unknown call)."""
        rec = await self.db.read(lambda c: store.get_call(c, call_id))
        if rec is None or rec.agent != agent or rec.ticket_id is not None:
            return False
        live = self.calls.get(call_id)
        if live is not None:
            live.record.ticket_id = ticket_id
        values = {"ticket_id": ticket_id}
        return bool(await self.db.write(partial(store.update_call, call_id=call_id, values=values)))

    # -- reading ------------------------------------------------------------------------------
    async def list_calls(self, **filters: Any) -> list[CallRecord]:
        return await self.db.read(lambda c: store.list_calls(c, **filters))

    async def purge_recordings(self, limit: int = 500) -> int:
        """Delete recordings older than the retention period (the call record stays); the
        same rule as `hotline purge` (telephony/retention.py)."""
        now = self.now()
        before = now - timedelta(days=self.settings.recording_retention_days)
        return await asyncio.to_thread(
            retention.purge_recordings, self.db, before, now, limit=limit
        )

    async def _cti(self, type_: str, call: str | None, **data: Any) -> CtiEvent:
        caller = data.pop("caller", None)
        agent = data.pop("agent", None)
        ev = CtiEvent(type_, self.now(), call=call, caller=caller, agent=agent, data=data)
        await self.bus.publish([ev], topic="cti")
        return ev
