"""A phone's audio in Python: one UDP socket that sends G.711 A-law RTP (a tone, or silence) and
RFC 4733 keys in real time, and keeps everything it receives, to be checked by frequency and
energy. SIPp does the SIP (scenarios caller_rtp.xml and uas_rtp.xml put this socket's port in
their SDP), so what is analysed is exactly what the far end sent to the phone."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from tests.ports import RTP_HIGH, RTP_LOW, free_port_block
from tests.sip.pcap import DTMF_EVENTS, EVENT_KEYS, alaw_decode, alaw_encode

RATE = 8000
FRAME = 160  # 20 ms
PT_PCMU, PT_PCMA = 0, 8


def ulaw_decode(data: bytes) -> np.ndarray:
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


@dataclass
class Received:
    """What arrived: audio samples with each packet's arrival time, and keys."""

    samples: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    source: tuple[str, int] | None = None


class RtpPhone:
    """Sends `tone_hz` (None: silence) every 20 ms to whoever sends it RTP first (the call's
    media address, learnt from its first packet: symmetric RTP, as pjmedia expects)."""

    def __init__(
        self,
        tone_hz: float | None,
        amplitude: int = 8000,
        event_pt: int = 101,
        *,
        burst_every_s: float = 0.0,
        echo: bool = False,
    ) -> None:
        self.tone_hz = tone_hz
        self.amplitude = amplitude
        self.event_pt = event_pt
        # delay probes: the tone only in 100 ms bursts every burst_every_s (their send times are
        # kept), or everything heard sent straight back (a far end that echoes)
        self.burst_every_s = burst_every_s
        self.burst_times: list[float] = []
        self.echo = echo
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):
            port = free_port_block(1, tcp=False, low=RTP_LOW, high=RTP_HIGH)
            with contextlib.suppress(OSError):
                self.sock.bind(("127.0.0.1", port))
                break
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)
        self.rx = Received()
        self.sending = True  # False: stays silent (a muted handset)
        self._keys: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)
        self._phase = 0
        self._echo_ts = random.randrange(1 << 32)

    def start(self) -> RtpPhone:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self.sock.close()

    def __enter__(self) -> RtpPhone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def press(self, keys: str) -> None:
        """Queue keys: each is sent as RFC 4733 events (160 ms, then the end packets)."""
        with self._lock:
            self._keys.extend(keys)

    # -- reading what arrived --------------------------------------------------------------------
    def mark(self) -> float:
        return time.monotonic()

    def audio_since(self, since: float, until: float | None = None) -> np.ndarray:
        with self._lock:
            pairs = list(zip(self.rx.times, self.rx.samples, strict=True))
        chunks = [s for t, s in pairs if t >= since and (until is None or t < until)]
        return np.concatenate(chunks).astype(float) if chunks else np.zeros(0)

    def keys_since(self, since: float) -> str:
        with self._lock:
            return "".join(k for t, k in self.rx.events if t >= since)

    def packets(self) -> int:
        with self._lock:
            return len(self.rx.times)

    # -- threads --------------------------------------------------------------------------------
    def _packet(
        self, pt: int, payload: bytes, marker: bool = False, ts: int | None = None
    ) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFF
        b1 = pt | (0x80 if marker else 0)
        stamp = self._ts if ts is None else ts
        return struct.pack("!BBHII", 0x80, b1, self._seq, stamp, self._ssrc) + payload

    def _audio(self) -> bytes:
        start = self._phase
        self._phase += FRAME
        n = np.arange(start, start + FRAME)
        if self.burst_every_s:
            pos = start % int(self.burst_every_s * RATE)
            if pos == 0 and self.sending:
                self.burst_times.append(time.monotonic())
            if pos >= int(0.1 * RATE):
                return alaw_encode(np.zeros(FRAME, dtype=np.int16))
        if self.tone_hz is None or not self.sending:
            return alaw_encode(np.zeros(FRAME, dtype=np.int16))
        pcm = self.amplitude * np.sin(2 * np.pi * self.tone_hz * n / RATE)
        return alaw_encode(np.round(pcm).astype(np.int16))

    def _send(self) -> None:
        next_at = time.monotonic()
        event: tuple[int, int, int] | None = None  # (code, start timestamp, packets sent)
        while not self._stop.is_set():
            next_at += 0.02
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.2:  # far behind (a loaded machine): do not burst, start again
                next_at = time.monotonic()
            dest = self.rx.source
            self._ts = (self._ts + FRAME) & 0xFFFFFFFF
            if dest is None:
                continue
            if event is None:
                with self._lock:
                    key = self._keys.pop(0) if self._keys else None
                if key is not None:
                    event = (DTMF_EVENTS[key], self._ts, 0)
            try:
                if self.echo and event is None:
                    continue  # the receiving thread sends back what it hears
                if event is not None:
                    code, start, sent = event
                    end = sent >= 8
                    duration = FRAME * (min(sent, 8) + 1)
                    payload = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
                    self.sock.sendto(
                        self._packet(self.event_pt, payload, marker=sent == 0, ts=start), dest
                    )
                    event = None if sent >= 10 else (code, start, sent + 1)
                else:
                    self.sock.sendto(self._packet(PT_PCMA, self._audio()), dest)
            except OSError:
                continue

    def _receive(self) -> None:
        last_event: tuple[int, int] | None = None
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12:
                continue
            now = time.monotonic()
            pt = data[1] & 0x7F
            ts = struct.unpack("!I", data[4:8])[0]
            payload = data[12:]
            with self._lock:
                if self.rx.source is None:
                    self.rx.source = addr
                if pt == PT_PCMA:
                    self.rx.samples.append(alaw_decode(payload))
                    self.rx.times.append(now)
                    if self.echo:
                        self._echo_ts = (self._echo_ts + FRAME) & 0xFFFFFFFF
                        with contextlib.suppress(OSError):
                            packet = self._packet(PT_PCMA, payload, ts=self._echo_ts)
                            self.sock.sendto(packet, addr)
                elif pt == PT_PCMU:
                    self.rx.samples.append(ulaw_decode(payload))
                    self.rx.times.append(now)
                elif pt >= 96 and len(payload) >= 4 and payload[1] & 0x80:
                    key = (payload[0], ts)
                    if key != last_event and payload[0] in EVENT_KEYS:
                        last_event = key
                        self.rx.events.append((now, EVENT_KEYS[payload[0]]))


def onsets(phone: RtpPhone, hz: float, threshold: float = 1000.0) -> list[float]:
    """Arrival times of the packets where a tone of `hz` starts (the packet before was quiet)."""
    with phone._lock:
        pairs = list(zip(phone.rx.times, phone.rx.samples, strict=True))
    out: list[float] = []
    was = False
    n = np.arange(FRAME)
    ref = np.exp(-2j * np.pi * hz * n / RATE)
    for when, pcm in pairs:
        level = float(np.abs(np.dot(pcm.astype(float), ref)) * 2 / FRAME)  # the tone's amplitude
        now = level > threshold
        if now and not was:
            out.append(when)
        was = now
    return out


def tone_level(pcm: np.ndarray, hz: float, rate: int = RATE, band: float = 25.0) -> float:
    """RMS amplitude of `pcm` within ±band Hz of `hz` (0 for no audio)."""
    if pcm.size < rate // 10:
        return 0.0
    window = np.hanning(pcm.size)
    spectrum = np.fft.rfft((pcm - pcm.mean()) * window)
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    power = np.abs(spectrum) ** 2
    selected = power[(freqs >= hz - band) & (freqs <= hz + band)].sum()
    # Parseval with the window's energy: the band's share of the signal's mean square
    return float(np.sqrt(2 * selected / (pcm.size * (window**2).sum())))


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt((pcm.astype(float) ** 2).mean())) if pcm.size else 0.0
