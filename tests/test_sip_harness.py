"""The SIP test harness itself: RTP pcap generation, scenario templates, SIPp UAC↔UAS calls."""

from __future__ import annotations

import itertools
import re
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.sip.pcap import (
    ALAW_SILENCE,
    PT_EVENT,
    PT_PCMA,
    SAMPLES_PER_PACKET,
    RtpPacket,
    alaw_decode,
    alaw_encode,
    decode_dtmf,
    read_rtp_pcap,
    write_rtp_pcap,
    write_wav,
)
from tests.sip.sipp import (
    free_port,
    free_port_block,
    render_scenario,
    run_sipp,
    scenario_names,
    sipp_server,
    start_sipp,
)

DIGITS = [(0.5, "1"), (1.0, "2"), (1.5, "#"), (2.0, "*"), (2.5, "A"), (3.0, "0")]


# --- pcap -------------------------------------------------------------------------------------


def _check_stream(packets: list[RtpPacket]) -> None:
    """Invariants a receiver such as pjmedia relies on."""
    assert packets
    seqs = [p.seq for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs)), seqs
    stamps = [p.timestamp for p in packets]
    assert all(b >= a for a, b in itertools.pairwise(stamps))
    assert len({p.ssrc for p in packets}) == 1
    assert {p.payload_type for p in packets} <= {PT_PCMA, PT_EVENT}


def test_pcap_round_trip(tmp_path: Path) -> None:
    path = write_rtp_pcap(tmp_path / "a.pcap", duration_s=4.0, dtmf=DIGITS)
    packets = read_rtp_pcap(path)
    assert len(packets) == 200  # one per 20 ms
    _check_stream(packets)
    times = [p.time_s for p in packets]
    assert all(b > a for a, b in itertools.pairwise(times))

    audio = [p for p in packets if p.payload_type == PT_PCMA]
    assert all(len(p.payload) == SAMPLES_PER_PACKET for p in audio)
    # Audio timestamps follow the 8 kHz clock exactly: 160 per 20 ms of wall time.
    t0, ts0 = packets[0].time_s, packets[0].timestamp
    for p in audio:
        assert p.timestamp - ts0 == round((p.time_s - t0) * 8000)

    events = decode_dtmf(packets)
    assert [e.key for e in events] == [k for _, k in DIGITS]
    for (when, _), e in zip(DIGITS, events, strict=True):
        assert e.timestamp - ts0 == round(when * 8000)
        assert e.duration == 8 * SAMPLES_PER_PACKET  # 160 ms

    # Per event (RFC 4733): marker on the first packet only, one timestamp, durations growing,
    # end bit on exactly the last three packets, which repeat the final duration.
    for e in events:
        pk = [p for p in packets if p.payload_type == PT_EVENT and p.timestamp == e.timestamp]
        assert [p.marker for p in pk] == [True] + [False] * (len(pk) - 1)
        fields = [struct.unpack("!BBH", p.payload) for p in pk]
        ends = [bool(f[1] & 0x80) for f in fields]
        assert ends == [False] * (len(pk) - 3) + [True] * 3
        durations = [f[2] for f in fields]
        assert durations == sorted(durations)
        assert len(set(durations[-3:])) == 1
    # Audio resumes after each digit with the marker set (a new talkspurt).
    after = [packets[i + 1] for i in range(len(packets) - 1) if packets[i].payload_type == 101]
    assert all(p.marker for p in after if p.payload_type == PT_PCMA)


def test_pcap_tone_and_silence(tmp_path: Path) -> None:
    silent = read_rtp_pcap(write_rtp_pcap(tmp_path / "s.pcap", duration_s=0.2, tone_hz=None))
    assert all(set(p.payload) == {ALAW_SILENCE} for p in silent)
    tone = read_rtp_pcap(write_rtp_pcap(tmp_path / "t.pcap", duration_s=1.0, tone_hz=1000))
    pcm = alaw_decode(b"".join(p.payload for p in tone)).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 1000) < 5


def test_pcap_from_wav(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    wav = write_wav(tmp_path / "in.wav", np.round(6000 * np.sin(2 * np.pi * 300 * t)))
    packets = read_rtp_pcap(
        write_rtp_pcap(tmp_path / "w.pcap", duration_s=2.0, audio_wav=wav, dtmf=[(1.5, "9")])
    )
    _check_stream(packets)
    audio = b"".join(p.payload for p in packets if p.payload_type == PT_PCMA)
    pcm = alaw_decode(audio)
    assert np.max(np.abs(pcm[:8000])) > 5000  # the WAV's second of tone
    assert np.max(np.abs(pcm[8000:])) < 16  # then silence padding
    assert [e.key for e in decode_dtmf(packets)] == ["9"]


def test_alaw_codec() -> None:
    assert alaw_encode(np.array([0], dtype=np.int16)) == bytes([ALAW_SILENCE])
    x = np.linspace(-32768, 32767, 5000).astype(np.int16)
    y = alaw_decode(alaw_encode(x)).astype(int)
    # A-law keeps ~12 bits of relative precision.
    assert np.all(np.abs(y - x) <= np.maximum(16, np.abs(x.astype(int)) // 16))


def test_pcap_rejects_bad_digits(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_rtp_pcap(tmp_path / "x.pcap", duration_s=2, dtmf=[(0.5, "X")])
    with pytest.raises(ValueError):  # overlapping digits
        write_rtp_pcap(tmp_path / "x.pcap", duration_s=2, dtmf=[(0.5, "1"), (0.6, "2")])
    with pytest.raises(ValueError):  # does not fit
        write_rtp_pcap(tmp_path / "x.pcap", duration_s=1, dtmf=[(0.95, "1")])


# --- scenarios and ports ----------------------------------------------------------------------


def test_scenarios_render(tmp_path: Path) -> None:
    # Only the harness's own scenarios: others may add templates with placeholders of their own.
    ours = ("uac_ivr", "uac_hangup", "uac_codec_opus", "uas_answer", "uas_busy", "uas_hangup")
    assert set(ours) <= set(scenario_names())
    for name in ours:
        text = render_scenario(name, tmp_path, pcap="/x/y.pcap").read_text()
        assert re.search(r"\{\{\w+\}\}", text) is None, name
    with pytest.raises(KeyError):
        render_scenario("uac_hangup", tmp_path)  # no pcap given


def test_free_ports() -> None:
    p = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
        u.bind(("127.0.0.1", p))
        t.bind(("127.0.0.1", p))
    base = free_port_block(4)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    try:
        for i, s in enumerate(socks):
            s.bind(("127.0.0.1", base + i))
    finally:
        for s in socks:
            s.close()


def _parse_rtp(data: bytes, when: float) -> RtpPacket:
    _, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
    return RtpPacket(when, b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, data[12:])


# --- SIPp calls -------------------------------------------------------------------------------


def test_sipp_call_carries_rtp_and_dtmf(tmp_path: Path) -> None:
    """UAC (uac_hangup) → UAS (uas_answer) whose SDP points at our socket: the RTP the caller
    replays arrives in order and its digits decode as sent."""
    pcap = write_rtp_pcap(tmp_path / "caller.pcap", duration_s=2.0, dtmf=DIGITS[:3])
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.settimeout(0.2)
    received: list[RtpPacket] = []
    try:
        with sipp_server(
            "uas_answer", tmp_path / "uas", pcap=pcap, values={"sdp_port": rtp.getsockname()[1]}
        ) as uas:
            uac = start_sipp(
                "uac_hangup",
                tmp_path / "uac",
                uas.address,
                calls=1,
                duration_ms=2500,
                pcap=pcap,
                timeout_s=60,
            )
            try:
                while uac.running() or len(received) < 100:
                    try:
                        data = rtp.recv(2048)
                    except TimeoutError:
                        if not uac.running():
                            break
                        continue
                    received.append(_parse_rtp(data, len(received) * 0.02))
                result = uac.wait(timeout_s=30)
            finally:
                uac.stop(grace_s=2)
        server = uas.result()
    finally:
        rtp.close()
    assert (result.successful, result.failed) == (1, 0), result.summary()
    assert server.logged("answered") == 1, server.summary()
    assert len(received) == 100, len(received)
    _check_stream(received)
    assert [e.key for e in decode_dtmf(received)] == ["1", "2", "#"]


def test_sipp_ivr_call_server_hangs_up(tmp_path: Path) -> None:
    pcap = write_rtp_pcap(tmp_path / "p.pcap", duration_s=1.0, dtmf=[(0.3, "5")])
    with sipp_server("uas_hangup", tmp_path / "uas", pcap=pcap, duration_ms=1000) as uas:
        uac = run_sipp(
            "uac_ivr",
            tmp_path / "uac",
            uas.address,
            calls=3,
            rate=10,
            pcap=pcap,
            values={"bye_timeout_ms": 20000},
            timeout_s=60,
        )
    server = uas.result()
    assert (uac.successful, uac.failed, uac.unexpected) == (3, 0, 0), uac.summary()
    assert uac.returncode == 0
    assert len(uac.response_times_ms) == 3 and uac.p99_ms is not None
    assert server.logged("answered") == 3, server.summary()


def test_sipp_codec_mismatch_gets_488(tmp_path: Path) -> None:
    with sipp_server(
        "uas_busy", tmp_path / "uas", values={"code": 488, "reason": "Not Acceptable Here"}
    ) as uas:
        uac = run_sipp("uac_codec_opus", tmp_path / "uac", uas.address, calls=2, timeout_s=60)
    assert (uac.successful, uac.failed) == (2, 0), uac.summary()
    assert uas.result().logged("refused") == 2


def test_sipp_failed_call_is_reported(tmp_path: Path) -> None:
    """A UAC expecting 200 from a backend that answers 486 must come back as failed."""
    pcap = write_rtp_pcap(tmp_path / "p.pcap", duration_s=0.5)
    with sipp_server("uas_busy", tmp_path / "uas") as uas:
        uac = run_sipp(
            "uac_hangup", tmp_path / "uac", uas.address, calls=2, pcap=pcap, timeout_s=60
        )
    assert uac.successful == 0 and uac.failed == 2, uac.summary()
    assert uac.returncode != 0
