"""The softphone's logic without a network: who hears whom in a conversation (telephony/room.py)
through hold, consultation, transfers and a three-way call, with fake legs that record the
bridge's connections and the centre's notices; the jitter buffer between the browser and
pjmedia's clock; G.711 towards the browser; the queue's rules for transfer targets
(telephony/acd.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from telephony import room as room_module
from telephony.acd import Acd, AcdError, AgentState
from telephony.config import TelephonySettings, WebRtcSettings
from telephony.ivr import Hangup, Session
from telephony.room import Browsers, Kind, Role, Room, State
from telephony.webrtc import FRAME_BYTES, JitterBuffer, g711_encode
from tests.sip.pcap import alaw_encode
from tests.sip.rtp_phone import ulaw_decode

# -- fakes --------------------------------------------------------------------------------------
Edges = set[tuple[str, str]]


@dataclass(eq=False)
class FakeAudio:
    name: str
    edges: Edges

    def startTransmit(self, sink: FakeAudio) -> None:
        self.edges.add((self.name, sink.name))

    def stopTransmit(self, sink: FakeAudio) -> None:
        self.edges.discard((self.name, sink.name))


@dataclass(eq=False)
class FakeLeg:
    name: str
    edges: Edges
    state: str = "confirmed"
    owner: Any = None
    playing: str | None = None
    keys: list[str] = field(default_factory=list)
    id: str = "leg"

    def _audio(self) -> FakeAudio | None:
        return None if self.state == "disconnected" else FakeAudio(self.name, self.edges)

    def play(self, path: Path, *, loop: bool = False) -> float:
        self.playing = path.name
        return 0.0

    def stop_playing(self) -> None:
        self.playing = None

    def hangup(self, code: int = 0) -> None:
        if self.state != "disconnected":
            self.state = "disconnected"
            # pjsua takes a call's port off the bridge when it ends: its connections go too
            for edge in [e for e in self.edges if self.name in e]:
                self.edges.discard(edge)
            if self.owner is not None:  # pjsua reports it from its callback, a moment later
                asyncio.get_running_loop().call_soon(self.owner.leg_gone, self)

    def dial_dtmf(self, digits: str) -> bool:
        self.keys.append(digits)
        return True


class FakeRecording:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sources: list[Any] = []

    def add(self, src: Any) -> None:
        if src not in self.sources:
            self.sources.append(src)

    def remove(self, src: Any) -> None:
        if src in self.sources:
            self.sources.remove(src)

    def close(self) -> None:
        self.sources = []


class FakeCenter:
    def __init__(self) -> None:
        self.notes: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, op: str, **args: Any) -> None:
        self.notes.append((op, args))

    async def request(self, op: str, wait_s: float = 10.0, **args: Any) -> dict[str, Any]:
        return {}

    def ops(self) -> list[tuple[str, str]]:
        return [(op, str(a.get("agent", ""))) for op, a in self.notes if op != "conversation"]


class FakeDialer:
    def __init__(self, edges: Edges) -> None:
        self.edges = edges
        self.legs: dict[str, FakeLeg] = {}

    def call(self, uri: str) -> FakeLeg:
        name = uri.split(":")[1].split("@")[0]
        leg = FakeLeg(name, self.edges)
        self.legs[name] = leg
        return leg


@dataclass
class Rig:
    session: Session
    room: Room
    caller: FakeLeg
    dialer: FakeDialer
    center: FakeCenter
    edges: Edges
    task: asyncio.Task[str]

    def answer(self, name: str) -> None:
        leg = self.dialer.legs[name]
        leg.owner.leg_up(leg)

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    def mesh(self, *names: str) -> Edges:
        return {(a, b) for a in names for b in names if a != b}


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(room_module, "Recording", FakeRecording)
    edges: Edges = set()
    caller = FakeLeg("caller", edges)
    center = FakeCenter()
    dialer = FakeDialer(edges)
    prompts = SimpleNamespace(path=lambda lang, key: tmp_path / f"{key}.wav")
    session = Session(
        leg=caller,  # type: ignore[arg-type]
        center=center,
        settings=TelephonySettings(ring_agent_s=0.5),
        media=SimpleNamespace(prompts=prompts, recordings=tmp_path),  # type: ignore[arg-type]
        dialer=dialer,  # type: ignore[arg-type]
        worker=0,
    )
    room = Room(session, None)
    room.ring(Kind.AGENT, "a", "sip:a@127.0.0.1", Role.PRIMARY)
    task = asyncio.ensure_future(room.run())
    r = Rig(session, room, caller, dialer, center, edges, task)
    yield r
    task.cancel()


# -- the room -----------------------------------------------------------------------------------
async def test_answered_agent_and_caller_hear_each_other_and_music_stops(rig: Rig) -> None:
    await rig.settle()
    assert rig.caller.playing == "moh.wav"  # while the agent's phone rings
    rig.answer("a")
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a")
    assert rig.caller.playing is None
    assert rig.center.ops()[:2] == [("ringing", "a"), ("answered", "a")]
    assert rig.room.recording is not None and len(rig.room.recording.sources) == 2


async def test_hold_plays_music_to_the_caller_and_unhold_reconnects(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "hold", {})
    await rig.settle()
    assert rig.edges == set()
    assert rig.caller.playing == "moh.wav"
    view = [a for op, a in rig.center.notes if op == "conversation"][-1]
    assert view["held"] is True
    rig.room.control("a", "unhold", {})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a")
    assert rig.caller.playing is None


async def test_consultation_holds_the_caller_then_completes_to_the_supervisor(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "transfer", {"agent": "s", "uri": "sip:s@h", "mode": "attended"})
    await rig.settle()
    assert rig.edges == set() and rig.caller.playing == "moh.wav"
    rig.answer("s")
    await rig.settle()
    assert rig.edges == rig.mesh("a", "s")  # the agents talk; the caller hears music
    with pytest.raises(room_module.ControlError):
        rig.room.control("a", "unhold", {})  # finish or cancel the consultation first
    rig.room.control("a", "complete", {})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "s")
    assert rig.caller.playing is None
    assert rig.dialer.legs["a"].state == "disconnected"
    assert ("joined", "s") in rig.center.ops() and ("left", "a") in rig.center.ops()
    left = next(a for op, a in rig.center.notes if op == "left")
    assert left["wrapup"] is True
    assert not rig.task.done()


async def test_cancelled_consultation_returns_the_caller_to_the_agent(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "transfer", {"agent": "s", "uri": "sip:s@h", "mode": "attended"})
    await rig.settle()
    rig.room.control("a", "cancel", {})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a")
    assert rig.room.held is False
    assert ("ring_failed", "s") not in rig.center.ops()
    left = next(a for op, a in rig.center.notes if op == "left")
    assert (left["agent"], left["wrapup"]) == ("s", False)  # back to where the transfer found s


async def test_hanging_up_during_a_consultation_completes_the_transfer(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "transfer", {"agent": "s", "uri": "sip:s@h", "mode": "attended"})
    rig.answer("s")
    await rig.settle()
    rig.room.control("a", "hangup", {})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "s")


async def test_three_way_call_meshes_everyone_and_keys_go_to_the_department(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "conference", {"department": "d1", "uri": "sip:dept@h", "label": "住建"})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a")  # still ringing: not yet in
    rig.answer("dept")
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a", "dept")
    assert rig.room.control("a", "dtmf", {"digits": "12#x"}) == {"sent": True}
    assert rig.dialer.legs["dept"].keys == ["12#"]
    with pytest.raises(room_module.ControlError):
        rig.room.control("a", "conference", {"department": "d2", "uri": "sip:x@h"})
    phone = next(p for p in rig.room.parties if p.kind is Kind.PHONE)
    rig.room.control("a", "drop", {"party": phone.id})
    await rig.settle()
    assert rig.edges == rig.mesh("caller", "a")
    assert rig.room.control("a", "dtmf", {"digits": "5"}) == {"sent": True}
    assert rig.caller.keys == ["5"]  # no department on the line: keys go to the caller


async def test_blind_transfer_nobody_answers_puts_the_caller_back_in_the_queue(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "transfer", {"agent": "b", "uri": "sip:b@h", "mode": "blind"})
    await rig.settle()
    assert rig.caller.playing == "moh.wav"
    assert await asyncio.wait_for(rig.task, 10) == "requeue"  # b's ring ran out (0.5 s)
    assert ("ring_failed", "b") in rig.center.ops()


async def test_first_agent_not_answering_is_missed(rig: Rig) -> None:
    assert await asyncio.wait_for(rig.task, 10) == "missed"
    assert rig.center.ops() == [("ringing", "a"), ("ring_failed", "a")]


async def test_caller_hanging_up_ends_the_room_and_the_agents_legs(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.session.hungup.set()
    with pytest.raises(Hangup):
        await asyncio.wait_for(rig.task, 10)
    assert rig.dialer.legs["a"].state == "disconnected"
    assert rig.edges == set()


async def test_only_the_primary_agent_may_hold_or_transfer(rig: Rig) -> None:
    rig.answer("a")
    await rig.settle()
    rig.room.control("a", "transfer", {"agent": "s", "uri": "sip:s@h", "mode": "attended"})
    rig.answer("s")
    await rig.settle()
    for op in ("hold", "transfer"):
        with pytest.raises(room_module.ControlError):
            rig.room.control("s", op, {"agent": "x", "uri": "sip:x@h"})
    with pytest.raises(room_module.ControlError):
        rig.room.control("nobody", "hangup", {})
    assert {p.name for p in rig.room.parties if p.state is State.UP} == {"a", "s"}


# -- the jitter buffer (browser → call) ---------------------------------------------------------
def test_jitter_buffer_waits_for_its_target_then_counts_late_frames() -> None:
    jb = JitterBuffer(target=3)
    frame = bytes(FRAME_BYTES)
    jb.put(frame * 2)
    assert jb.get() is None and jb.late == 0  # not started: filling, not late
    jb.put(frame)
    assert [jb.get() for _ in range(3)] == [frame] * 3
    assert jb.get() is None and jb.late == 1  # ran dry: one late frame, then it refills
    jb.put(frame)
    assert jb.get() is None and jb.late == 2
    assert (jb.received, jb.played) == (4, 3)


def test_jitter_buffer_keeps_partial_frames_and_bounds_its_delay() -> None:
    jb = JitterBuffer(target=2)
    jb.put(bytes(100))
    jb.put(bytes(FRAME_BYTES - 100))  # two browser packets of odd sizes make one frame
    assert jb.received == 1
    jb.put(bytes(FRAME_BYTES * 10))  # a burst after a stall
    assert jb.depth() == 4 and jb.dropped == 7  # at most twice the target waits


# -- the queue: transfer targets ----------------------------------------------------------------
def test_transfer_targets_agents_must_be_free_supervisors_may_be_paused() -> None:
    acd = Acd(queue_timeout_s=60, wrapup_s=30)
    acd.login("agent2", "webrtc:agent2", 0)
    acd.login("boss", "webrtc:boss", 0, role="supervisor")
    with pytest.raises(AcdError):
        acd.transfer_to("agent2", "c1", 1)  # paused (just signed in)
    boss = acd.transfer_to("boss", "c1", 1)
    assert (boss.state, boss.call) == (AgentState.RINGING, "c1")
    assert boss.softphone
    acd.left("c1", "boss", 2, wrapup=False)  # taken back: paused again, with its reason
    assert (boss.state, boss.reason, boss.call) == (AgentState.PAUSED, "刚签入", None)
    acd.set_state("agent2", AgentState.AVAILABLE, 3)
    acd.transfer_to("agent2", "c1", 4)
    acd.answered("c1", "agent2", 5)
    acd.left("c1", "agent2", 6, wrapup=True)  # talked, then transferred away: wrap-up
    assert acd.agents["agent2"].state is AgentState.WRAPUP


# -- G.711 towards the browser (a table instead of aiortc's encoder in a thread pool) ----------
def test_g711_tables_match_the_reference_encoders() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int32).astype("<i2")
    assert g711_encode(pcm.tobytes(), "PCMA") == alaw_encode(pcm)
    mu = np.frombuffer(g711_encode(pcm.tobytes(), "PCMU"), dtype=np.uint8).tobytes()
    back = ulaw_decode(mu).astype(int)
    # µ-law keeps about 1/16 of each segment's size: a round trip stays within it
    assert np.all(np.abs(back - pcm) <= np.maximum(16, np.abs(pcm.astype(int)) // 16 + 8))


async def test_a_click_on_answer_stops_the_ring_until_the_browser_is_ready(
    rig: Rig, tmp_path: Path
) -> None:
    """接听 clicked near the end of the ring: the browser still has answer_timeout_s to open
    its microphone and send its offer; without an offer the call goes on to the next agent."""
    settings = WebRtcSettings(answer_timeout_s=1.5)
    room = Room(rig.session, Browsers(settings, None, None))  # type: ignore[arg-type]
    party = room.ring(Kind.AGENT, "w", "webrtc:w", Role.PRIMARY)
    task = asyncio.ensure_future(room.run())
    room.control("w", "pickup", {})
    await asyncio.sleep(0.8)  # past the ring's 0.5 s
    assert party.state is State.ANSWERING
    assert await asyncio.wait_for(task, 10) == "missed"  # no offer came
    with pytest.raises(room_module.ControlError):
        room.control("w", "pickup", {})


class FakePeer:
    """A browser peer: frames in and out, and whether it was stopped."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.pushed: list[bytes] = []
        self.stopped = False

    def push(self, pcm: bytes) -> None:
        self.pushed.append(pcm)

    def pull(self) -> bytes | None:
        return self.frame

    async def stop(self) -> None:
        self.stopped = True


async def test_a_browser_agent_whose_audio_went_stays_in_the_call_for_the_grace(
    rig: Rig,
) -> None:
    """The page of a talking agent reloads: the peer closes, the agent stays in the call for
    reconnect_grace_s (the port now carries the page's new peer, the replaced one's reports
    are ignored), and leaves when no page comes back in time."""
    caller = FakeLeg("caller2", rig.edges)  # a call of its own: its music is this room's
    session = Session(
        leg=caller,  # type: ignore[arg-type]
        center=rig.center,
        settings=rig.session.settings,
        media=rig.session.media,
        dialer=rig.dialer,  # type: ignore[arg-type]
        worker=0,
    )
    ports = SimpleNamespace(retire_port=lambda port: None)
    room = Room(session, Browsers(WebRtcSettings(reconnect_grace_s=0.6), None, ports))  # type: ignore[arg-type]
    party = room.ring(Kind.AGENT, "w", "webrtc:w", Role.PRIMARY)
    old, new = FakePeer(b"old"), FakePeer(b"new")
    party.peer = old  # type: ignore[assignment]
    party.port = FakeLeg("w", rig.edges)  # type: ignore[assignment]  # its media port
    party.state = State.ANSWERING
    task = asyncio.ensure_future(room.run())
    party.peer_state("connected", old)  # type: ignore[arg-type]
    await rig.settle()
    assert party.state is State.UP and party.pull() == b"old"

    assert caller.playing is None  # talking

    party.peer_state("closed", old)  # type: ignore[arg-type]
    assert party.alive and party.media_lost_until is not None
    await rig.settle()
    assert caller.playing == "moh.wav"  # music, not silence, while the page comes back
    party.peer = new  # type: ignore[assignment]  # what a new offer (Room.answer) does
    party.peer_state("failed", old)  # type: ignore[arg-type]  # the replaced peer: ignored
    party.peer_state("connected", new)  # type: ignore[arg-type]
    assert party.media_lost_until is None
    await rig.settle()
    assert caller.playing is None
    party.push(b"pcm")
    assert party.pull() == b"new" and new.pushed == [b"pcm"] and not old.pushed

    party.peer_state("failed", new)  # type: ignore[arg-type]  # and no page comes back
    assert party.alive and party.media_lost_until is not None  # not at once: the grace runs
    await asyncio.wait_for(task, 10)
    assert not party.alive and party.end is room_module.End.LEFT and new.stopped
    assert ("left", "w") in rig.center.ops()


async def test_without_a_grace_a_browser_agent_whose_audio_went_leaves(rig: Rig) -> None:
    room = Room(rig.session, Browsers(WebRtcSettings(reconnect_grace_s=0), None, None))  # type: ignore[arg-type]
    party = room.ring(Kind.AGENT, "w", "webrtc:w", Role.PRIMARY)
    peer = FakePeer(b"x")
    party.peer = peer  # type: ignore[assignment]
    party.state = State.ANSWERING
    task = asyncio.ensure_future(room.run())
    party.peer_state("connected", peer)  # type: ignore[arg-type]
    await rig.settle()
    party.peer_state("closed", peer)  # type: ignore[arg-type]
    assert not party.alive and party.end is room_module.End.LEFT
    await asyncio.wait_for(task, 10)
