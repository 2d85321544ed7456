"""Generate RTP pcaps (PCMA audio plus RFC 4733 DTMF) that SIPp replays with play_pcap_audio."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000  # G.711 and telephone-event both clock at 8 kHz
PTIME_S = 0.020
SAMPLES_PER_PACKET = int(RATE * PTIME_S)  # 160
PT_PCMA = 8
PT_EVENT = 101
ALAW_SILENCE = 0xD5  # A-law code of linear 0

# RFC 4733 section 3.2: event codes for the DTMF keys.
DTMF_EVENTS: dict[str, int] = {
    **{str(d): d for d in range(10)},
    "*": 10,
    "#": 11,
    "A": 12,
    "B": 13,
    "C": 14,
    "D": 15,
}
EVENT_KEYS = {v: k for k, v in DTMF_EVENTS.items()}

# Addresses only need to look plausible: SIPp rewrites the destination to the peer's SDP address
# and the source port to its own media port; the destination *port* offset between packets must
# stay 0 (all packets are audio), so every packet uses the same ports.
_SRC_MAC = bytes.fromhex("020000000001")
_DST_MAC = bytes.fromhex("020000000002")
_SRC_IP = bytes([10, 0, 0, 1])
_DST_IP = bytes([10, 0, 0, 2])
_SRC_PORT = 6000
_DST_PORT = 4000


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet as read back from a pcap (for tests and debugging)."""

    time_s: float
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass(frozen=True)
class DtmfEvent:
    """One decoded telephone-event: the key, its RTP timestamp and final duration (samples)."""

    key: str
    timestamp: int
    duration: int
    time_s: float


# --- G.711 A-law ------------------------------------------------------------------------------

_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def alaw_encode(pcm: np.ndarray) -> bytes:
    """Encode 16-bit linear samples to G.711 A-law (ITU-T reference algorithm, vectorised)."""
    val = pcm.astype(np.int32) >> 3
    mask = np.where(val >= 0, 0xD5, 0x55)
    val = np.where(val >= 0, val, -val - 1)
    seg = np.searchsorted(_SEG_AEND, val, side="left")
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((val >> shift) & 0xF)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """Decode A-law bytes to 16-bit linear samples (used by tests to check the audio)."""
    a = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, np.where(seg == 1, t + 0x108, (t + 0x108) << (seg - 1)))
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _wav_to_alaw(wav: Path) -> bytes:
    """Convert any audio file sox can read to raw 8 kHz mono A-law."""
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is needed to convert WAV files for RTP pcaps")
    out = subprocess.run(
        [sox, str(wav), "-t", "raw", "-r", str(RATE), "-c", "1", "-e", "a-law", "-b", "8", "-"],
        check=True,
        capture_output=True,
    )
    return out.stdout


def _audio(duration_s: float, audio_wav: Path | None, tone_hz: float | None) -> bytes:
    n = round(duration_s * RATE)
    if audio_wav is not None:
        # Pad with silence (rather than loop) so the prompt is heard once, like a real caller.
        data = _wav_to_alaw(Path(audio_wav))[:n]
        return data + bytes([ALAW_SILENCE]) * (n - len(data))
    if tone_hz is None:
        return bytes([ALAW_SILENCE]) * n
    t = np.arange(n) / RATE
    # -12 dBFS: loud enough to be heard, far from clipping.
    return alaw_encode(np.round(8000 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16))


# --- packet framing ---------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(rtp: bytes, ip_id: int) -> bytes:
    udp_len = 8 + len(rtp)
    pseudo = _SRC_IP + _DST_IP + struct.pack("!BBH", 0, 17, udp_len)
    udp_nosum = struct.pack("!HHHH", _SRC_PORT, _DST_PORT, udp_len, 0) + rtp
    udp_sum = _checksum(pseudo + udp_nosum) or 0xFFFF  # 0 means "no checksum" in UDP
    udp = struct.pack("!HHHH", _SRC_PORT, _DST_PORT, udp_len, udp_sum) + rtp
    ip_hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ip_id & 0xFFFF, 0x4000, 64, 17, 0, _SRC_IP, _DST_IP
    )
    ip_hdr = ip_hdr[:10] + struct.pack("!H", _checksum(ip_hdr)) + ip_hdr[12:]
    return _DST_MAC + _SRC_MAC + b"\x08\x00" + ip_hdr + udp


def _rtp(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return (
        struct.pack(
            "!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc
        )
        + payload
    )


def _validate_dtmf(dtmf: Iterable[tuple[float, str]], duration_s: float, event_s: float) -> list:
    events = sorted((float(t), str(k).upper()) for t, k in dtmf)
    # Each event occupies its tone time plus two more 20 ms slots for the end retransmissions.
    busy = event_s + 2 * PTIME_S
    last_end = -1.0
    for t, key in events:
        if key not in DTMF_EVENTS:
            raise ValueError(f"not a DTMF key: {key!r}")
        if t < 0 or t + busy > duration_s:
            raise ValueError(f"DTMF {key!r} at {t}s does not fit in {duration_s}s of audio")
        if t < last_end:
            raise ValueError(f"DTMF {key!r} at {t}s overlaps the previous digit")
        last_end = t + busy
    return events


def rtp_packets(
    *,
    duration_s: float,
    dtmf: Sequence[tuple[float, str]] = (),
    audio_wav: Path | None = None,
    tone_hz: float | None = 440.0,
    dtmf_duration_s: float = 0.16,
    ssrc: int = 0x12345678,
    first_seq: int = 1000,
    first_ts: int = 160_000,
    event_pt: int = PT_EVENT,
) -> Iterator[tuple[float, bytes]]:
    """Yield (send time, RTP packet) for the whole stream, one packet per 20 ms slot.

    Audio is suppressed while a digit is sent (as real phones do), so time slots are never
    shared; the sequence number grows by one per packet and the timestamp follows the clock,
    except that every packet of one event carries the event's start timestamp (RFC 4733 2.5.1).
    """
    events = _validate_dtmf(dtmf, duration_s, dtmf_duration_s)
    audio = _audio(duration_s, audio_wav, tone_hz)
    n_slots = int(duration_s / PTIME_S)
    event_slots = max(1, round(dtmf_duration_s / PTIME_S))
    # slot index -> (event code, index within the event). An event is event_slots packets
    # (the last one with the end bit) plus two repeats of that last packet: 3 end packets.
    plan: dict[int, tuple[int, int]] = {}
    for t, key in events:
        start = round(t / PTIME_S)
        for i in range(event_slots + 2):
            plan[start + i] = (DTMF_EVENTS[key], i)
    seq = first_seq
    marker_next = True  # first audio packet of a talkspurt carries the marker (RFC 3551)
    for slot in range(n_slots):
        ts = first_ts + slot * SAMPLES_PER_PACKET
        when = slot * PTIME_S
        if slot in plan:
            code, i = plan[slot]
            event_start = slot - i
            event_ts = first_ts + event_start * SAMPLES_PER_PACKET
            end = i >= event_slots - 1
            # Duration grows by one packet until the key is released, then the final packet is
            # sent three times (RFC 4733 2.5.1.4) with the same duration and new sequence numbers.
            duration = min(i + 1, event_slots) * SAMPLES_PER_PACKET
            volume = 10  # -10 dBm0, a typical value
            payload = struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)
            pkt = _rtp(event_pt, i == 0, seq, event_ts, ssrc, payload)
            # After the last end packet, marking the next audio packet restarts the talkspurt.
            marker_next = True
        else:
            chunk = audio[slot * SAMPLES_PER_PACKET : (slot + 1) * SAMPLES_PER_PACKET]
            pkt = _rtp(PT_PCMA, marker_next, seq, ts, ssrc, chunk)
            marker_next = False
        seq += 1
        yield when, pkt


def write_pcap(
    path: Path, packets: Iterable[tuple[float, bytes]], *, epoch: int = 1_700_000_000
) -> Path:
    """Write RTP payloads as Ethernet/IPv4/UDP frames into a classic (libpcap 2.4) file."""
    path = Path(path)
    with path.open("wb") as f:
        # magic, version 2.4, GMT offset, accuracy, snaplen, linktype 1 = Ethernet
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ip_id, (when, rtp) in enumerate(packets):
            frame = _frame(rtp, ip_id)
            usec_total = round(when * 1_000_000)
            sec, usec = divmod(usec_total, 1_000_000)
            f.write(struct.pack("<IIII", epoch + sec, usec, len(frame), len(frame)))
            f.write(frame)
    return path


def write_rtp_pcap(
    path: Path,
    *,
    duration_s: float,
    dtmf: Sequence[tuple[float, str]] = (),
    audio_wav: Path | None = None,
    tone_hz: float | None = 440.0,
    dtmf_duration_s: float = 0.16,
    event_pt: int = PT_EVENT,
) -> Path:
    """Write a pcap of `duration_s` of PCMA (from `audio_wav`, else a tone, else silence) with
    RFC 4733 digits `dtmf` = [(time in seconds, key), ...] for SIPp's play_pcap_audio.
    `event_pt`: the telephone-event payload type the receiver announced in its SDP."""
    return write_pcap(
        path,
        rtp_packets(
            duration_s=duration_s,
            dtmf=dtmf,
            audio_wav=audio_wav,
            tone_hz=tone_hz,
            dtmf_duration_s=dtmf_duration_s,
            event_pt=event_pt,
        ),
    )


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    """Write 8 kHz mono 16-bit samples as a WAV file (test input for the sox path)."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.astype("<i2").tobytes())
    return Path(path)


# --- reading back -----------------------------------------------------------------------------


def read_rtp_pcap(path: Path) -> list[RtpPacket]:
    """Parse a pcap written by write_pcap (or any Ethernet/IPv4/UDP RTP pcap) back to packets."""
    data = Path(path).read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0xA1B2C3D4 else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"unsupported link type {linktype}")
    off = 24
    out: list[RtpPacket] = []
    while off + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack(endian + "IIII", data[off : off + 16])
        frame = data[off + 16 : off + 16 + incl]
        off += 16 + incl
        if frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0x0F) * 4
        if frame[14 + 9] != 17:
            continue
        rtp = frame[14 + ihl + 8 :]
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", rtp[:12])
        if b0 >> 6 != 2:
            continue
        cc = b0 & 0x0F
        out.append(
            RtpPacket(
                time_s=sec + usec / 1e6,
                payload_type=b1 & 0x7F,
                marker=bool(b1 & 0x80),
                seq=seq,
                timestamp=ts,
                ssrc=ssrc,
                payload=rtp[12 + 4 * cc :],
            )
        )
    return out


def decode_dtmf(packets: Sequence[RtpPacket], event_pt: int = PT_EVENT) -> list[DtmfEvent]:
    """Collapse telephone-event packets into digits the way a receiver does: one digit per
    distinct event timestamp, taken when its end bit arrives."""
    seen: set[int] = set()
    out: list[DtmfEvent] = []
    for p in packets:
        if p.payload_type != event_pt or len(p.payload) < 4:
            continue
        code, flags, duration = struct.unpack("!BBH", p.payload[:4])
        if flags & 0x80 and p.timestamp not in seen:
            seen.add(p.timestamp)
            out.append(DtmfEvent(EVENT_KEYS.get(code, "?"), p.timestamp, duration, p.time_s))
    return out


def _selftest() -> None:  # pragma: no cover - handy from a shell: python -m tests.sip.pcap
    with tempfile.TemporaryDirectory() as d:
        p = write_rtp_pcap(Path(d) / "x.pcap", duration_s=2, dtmf=[(0.5, "1"), (1.0, "#")])
        pk = read_rtp_pcap(p)
        print(len(pk), [e.key for e in decode_dtmf(pk)])


if __name__ == "__main__":  # pragma: no cover
    _selftest()
