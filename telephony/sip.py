"""The pjsua2 adapter: one SIP endpoint per worker process, its calls as `Leg`s.

The only module that imports pjsua2."""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
import wave
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pjsua2 as pj

from telephony.sip_port import PortLeg, Pull, Push

log = logging.getLogger(__name__)

# The wheel is compiled with PJSUA_MAX_CALLS = 4 (see ARCHITECTURE.md); one more is refused.
MAX_CALLS = 4
# pjlib's select() ioqueue holds every socket of the process in 64 slots (PJ_IOQUEUE_MAX_HANDLES):
# the SIP transports, and RTP + RTCP of each call, opened by pjsua for an INVITE before anyone
# decides to answer it. A closed socket's slot is free again only 500 ms later
# (PJ_IOQUEUE_KEY_FREE_DELAY), and with no free slot pjlib's assertion aborts the process: 70
# INVITEs a second did that (60 did not). So INVITEs the worker refuses never get sockets (they
# go to a socket-less account), and socket pairs are capped at MEDIA_LEGS_MAX (40 slots, the
# rest left for SIP over UDP and TCP), counted with room to spare: the calls up now, plus every
# pair opened or closed within MEDIA_FREE_DELAY_S (pjlib's 0.5 s, doubled).
MEDIA_LEGS_MAX = 20
MEDIA_FREE_DELAY_S = 1.0
# The answers of INVITEs refused before pjsua spends anything on them (see LegHandler.screen).
REFUSALS = (404, 486, 503)
CODECS = ("PCMA/8000/1", "PCMU/8000/1", "G722/16000/1")
PORT_GRACE_S = 0.1
_REQUEST_LINE = re.compile(r"^INVITE\s+(?:sips?|tel):([^@;>\s]*)", re.IGNORECASE)
_FROM_USER = re.compile(r"^(?:From|f)\s*:[^\n]*?<?(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE | re.M)


@dataclass(frozen=True)
class SipConfig:
    host: str
    port: int
    transports: tuple[str, ...]
    rtp_port: int
    rtp_ports: int
    user: str  # our identity in From of outbound calls
    user_agent: str = "hotline-12345"
    log_level: int = 1


class LegHandler(Protocol):
    """What the worker does with call events (all run on the pumping thread, inside the loop)."""

    def screen(self, dialled: str, source: str) -> int:
        """A new INVITE, before pjsua gives it sockets: 0 to go on to on_incoming, or its final
        answer, one of REFUSALS (sent at once, at almost no cost)."""
        ...

    def on_incoming(self, leg: Leg, dialled: str, caller: str, source: str) -> int: ...
    def on_confirmed(self, leg: Leg) -> None: ...
    def on_media(self, leg: Leg) -> None: ...
    def on_dtmf(self, leg: Leg, digit: str) -> None: ...
    def on_disconnected(self, leg: Leg, code: int, reason: str) -> None: ...


@dataclass(eq=False)
class Leg:
    """One SIP call (inbound from a caller, or outbound to an agent or a citizen)."""

    stack: SipStack
    outbound: bool
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    remote: str = ""
    caller: str = ""  # the caller's number (From user) on inbound legs
    dialled: str = ""  # the number the caller dialled (request-URI user)
    owner: Any = None  # on outbound legs: the dialogue that placed the call
    sip_call_id: str = ""
    state: str = "new"
    last_code: int = 0
    media_ready: bool = False
    _call: Any = None
    _player: Any = None
    _recorder: Any = None
    _peer: Leg | None = None

    def answer(self, code: int = 200) -> None:
        if self._call is None or self.state == "disconnected":
            return
        prm = pj.CallOpParam()
        prm.statusCode = code
        self._call.answer(prm)

    def hangup(self, code: int = 0) -> None:
        if self._call is None or self.state == "disconnected":
            return
        prm = pj.CallOpParam()
        if code:
            prm.statusCode = code
        try:
            self._call.hangup(prm)
        except pj.Error as exc:  # already going away: nothing left to hang up
            log.debug("hangup of %s: %s", self.id, exc.info())

    def _audio(self) -> Any | None:
        if self._call is None or not self.media_ready or self.state == "disconnected":
            return None
        try:
            return self._call.getAudioMedia(-1)
        except pj.Error:
            return None

    def play(self, path: Path, *, loop: bool = False) -> float:
        """Start playing a WAV to the far end (replacing what played); returns its length."""
        self.stop_playing()
        audio = self._audio()
        if audio is None:
            return 0.0
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(path), 0 if loop else pj.PJMEDIA_FILE_NO_LOOP)
        player.startTransmit(audio)
        self._player = player
        return wav_seconds(path)

    def stop_playing(self) -> None:
        player, self._player = self._player, None
        if player is not None:
            audio = self._audio()
            if audio is not None:
                with contextlib.suppress(pj.Error):
                    player.stopTransmit(audio)
            del player

    def record(self, path: Path, *, with_peer: bool = False) -> None:
        """Record what the far end says (and, bridged, what the peer says) into a WAV."""
        self.stop_recording()
        audio = self._audio()
        if audio is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = pj.AudioMediaRecorder()
        rec.createRecorder(str(path))
        audio.startTransmit(rec)
        if with_peer and self._peer is not None:
            peer_audio = self._peer._audio()
            if peer_audio is not None:
                peer_audio.startTransmit(rec)
        self._recorder = rec

    def stop_recording(self) -> None:
        rec, self._recorder = self._recorder, None
        if rec is not None:
            del rec  # destroying the recorder writes the WAV header

    def bridge(self, other: Leg) -> bool:
        """Connect the audio of two legs both ways."""
        a, b = self._audio(), other._audio()
        if a is None or b is None:
            return False
        self.stop_playing()
        other.stop_playing()
        a.startTransmit(b)
        b.startTransmit(a)
        self._peer, other._peer = other, self
        return True

    def unbridge(self) -> None:
        other, self._peer = self._peer, None
        if other is None:
            return
        other._peer = None
        a, b = self._audio(), other._audio()
        for src, dst in ((a, b), (b, a)):
            if src is not None and dst is not None:
                with contextlib.suppress(pj.Error):
                    src.stopTransmit(dst)

    def dial_dtmf(self, digits: str) -> bool:
        """Send keys to the far end (RFC 4733 when negotiated, else SIP INFO, as pjsua does)."""
        if self._call is None or self.state != "confirmed":
            return False
        try:
            self._call.dialDtmf(digits)
        except pj.Error as exc:
            log.info("DTMF to %s failed: %s", self.id, exc.info())
            return False
        return True

    def release(self) -> None:
        """Drop every pjsua2 object of a disconnected leg (before libDestroy, or it aborts)."""
        self.stop_playing()
        self.stop_recording()
        self._peer = None
        self._call = None


class Audio(Protocol):
    """Anything on the conference bridge: a `Leg`, or a browser agent's `PortLeg`."""

    def _audio(self) -> Any | None: ...


def connect(src: Audio, dst: Audio) -> bool:
    """Let `dst` hear `src` (one direction); False when either has no audio (yet)."""
    a, b = src._audio(), dst._audio()
    if a is None or b is None:
        return False
    a.startTransmit(b)
    return True


def disconnect(src: Audio, dst: Audio) -> None:
    a, b = src._audio(), dst._audio()
    if a is not None and b is not None:
        with contextlib.suppress(pj.Error):
            a.stopTransmit(b)


class Recording:
    """One WAV of everything its sources say, mixed (the bridge sums what reaches a sink)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._rec: Any = pj.AudioMediaRecorder()
        self._rec.createRecorder(str(path))
        self._sources: list[Audio] = []

    def _audio(self) -> Any | None:
        return self._rec

    def add(self, src: Audio) -> None:
        if all(s is not src for s in self._sources) and connect(src, self):
            self._sources.append(src)

    def remove(self, src: Audio) -> None:
        if any(s is src for s in self._sources):
            disconnect(src, self)
            self._sources = [s for s in self._sources if s is not src]

    def close(self) -> None:
        """Stop and write the WAV header (destroying the recorder does)."""
        for src in self._sources:
            disconnect(src, self)
        self._sources = []
        self._rec = None


class _Call(pj.Call):
    def __init__(self, stack: SipStack, leg: Leg, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(stack._account, call_id)
        self._stack = stack
        self._leg = leg

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        leg = self._leg
        leg.last_code = int(info.lastStatusCode)
        if not leg.sip_call_id:
            leg.sip_call_id = info.callIdString
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and leg.state != "confirmed":
            leg.state = "confirmed"
            self._stack.handler.on_confirmed(leg)
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED and leg.state != "disconnected":
            leg.state = "disconnected"
            leg.media_ready = False
            self._stack._disconnected(leg, int(info.lastStatusCode), info.lastReason)

    def onCallMediaState(self, prm: Any) -> None:
        info = self.getInfo()
        for media in info.media:
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                first = not self._leg.media_ready
                self._leg.media_ready = True
                if first:
                    self._stack.handler.on_media(self._leg)
                return

    def onDtmfDigit(self, prm: Any) -> None:
        self._stack.handler.on_dtmf(self._leg, str(prm.digit))


class _Account(pj.Account):
    def __init__(self, stack: SipStack) -> None:
        super().__init__()
        self._stack = stack

    def onIncomingCall(self, prm: Any) -> None:
        self._stack._incoming(prm)


class _Refuser(pj.Account):
    """An account whose calls get pjsua's loop media transport (no socket) and are refused
    with `code` at once: where SipStack sends the INVITEs the worker does not take."""

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def onIncomingCall(self, prm: Any) -> None:
        try:
            call = pj.Call(self, prm.callId)
            op = pj.CallOpParam()
            op.statusCode = self.code
            call.hangup(op)
        except pj.Error as exc:
            log.debug("refusing call %s: %s", prm.callId, exc.info())
        except Exception:  # never into pjsua's C code
            log.exception("refusing call %s", prm.callId)
        # `call` goes here, while its call slot is still free: dropped later, pjsua2 would
        # clear the user data of (and hang up) whichever call took the slot meanwhile


class _Endpoint(pj.Endpoint):
    def __init__(self, stack: SipStack) -> None:
        super().__init__()
        self._stack = stack

    def onSelectAccount(self, prm: Any) -> None:
        try:
            self._stack._select_account(prm)
        except Exception:  # never into pjsua's C code; pjsua's own choice stands
            log.exception("screening an incoming request")


class SipStack:
    """A pjsua2 endpoint pumped from the worker's asyncio loop (threadCnt 0, main thread only)."""

    def __init__(self, config: SipConfig, handler: LegHandler) -> None:
        self.config = config
        self.handler = handler
        self.legs: dict[str, Leg] = {}
        self._ep: Any = None
        self._account: Any = None
        self._refusers: dict[int, _Refuser] = {}
        self._churn: deque[float] = deque()  # when socket pairs were opened or closed
        self._full = 0  # INVITEs refused because of that
        # browser agents' media ports, destroyed once pjmedia's clock cannot be in their callbacks
        self.ports: set[PortLeg] = set()
        self._retired: list[tuple[float, Any]] = []

    def start(self) -> None:
        cfg = self.config
        ep = _Endpoint(self)
        ep.libCreate()
        epc = pj.EpConfig()
        epc.uaConfig.threadCnt = 0
        epc.uaConfig.mainThreadOnly = True
        epc.uaConfig.maxCalls = MAX_CALLS
        epc.uaConfig.userAgent = cfg.user_agent
        epc.logConfig.level = cfg.log_level
        epc.logConfig.consoleLevel = cfg.log_level
        epc.medConfig.ecTailLen = 0  # no echo canceller: no sound device, and it costs CPU
        epc.medConfig.noVad = True
        epc.medConfig.clockRate = 8000  # G.711 calls need no resampling in the bridge
        epc.medConfig.sndClockRate = 8000
        ep.libInit(epc)
        kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}
        for name in cfg.transports:
            tc = pj.TransportConfig()
            tc.port = cfg.port
            tc.boundAddress = cfg.host
            try:
                ep.transportCreate(kinds[name], tc)
            except pj.Error as exc:
                raise SipError(
                    f"cannot listen on {name} {cfg.host}:{cfg.port}: {exc.reason}"
                ) from None
        ep.libStart()
        ep.audDevManager().setNullDev()
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, 0)
        for prio, codec in zip((250, 240, 230), CODECS, strict=True):
            ep.codecSetPriority(codec, prio)
        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:{cfg.user}@{cfg.host}:{cfg.port}"
        acc_cfg.mediaConfig.transportConfig.port = cfg.rtp_port
        acc_cfg.mediaConfig.transportConfig.portRange = cfg.rtp_ports
        acc_cfg.mediaConfig.transportConfig.boundAddress = cfg.host
        # no re-INVITE to lock one codec after answers offering several: simple phones and
        # SIP trunks cope with fewer in-dialog requests
        acc_cfg.mediaConfig.lockCodecEnabled = False
        acc_cfg.sipConfig.contactForced = f"<sip:{cfg.user}@{cfg.host}:{cfg.port}>"
        self._ep = ep
        self._account = _Account(self)
        self._account.create(acc_cfg, True)
        for code in REFUSALS:
            refuser = _Refuser(code)
            ref_cfg = pj.AccountConfig()
            ref_cfg.idUri = f"sip:refuse-{code}@{cfg.host}:{cfg.port}"
            ref_cfg.sipConfig.contactForced = acc_cfg.sipConfig.contactForced
            ref_cfg.mediaConfig.useLoopMedTp = True  # no RTP/RTCP sockets
            refuser.create(ref_cfg, False)
            self._refusers[code] = refuser

    def pump(self, wait_ms: int = 0) -> None:
        """Handle SIP events, waiting up to wait_ms for one (a packet wakes it at once)."""
        self._ep.libHandleEvents(wait_ms)

    def call(self, uri: str, leg_id: str | None = None) -> Leg:
        """Place an outbound call; raises SipError when pjsua2 refuses (no free call slot) or
        too many calls had sockets just now (see MEDIA_LEGS_MAX)."""
        if self.media_full():
            raise SipError("too many calls opened and closed just now: try again in a second")
        self._churn.append(time.monotonic())
        leg = Leg(self, outbound=True, remote=uri)
        if leg_id:
            leg.id = leg_id
        call = _Call(self, leg)
        leg._call = call
        try:
            call.makeCall(uri, pj.CallOpParam(True))
        except pj.Error as exc:
            leg._call = None
            raise SipError(exc.info()) from None
        self.legs[leg.id] = leg
        return leg

    def create_port(self, name: str, push: Push, pull: Pull) -> PortLeg:
        """A browser agent's audio on the bridge (no SIP call, no call slot)."""
        port = PortLeg(name, push, pull)
        self.ports.add(port)
        return port

    def retire_port(self, port: PortLeg) -> None:
        """Take a port off the bridge: its callbacks stop at once, the object goes later."""
        self.ports.discard(port)
        raw = port.retire()
        if raw is not None:
            self._retired.append((time.monotonic(), raw))

    def active_calls(self) -> int:
        return len(self.legs)

    def media_full(self) -> bool:
        """Would one more call's sockets put pjlib's socket slots at risk (MEDIA_LEGS_MAX)?"""
        churn, since = self._churn, time.monotonic() - MEDIA_FREE_DELAY_S
        while churn and churn[0] < since:
            churn.popleft()
        return len(self.legs) + len(churn) >= MEDIA_LEGS_MAX

    def _select_account(self, prm: Any) -> None:
        """pjsua asks which account takes an incoming request, before it opens any socket for
        it: a new INVITE the worker refuses goes to the socket-less refuser of its answer."""
        msg = prm.rdata.wholeMsg
        if not msg.startswith("INVITE "):
            return  # MESSAGE, SUBSCRIBE...: pjsua's choice
        m = _REQUEST_LINE.match(msg)
        dialled = m.group(1) if m else ""
        code = self.handler.screen(dialled, str(prm.rdata.srcAddress))
        if not code and self.media_full():
            code = 503
            self._full += 1
            if self._full == 1 or self._full % 100 == 0:
                log.warning(
                    "%d INVITE(s) refused (503): too many calls opened and closed within %.0f s",
                    self._full,
                    MEDIA_FREE_DELAY_S,
                )
        if code:
            prm.accountIndex = self._refusers.get(code, self._refusers[503]).getId()
        else:
            # pjsua opens its sockets now, even if it refuses the call itself later
            self._churn.append(time.monotonic())
            prm.accountIndex = self._account.getId()

    def _incoming(self, prm: Any) -> None:
        msg = prm.rdata.wholeMsg
        m = _REQUEST_LINE.match(msg)
        dialled = m.group(1) if m else ""
        f = _FROM_USER.search(msg)
        caller = f.group(1) if f else ""
        leg = Leg(self, outbound=False, caller=caller, dialled=dialled)
        call = _Call(self, leg, prm.callId)
        leg._call = call
        self.legs[leg.id] = leg
        code = self.handler.on_incoming(leg, dialled, caller, str(prm.rdata.srcAddress))
        if code >= 300:
            leg.hangup(code)
        else:
            leg.answer(code or 200)

    def _disconnected(self, leg: Leg, code: int, reason: str) -> None:
        peer = leg._peer
        leg.unbridge()
        leg.stop_playing()
        leg.stop_recording()
        self.handler.on_disconnected(leg, code, reason)
        if peer is not None:
            peer._peer = None
        if self.legs.pop(leg.id, None) is not None:
            self._churn.append(time.monotonic())
        # Drop the pjsua2 Call now, in its DISCONNECTED callback (as pjsua2 wants it): its call
        # slot may go to the next INVITE in this same pump, and a Call dropped after that
        # clears the new call's user data (its events are lost) and hangs the new call up.
        # Python frees it when this callback returns.
        leg.release()

    def collect_garbage(self) -> None:
        """Destroy browser agents' ports retired at least PORT_GRACE_S ago (pjmedia's clock
        thread may still be in a callback of one retired just now)."""
        if self._retired:
            # two clock ticks (20 ms each) after retiring, no callback of the port is running
            due = time.monotonic() - PORT_GRACE_S
            self._retired = [(t, p) for t, p in self._retired if t > due]

    def shutdown(self) -> None:
        """Hang up every call, pump until all are gone, drop the objects, destroy the library."""
        if self._ep is None:
            return
        for leg in list(self.legs.values()):
            leg.hangup()
        for _ in range(400):  # up to ~2 s
            if not self.legs:
                break
            self._ep.libHandleEvents(5)
        for leg in list(self.legs.values()):
            leg.release()
        self.legs.clear()
        for port in list(self.ports):
            self.retire_port(port)
        if self._retired:
            self._ep.libHandleEvents(int(PORT_GRACE_S * 1000))
            self._retired.clear()
        self._account = None
        self._refusers.clear()
        import gc

        gc.collect()
        self._ep.libDestroy()
        self._ep = None


class SipError(Exception):
    """pjsua2 refused an operation."""


def wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (OSError, wave.Error, EOFError):
        return 0.0
