"""Browser agents' audio in a SIP worker: one aiortc peer per agent and call, run on the worker's
media thread; frames cross to and from pjmedia's clock thread through thread-safe buffers.

Three threads meet here. The worker's loop thread pumps pjsua2 and blocks in pjsip's select()
for up to pump_interval_ms; aiortc runs on a loop of its own (`MediaThread`), so its sockets are
served the moment a packet arrives; pjmedia's clock thread calls the agent's media port
(telephony/sip_port.py), which only appends to and pops from deques here."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import fractions
import functools
import logging
import random
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import av
import numpy as np
from aioice import Candidate
from aioice import ice as aioice_ice
from aioice.candidate import candidate_foundation, candidate_priority
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    sdp,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from telephony.config import WebRtcSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# The bridge's frame (telephony/sip_port.py, which may not be imported here: it loads pjsua2)
RATE = 8000
FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
TIME_BASE = fractions.Fraction(1, RATE)
CALL_TRACK_LIMIT = 10  # call → browser frames waiting for aiortc (200 ms); older ones go
GATHER_TIMEOUT_S = 5.0


class WebRtcError(Exception):
    """The browser's offer cannot be answered (no audio, no common codec, no free port)."""


class MediaThread:
    """An asyncio loop on its own thread for every aiortc peer of one worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="webrtc-media", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        # stopped: let cancelled tasks finish their clean-up, then close
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        self.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the media loop from another loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._started and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout_s)


class JitterBuffer:
    """Browser → call. Written on the media thread, read on pjmedia's clock thread (a deque's
    append and popleft are atomic). Plays once `target` frames wait; a read that finds it empty
    is a late frame (the call hears silence, and it fills to `target` again); beyond twice the
    target the oldest frames go, so a burst after a stall does not add delay for good."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.limit = 2 * target
        self._frames: collections.deque[bytes] = collections.deque()
        self._partial = b""
        self._playing = False
        self.started = False
        self.received = 0  # frames from the browser
        self.played = 0  # frames given to the call
        self.late = 0  # clock ticks with nothing to play after playing began
        self.dropped = 0  # frames thrown away to keep the delay bounded
        self.depth_sum = 0  # frames waiting, summed over the ticks that played (mean delay)

    def put(self, pcm: bytes) -> None:
        data = self._partial + pcm if self._partial else pcm
        whole = len(data) - len(data) % FRAME_BYTES
        for i in range(0, whole, FRAME_BYTES):
            self._frames.append(data[i : i + FRAME_BYTES])
            self.received += 1
        self._partial = data[whole:]
        while len(self._frames) > self.limit:
            with contextlib.suppress(IndexError):
                self._frames.popleft()
                self.dropped += 1

    def get(self) -> bytes | None:
        if not self._playing:
            if len(self._frames) < self.target:
                if self.started:
                    self.late += 1
                return None
            self._playing = self.started = True
        try:
            frame = self._frames.popleft()
        except IndexError:
            self._playing = False
            self.late += 1
            return None
        self.played += 1
        self.depth_sum += len(self._frames) + 1
        return frame

    def depth(self) -> int:
        return len(self._frames)


def _g711_tables() -> dict[str, np.ndarray]:
    """Linear 16-bit → G.711 code, for all 65,536 samples (ITU-T G.711's segment rules)."""
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    # A-law: 13-bit magnitude, segments of doubling size, even bits inverted
    mag = np.where(pcm >= 0, pcm, -pcm - 1) >> 3
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF]), mag)
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> np.where(seg < 2, 1, seg)) & 0xF))
    alaw = (aval ^ np.where(pcm >= 0, 0xD5, 0x55)).astype(np.uint8)
    # µ-law: biased 14-bit magnitude, inverted (positive samples with mask 0xFF)
    v = pcm >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    biased = np.minimum(np.where(v < 0, -v, v), 8159) + 0x21
    useg = np.searchsorted(np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF]), biased)
    uval = np.where(useg >= 8, 0x7F, (useg << 4) | ((biased >> (useg + 1)) & 0xF))
    ulaw = (uval ^ mask).astype(np.uint8)
    # indexed by the sample's bits read as unsigned (0..32767, then -32768..-1)
    order = np.concatenate([np.arange(32768, 65536), np.arange(0, 32768)])
    return {"PCMA": alaw[order], "PCMU": ulaw[order]}


G711 = _g711_tables()


def g711_encode(pcm: bytes, codec: str) -> bytes:
    return G711[codec][np.frombuffer(pcm, dtype="<u2")].tobytes()


class CallTrack(MediaStreamTrack):
    """Call → browser: frames pjmedia's clock hands over, sent by aiortc as they come (the
    clock paces them; the browser's jitter buffer smooths the rest). They leave here already
    G.711-encoded (a table look-up): aiortc then only packs them, with no hop to a thread pool
    per frame and no resampler."""

    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._media_loop = loop
        self._frames: collections.deque[bytes] = collections.deque()
        self._ready = asyncio.Event()
        self._pts = 0
        self.sent = 0
        self.dropped = 0
        self.codec = ""  # PCMA or PCMU once negotiated: frames go out encoded

    def push(self, pcm: bytes) -> None:
        """On pjmedia's clock thread."""
        self._frames.append(pcm)
        if len(self._frames) > CALL_TRACK_LIMIT:  # aiortc is behind: keep the newest audio
            with contextlib.suppress(IndexError):
                self._frames.popleft()
                self.dropped += 1
                self._pts += FRAME_SAMPLES  # a gap in timestamps: the browser conceals it
        with contextlib.suppress(RuntimeError):  # the loop closed while the call was ending
            self._media_loop.call_soon_threadsafe(self._ready.set)

    async def recv(self) -> av.AudioFrame | av.Packet:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.readyState != "live":
            raise MediaStreamError
        pcm = self._frames.popleft()
        samples = len(pcm) // 2
        self.sent += 1
        if self.codec in G711:
            packet = av.Packet(g711_encode(pcm, self.codec))
            packet.pts = self._pts
            packet.time_base = TIME_BASE
            self._pts += samples
            return packet
        frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
        frame.planes[0].update(pcm)
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += samples
        return frame

    def stop(self) -> None:
        super().stop()
        with contextlib.suppress(RuntimeError):
            self._media_loop.call_soon_threadsafe(self._ready.set)


# -- ICE on the configured addresses and ports ---------------------------------------------------
# aioice gathers host candidates on every interface except 127.0.0.1, on random ports, with no
# option for either. A worker must offer exactly the configured addresses (loopback in tests, the
# agents' LAN address in a deployment) on ports of the configured range (firewalls), so each
# peer's ICE connection gets this gathering instead; STUN still adds a server-reflexive one.


async def _bind(conn: Any, address: str, port_min: int, port_max: int) -> aioice_ice.StunProtocol:
    loop = asyncio.get_running_loop()
    size = port_max - port_min + 1
    first = random.randrange(size)  # workers share the range: start apart, skip taken ports
    for i in range(size):
        port = port_min + (first + i) % size
        try:
            _, protocol = await loop.create_datagram_endpoint(
                lambda: aioice_ice.StunProtocol(conn), local_addr=(address, port)
            )
        except OSError:
            continue
        return protocol
    raise WebRtcError(f"{address} 上 {port_min}–{port_max} 没有空闲的 UDP 端口")


async def _gather_pinned(conn: Any, addresses: list[str], port_min: int, port_max: int) -> None:
    if conn._local_candidates_start:
        return
    conn._local_candidates_start = True
    for component in sorted(conn._components):
        protocols = []
        for address in addresses:
            protocol = await _bind(conn, address, port_min, port_max)
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            conn._local_candidates.append(protocol.local_candidate)
            conn._protocols.append(protocol)
            protocols.append(protocol)
        if conn.stun_server:
            tasks = [
                asyncio.ensure_future(aioice_ice.server_reflexive_candidate(p, conn.stun_server))
                for p in protocols
                if ":" not in p.local_candidate.host
            ]
            if tasks:
                done, pending = await asyncio.wait(tasks, timeout=GATHER_TIMEOUT_S)
                for task in pending:
                    task.cancel()
                for task in done:
                    if task.exception() is None:
                        conn._local_candidates.append(task.result()[0])
    conn._local_candidates_end = True


def pin_ice(pc: RTCPeerConnection, settings: WebRtcSettings) -> None:
    """Make every ICE transport of `pc` gather on the configured addresses and ports."""
    gather = functools.partial(
        _gather_pinned,
        addresses=list(settings.addresses),
        port_min=settings.port_min,
        port_max=settings.port_max,
    )
    for transceiver in pc.getTransceivers():
        transport = transceiver.sender.transport
        if transport is None:
            continue
        conn = transport.transport.iceGatherer._connection
        # an instance attribute shadows aioice's method for this connection only
        setattr(conn, "gather_candidates", functools.partial(gather, conn))  # noqa: B010


# -- one browser agent's peer --------------------------------------------------------------------
StateCallback = Callable[[str], None]


class BrowserPeer:
    """The aiortc side of one agent in one call. `push` and `pull` are for the media port (on
    pjmedia's clock thread); `accept` and `close` run on the media loop; `on_state` is called
    with "connected", "failed" and "closed" on the loop that made the peer."""

    def __init__(
        self, settings: WebRtcSettings, media: MediaThread, on_state: StateCallback
    ) -> None:
        self.settings = settings
        self.media = media
        self.jitter = JitterBuffer(settings.jitter_frames)
        self.track: CallTrack | None = None
        self.state = "new"
        self.codec = ""
        self._pc: RTCPeerConnection | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._owner = asyncio.get_running_loop()
        self._on_state = on_state

    # -- pjmedia's clock thread ----------------------------------------------------------------
    def push(self, pcm: bytes) -> None:
        track = self.track
        if track is not None and self.state == "connected":
            track.push(pcm)

    def pull(self) -> bytes | None:
        return self.jitter.get()

    # -- the owner's loop ----------------------------------------------------------------------
    async def answer(self, offer_sdp: str) -> str:
        """The SDP answer to the browser's offer (ICE candidates included: no trickle)."""
        return await self.media.run(self._accept(offer_sdp))

    async def stop(self) -> None:
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            await self.media.run(self._close())

    def _report(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        with contextlib.suppress(RuntimeError):
            self._owner.call_soon_threadsafe(self._on_state, state)

    # -- the media loop ------------------------------------------------------------------------
    async def _accept(self, offer_sdp: str) -> str:
        servers = [RTCIceServer(urls=url) for url in self.settings.ice_servers]
        # an explicit list, even empty: aiortc's default asks a public STUN server
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._pc = pc

        @pc.on("connectionstatechange")
        def _changed() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                self._report(pc.connectionState)

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._consumer is None:
                self._consumer = asyncio.ensure_future(self._consume(track))

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if len(audio) != 1:
                raise WebRtcError("邀请中应恰有一路音频")
            caps = RTCRtpSender.getCapabilities("audio").codecs
            wanted = [c for name in self.settings.codecs for c in caps if c.name == name]
            audio[0].setCodecPreferences(wanted)
            self.track = CallTrack(asyncio.get_running_loop())
            pc.addTrack(self.track)
            pin_ice(pc, self.settings)
            await pc.setLocalDescription(await pc.createAnswer())
        except WebRtcError:
            await self._close()
            raise
        except Exception as exc:  # aiortc's errors for a bad or unsupported offer
            await self._close()
            raise WebRtcError(f"无法应答浏览器的媒体协商: {exc}") from None
        answer = pc.localDescription.sdp
        media = sdp.SessionDescription.parse(answer).media
        codecs = [c.name for m in media if m.kind == "audio" for c in m.rtp.codecs]
        if not codecs or codecs[0] not in self.settings.codecs:
            await self._close()
            raise WebRtcError("浏览器不支持 G.711（PCMA/PCMU）")
        self.codec = codecs[0]
        self.track.codec = self.codec
        return answer

    async def _consume(self, track: MediaStreamTrack) -> None:
        resampler: av.AudioResampler | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            frames = [frame]
            if frame.format.name != "s16" or frame.layout.name != "mono" or frame.rate != RATE:
                if resampler is None:
                    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
                frames = resampler.resample(frame)
            for f in frames:
                self.jitter.put(f.to_ndarray().tobytes())

    async def _close(self) -> None:
        if self.track is not None:
            self.track.stop()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer
        if self._pc is not None:
            with contextlib.suppress(Exception):
                await self._pc.close()
        self._report("closed")

    def stats(self) -> dict[str, int]:
        track = self.track
        j = self.jitter
        return {
            "to_call_received": j.received,
            "to_call_played": j.played,
            "to_call_late": j.late,
            "to_call_dropped": j.dropped,
            "to_call_depth": j.depth(),
            "to_call_depth_sum": j.depth_sum,
            "to_browser_sent": track.sent if track else 0,
            "to_browser_dropped": track.dropped if track else 0,
        }
