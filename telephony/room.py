"""One caller's conversation with agents in a SIP worker: who hears whom on the bridge, hold with
music, consultation and transfer between agents, a three-way call with a department's phone, and
keys sent to the far end. Agents are desk phones (`Leg`) or browsers (`PortLeg` + `BrowserPeer`).

A room is the caller plus parties. The rule for audio is one line: every party that is up hears
every other; the caller hears them too unless held, and then hears music instead."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from telephony.sip import Leg, Recording, SipError, connect, disconnect
from telephony.sip_port import PortLeg
from telephony.webrtc import BrowserPeer, MediaThread, WebRtcError

if TYPE_CHECKING:
    from telephony.config import WebRtcSettings
    from telephony.ivr import Session

log = logging.getLogger(__name__)

SOFTPHONE = "webrtc:"  # an agent signed in with the browser softphone: uri = "webrtc:<username>"


def is_softphone(uri: str) -> bool:
    return uri.startswith(SOFTPHONE)


class Kind(StrEnum):
    AGENT = "agent"
    PHONE = "phone"  # a department's phone in a three-way call


class Role(StrEnum):
    PRIMARY = "primary"  # the agent the caller is with
    CONSULT = "consult"  # asked by the primary agent, the caller on hold (attended transfer)
    CONFERENCE = "conference"  # a third party everyone hears (三方通话)


class State(StrEnum):
    RINGING = "ringing"
    ANSWERING = "answering"  # a browser's offer is answered; audio not yet up
    UP = "up"
    GONE = "gone"


class End(StrEnum):
    """How a party left: the centre turns each into the agent's next state."""

    MISSED = "missed"  # rang and was not answered (or declined)
    UNAVAILABLE = "unavailable"  # could not be rung from here
    CANCELLED = "cancelled"  # the consulting agent took the request back
    LEFT = "left"  # talked, then hung up or was transferred away


class Ports(Protocol):
    """The SIP stack's part a room needs for browser agents."""

    def create_port(self, name: str, push: Any, pull: Any) -> PortLeg: ...
    def retire_port(self, port: PortLeg) -> None: ...


@dataclass
class Browsers:
    """What a worker lends its rooms for browser agents."""

    settings: WebRtcSettings
    media: MediaThread
    ports: Ports


class ControlError(Exception):
    """A control the conversation cannot do now; the message is for the agent."""


_ids = itertools.count(1)


@dataclass(eq=False)
class Party:
    kind: Kind
    name: str  # agent user name, or department code
    label: str
    role: Role
    uri: str
    id: str = field(default_factory=lambda: f"p{next(_ids)}")
    state: State = State.RINGING
    end: End | None = None
    leg: Leg | None = None
    port: PortLeg | None = None
    peer: BrowserPeer | None = None
    deadline: float = 0.0
    was_up: bool = False
    room: Room | None = None
    # a browser agent in the call whose audio went (the page reloaded, the network dropped):
    # the party stays until then, for the page to come back with a new offer (Room.answer)
    media_lost_until: float | None = None

    @property
    def endpoint(self) -> Leg | PortLeg | None:
        return self.leg if self.leg is not None else self.port

    @property
    def alive(self) -> bool:
        return self.state is not State.GONE

    # events from the worker (SIP legs) and from the media thread (browser peers)
    def leg_up(self, leg: Leg) -> None:
        if leg is self.leg and self.state in (State.RINGING, State.ANSWERING):
            self._up()

    def leg_gone(self, leg: Leg) -> None:
        if leg is self.leg:
            self.finish(End.LEFT if self.was_up else End.MISSED)

    def peer_state(self, state: str, peer: BrowserPeer | None = None) -> None:
        if peer is not None and peer is not self.peer:
            return  # a peer this party has replaced (the page came back with a new one)
        if state == "connected":
            if self.state is State.ANSWERING:
                self._up()
            elif self.media_lost_until is not None:
                self.media_lost_until = None
                if self.room is not None:
                    self.room.changed(None)
        elif state in ("failed", "closed") and self.alive:
            room = self.room
            if self.state is not State.UP or room is None or room.media_grace_s <= 0:
                self.finish(End.LEFT if self.was_up else End.MISSED)
            elif self.media_lost_until is None:
                self.media_lost_until = room.now() + room.media_grace_s
                log.info("call %s: %s's browser audio lost", room.s.call, self.name)
                room.changed(None)

    # the media port's callbacks (pjmedia's clock thread): through whichever peer is current
    def push(self, pcm: bytes) -> None:
        peer = self.peer
        if peer is not None:
            peer.push(pcm)

    def pull(self) -> bytes | None:
        peer = self.peer
        return peer.pull() if peer is not None else None

    def _up(self) -> None:
        self.state = State.UP
        if self.room is not None:
            self.room.changed(("up", self))

    def finish(self, end: End) -> None:
        """Leave the room (idempotent): hang up or close whatever this party holds."""
        if not self.alive:
            return
        self.state = State.GONE
        self.end = end
        if self.leg is not None:
            self.leg.hangup()
        if self.room is not None:
            self.room.changed(("gone", self))

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "name": self.name,
            "label": self.label,
            "role": self.role.value,
            "state": self.state.value,
            "softphone": is_softphone(self.uri),
        }


class Room:
    """The conversation after the queue rang its first agent; `run` returns how it ended."""

    def __init__(self, session: Session, browsers: Browsers | None) -> None:
        self.s = session
        self.browsers = browsers
        self.parties: list[Party] = []
        self.held = False
        self.requeue = False  # a blind transfer: if its target fails the caller queues again
        self.recording: Recording | None = None
        self._edges: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._events: list[tuple[str, Party]] = []
        self._wake = asyncio.Event()
        self._moh = False
        self._talked = False
        self._dirty = False
        self._consult_hold = False
        self._loop = asyncio.get_running_loop()
        # how long a talking browser agent whose audio went may take to come back
        self.media_grace_s = browsers.settings.reconnect_grace_s if browsers is not None else 0.0

    def now(self) -> float:
        return self._loop.time()

    # -- parties --------------------------------------------------------------------------------
    def agent(self, name: str, *states: State) -> Party | None:
        for p in self.parties:
            if p.kind is Kind.AGENT and p.name == name and (not states or p.state in states):
                return p
        return None

    def ring(self, kind: Kind, name: str, uri: str, role: Role, label: str = "") -> Party:
        party = Party(kind, name, label or name, role, uri, room=self)
        self.parties.append(party)
        wait = self.s.settings.ring_agent_s if kind is Kind.AGENT else 60.0
        party.deadline = self._loop.time() + wait
        self.changed(("ringing", party))
        if is_softphone(uri):
            if self.browsers is None or not self.browsers.settings.enabled:
                party.finish(End.UNAVAILABLE)
            return party  # the agent's browser answers with an offer (`answer`)
        try:
            leg = self.s.dialer.call(uri)
        except SipError as exc:
            log.warning("call %s: cannot ring %s: %s", self.s.call, name, exc)
            party.finish(End.UNAVAILABLE)
            return party
        leg.owner = party
        party.leg = leg
        return party

    async def answer(self, name: str, offer_sdp: str) -> str:
        """A ringing browser agent answered: its offer in, the answer out; audio follows. From
        an agent already talking (its page reloaded or reconnected), the offer replaces the
        call's audio with the page's new peer."""
        up = self.agent(name, State.UP)
        if up is not None and is_softphone(up.uri) and self.browsers is not None:
            return await self._resume(up, offer_sdp)
        party = self.agent(name, State.RINGING, State.ANSWERING)
        if party is None or party.peer is not None or not is_softphone(party.uri):
            raise ControlError("该来电已不再呼叫您")
        if self.browsers is None:
            raise ControlError("软电话未启用")
        b = self.browsers
        if party.state is State.RINGING:
            self._pick_up(party)
        peer = self._peer(party)
        # the port first: the peer may connect before its answer is even back in the browser
        party.port = b.ports.create_port(f"agent-{name}", party.push, party.pull)
        try:
            answer = await peer.answer(offer_sdp)
        except WebRtcError as exc:
            party.finish(End.UNAVAILABLE)
            raise ControlError(str(exc)) from None
        if not party.alive:  # hung up or timed out meanwhile
            raise ControlError("该来电已结束")
        return answer

    def _peer(self, party: Party) -> BrowserPeer:
        """A new browser peer for `party`, now its current one; its state reports name it."""
        assert self.browsers is not None
        peer: BrowserPeer | None = None

        def report(state: str) -> None:
            party.peer_state(state, peer)

        peer = BrowserPeer(self.browsers.settings, self.browsers.media, report)
        party.peer = peer
        return peer

    async def _resume(self, party: Party, offer_sdp: str) -> str:
        """The agent's page is back during the call: its new peer takes over the media port
        (the mixing stays as it is); the old one, if still open, is closed."""
        old = party.peer
        peer = self._peer(party)
        if old is not None:
            await old.stop()
        try:
            answer = await peer.answer(offer_sdp)
        except WebRtcError as exc:
            raise ControlError(str(exc)) from None  # the lost audio's grace still runs
        if not party.alive:
            raise ControlError("该来电已结束")
        log.info("call %s: %s's browser audio resumed", self.s.call, party.name)
        return answer

    def _pick_up(self, party: Party) -> None:
        """The agent clicked 接听: the ring stops counting; the browser's offer has
        answer_timeout_s to arrive and its audio to flow (a microphone to open, ICE to gather)."""
        party.state = State.ANSWERING
        wait = self.browsers.settings.answer_timeout_s if self.browsers else 20.0
        party.deadline = self._loop.time() + wait
        self.changed(None)

    # -- controls from the agents ---------------------------------------------------------------
    def control(self, agent: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        me = self.agent(agent, State.UP)
        if op == "pickup":
            ringing = self.agent(agent, State.RINGING)
            if ringing is None or not is_softphone(ringing.uri):
                raise ControlError("该来电已不再呼叫您")
            self._pick_up(ringing)
            return {}
        if op == "decline":
            ringing = self.agent(agent, State.RINGING, State.ANSWERING)
            if ringing is None:
                raise ControlError("没有正在振铃的来电")
            ringing.finish(End.MISSED)
            return {}
        if me is None:
            raise ControlError("您不在这通电话中")
        if op == "hangup":
            self._leave(me)
        elif op in ("hold", "unhold"):
            if me.role is not Role.PRIMARY:
                raise ControlError("只有接听坐席可以保持或恢复通话")
            if op == "unhold" and self._consulting():
                raise ControlError("请先完成或取消咨询转接")
            self.held = op == "hold"
            self.changed(None)
        elif op == "transfer":
            self._transfer(me, args)
        elif op in ("complete", "cancel"):
            consult = self._consulting()
            if consult is None or me.role is not Role.PRIMARY:
                raise ControlError("没有进行中的咨询转接")
            if op == "complete":
                if consult.state is not State.UP:
                    raise ControlError("对方尚未接听，不能完成转接")
                self._leave(me)
            else:
                consult.finish(End.CANCELLED)
        elif op == "conference":
            if any(p.kind is Kind.PHONE and p.alive for p in self.parties):
                raise ControlError("已有一方在三方通话中")
            self.ring(
                Kind.PHONE,
                str(args["department"]),
                str(args["uri"]),
                Role.CONFERENCE,
                str(args.get("label") or args["department"]),
            )
        elif op == "drop":
            party = next((p for p in self.parties if p.id == args.get("party")), None)
            if party is None or party.kind is not Kind.PHONE or not party.alive:
                raise ControlError("没有这一方")
            party.finish(End.LEFT)
        elif op == "dtmf":
            return {"sent": self._dtmf(str(args.get("digits", "")))}
        else:
            raise ControlError(f"未知操作 {op}")
        return {}

    def _consulting(self) -> Party | None:
        return next((p for p in self.parties if p.role is Role.CONSULT and p.alive), None)

    def _transfer(self, me: Party, args: dict[str, Any]) -> None:
        if me.role is not Role.PRIMARY:
            raise ControlError("只有接听坐席可以转接")
        if self._consulting() is not None:
            raise ControlError("已有进行中的咨询转接")
        target, uri = str(args["agent"]), str(args["uri"])
        if self.agent(target, State.RINGING, State.ANSWERING, State.UP) is not None:
            raise ControlError("对方已在这通电话中")
        if args.get("mode") == "attended":
            self.held = self._consult_hold = True
            self.ring(Kind.AGENT, target, uri, Role.CONSULT, str(args.get("label") or target))
        else:
            # blind: the caller hears music until the target answers, or queues again
            self.requeue = True
            self.held = False
            self._leave(me)
            self.ring(Kind.AGENT, target, uri, Role.PRIMARY, str(args.get("label") or target))

    def _leave(self, me: Party) -> None:
        """An agent hangs up. With a consultation under way that is a transfer: to the one
        consulted if they are up, else (still ringing) a blind one."""
        consult = self._consulting() if me.role is Role.PRIMARY else None
        me.finish(End.LEFT)
        if consult is not None:
            consult.role = Role.PRIMARY
            self.held = False
            if consult.state is not State.UP:
                self.requeue = True

    def _dtmf(self, digits: str) -> bool:
        digits = "".join(d for d in digits if d in "0123456789*#")[:32]
        if not digits:
            raise ControlError("按键只能是 0–9、* 和 #")
        phones = [p for p in self.parties if p.kind is Kind.PHONE and p.state is State.UP]
        target = phones[-1].leg if phones else self.s.leg
        return target is not None and target.dial_dtmf(digits)

    # -- the loop -------------------------------------------------------------------------------
    def changed(self, event: tuple[str, Party] | None) -> None:
        if event is not None:
            self._events.append(event)
        self._dirty = True
        self._wake.set()

    async def run(self) -> str:
        """Until the conversation is over: "talked", "requeue" (a blind transfer's target did not
        answer), or "missed" / "unavailable" (the first agent never answered)."""
        try:
            while True:
                self._expire()
                self._settle()
                await self._flush()
                outcome = self._outcome()
                if outcome is not None:
                    return outcome
                self._wake.clear()
                if self._events:
                    continue
                deadlines = [p.deadline for p in self.parties if p.state in _WAITING]
                deadlines += [
                    p.media_lost_until
                    for p in self.parties
                    if p.alive and p.media_lost_until is not None
                ]
                wait = max(0.05, min(deadlines) - self._loop.time()) if deadlines else None
                await self.s._until(self._wake.wait(), wait)
        finally:
            await self._close()

    def _expire(self) -> None:
        now = self._loop.time()
        for p in self.parties:
            if p.state in _WAITING and p.deadline <= now:
                p.finish(End.MISSED)
            elif p.alive and p.media_lost_until is not None and p.media_lost_until <= now:
                log.info("call %s: %s's browser audio did not come back", self.s.call, p.name)
                p.finish(End.LEFT)

    async def _flush(self) -> None:
        """Tell the centre what happened, in order: it keeps the agents' states and records."""
        events, self._events = self._events, []
        center = self.s.center
        for what, p in events:
            if p.kind is not Kind.AGENT:
                continue
            if what == "ringing":
                await center.notify(
                    "ringing",
                    call=self.s.call,
                    agent=p.name,
                    path=">".join(self.s.path),
                    transfer=p.role is not Role.PRIMARY or self._talked,
                )
            elif what == "up" and not p.was_up:
                p.was_up = True
                if not self._talked:
                    self._talked = True
                    self.s.path.append(f"agent:{p.name}")
                    recording = str(self.recording.path) if self.recording else ""
                    await center.notify(
                        "answered", call=self.s.call, agent=p.name, recording=recording
                    )
                else:
                    self.s.path.append(f"{p.role.value}:{p.name}")
                    await center.notify("joined", call=self.s.call, agent=p.name)
            elif what == "gone":
                await self._gone(p)
        if self._dirty:
            self._dirty = False
            await center.notify("conversation", call=self.s.call, **self.view())

    async def _gone(self, p: Party) -> None:
        if p.peer is not None:
            await p.peer.stop()
        if p.port is not None and self.browsers is not None:
            self._drop_edges(p.port)
            if self.recording is not None:
                self.recording.remove(p.port)
            self.browsers.ports.retire_port(p.port)
        center = self.s.center
        if p.was_up or p.end is End.CANCELLED:
            await center.notify("left", call=self.s.call, agent=p.name, wrapup=p.was_up)
        elif p.end is End.UNAVAILABLE:
            await center.notify("ring_unavailable", call=self.s.call, agent=p.name)
        else:
            await center.notify("ring_failed", call=self.s.call, agent=p.name, code=0)

    def _outcome(self) -> str | None:
        agents = [p for p in self.parties if p.kind is Kind.AGENT]
        if any(p.alive for p in agents):
            return None
        if not self._talked:
            first = agents[0].end if agents else End.MISSED
            return "unavailable" if first is End.UNAVAILABLE else "missed"
        return "requeue" if self.requeue else "talked"

    # -- audio ----------------------------------------------------------------------------------
    def _settle(self) -> None:
        up = [p.endpoint for p in self.parties if p.state is State.UP and p.endpoint]
        if any(p.state is State.UP and p.role is Role.PRIMARY for p in self.parties):
            self.requeue = False  # the transfer's target answered
        if self._consult_hold and self._consulting() is None:
            self.held = self._consult_hold = False  # the consultation is over either way
        if up and self.recording is None:
            self._start_recording()
        caller = self.s.leg
        mesh: list[Any] = list(up)
        if up and not self.held:
            mesh.append(caller)
        want = {(id(a), id(b)): (a, b) for a in mesh for b in mesh if a is not b}
        for key, (a, b) in list(self._edges.items()):
            if key not in want:
                disconnect(a, b)
                del self._edges[key]
        for key, (a, b) in want.items():
            if key not in self._edges and connect(a, b):
                self._edges[key] = (a, b)
        # music while nobody the caller could hear is there: no party up, the caller held, or
        # the only agents' browser audio gone for a moment (a page reloading)
        audible = any(
            p.state is State.UP and p.endpoint and p.media_lost_until is None for p in self.parties
        )
        music = not audible or self.held
        if music and not self._moh:
            caller.play(self.s.media.prompts.path(self.s.language, "moh"), loop=True)
        elif not music and self._moh:
            caller.stop_playing()
        self._moh = music
        if self.recording is not None:
            for e in up:
                self.recording.add(e)

    def _drop_edges(self, endpoint: Any) -> None:
        for key, (a, b) in list(self._edges.items()):
            if a is endpoint or b is endpoint:
                disconnect(a, b)
                del self._edges[key]

    def _start_recording(self) -> None:
        path: Path = self.s.media.recordings / f"{self.s.call}.wav"
        self.recording = Recording(path)
        self.recording.add(self.s.leg)

    async def _close(self) -> None:
        """Everyone still here leaves; edges, music and the recording stop."""
        for p in self.parties:
            if p.alive:
                p.state, p.end = State.GONE, End.LEFT
                if p.leg is not None:
                    p.leg.hangup()
        for a, b in self._edges.values():
            disconnect(a, b)
        self._edges.clear()
        if self._moh:
            self.s.leg.stop_playing()
            self._moh = False
        if self.recording is not None:
            self.recording.close()
        for p in self.parties:
            if p.peer is not None:
                with contextlib.suppress(Exception):
                    await p.peer.stop()
            if p.port is not None and self.browsers is not None:
                self.browsers.ports.retire_port(p.port)
                p.port = None

    def view(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "parties": [p.view() for p in self.parties if p.alive],
        }

    def stats(self) -> list[dict[str, Any]]:
        """Browser agents' frame counters (bench/console.py reads them)."""
        return [{"agent": p.name, **p.peer.stats()} for p in self.parties if p.peer is not None]


_WAITING = (State.RINGING, State.ANSWERING)
