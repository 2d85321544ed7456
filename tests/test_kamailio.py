"""Kamailio (generated config) in front of SIPp backends: balancing, failover, bad input."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telephony.config import TelephonySettings
from telephony.kamailio import (
    KamailioProcess,
    check_config,
    render_kamailio,
    sip_ping,
    start_kamailio,
    write_kamailio_config,
)
from tests.sip.pcap import write_rtp_pcap
from tests.sip.sipp import SippProcess, SippResult, free_port, run_sipp, start_sipp

HOLD_MS = 3000


def _settings(port: int, workers: int = 3, **more: Any) -> TelephonySettings:
    # worker_base_port only has to stay clear of `port`: the tests pass the real backends.
    return TelephonySettings(
        host="127.0.0.1",
        port=port,
        workers=workers,
        worker_base_port=1100 if port > 2000 else 40000,
        **more,
    )


# --- config rendering -------------------------------------------------------------------------


def test_render_lists_workers_and_listens(tmp_path: Path) -> None:
    s = TelephonySettings(port=25060, workers=3, worker_base_port=25070)
    cfg, lst = write_kamailio_config(s, tmp_path)
    text = cfg.read_text()
    assert "listen=udp:127.0.0.1:25060" in text
    assert "listen=tcp:127.0.0.1:25060" in text
    assert f'"{tmp_path.resolve() / "dispatcher.list"}"' in text
    lines = [x for x in lst.read_text().splitlines() if not x.startswith("#")]
    # worker_port(i) for workers > 1 is worker_base_port + i
    assert lines == [f"1 sip:127.0.0.1:{p} 0 0" for p in (25070, 25071, 25072)]
    assert "ok" in check_config(cfg)


def test_a_second_workers_host_numbers_its_workers_apart_and_keeps_its_ports(
    tmp_path: Path,
) -> None:
    """Host B (first_worker = 100) runs workers 100 and 101 on the same ports host A's 0 and
    1 use: numbers tell the workers apart at the call centre, ports stay per host."""
    b = TelephonySettings(port=25060, workers=2, worker_base_port=25070, first_worker=100)
    assert list(b.worker_indexes) == [100, 101]
    assert [b.worker_port(i) for i in b.worker_indexes] == [25070, 25071]
    assert b.rtp_port(101) == b.rtp_base_port + b.rtp_ports_per_worker
    _, lst = write_kamailio_config(b, tmp_path)
    lines = [x for x in lst.read_text().splitlines() if not x.startswith("#")]
    assert lines == [f"1 sip:127.0.0.1:{p} 0 0" for p in (25070, 25071)]


def test_render_udp_only_and_bad_workers() -> None:
    s = TelephonySettings(port=25060, workers=2, worker_base_port=25070, transports=["udp"])
    cfg = render_kamailio(s, [("127.0.0.1", 25070)], config_dir=Path("/tmp"))["kamailio.cfg"]
    assert "listen=tcp:" not in cfg
    assert "disable_tcp=yes" in cfg
    with pytest.raises(ValueError):
        render_kamailio(s, [])
    with pytest.raises(ValueError):
        render_kamailio(s, [("127.0.0.1", 25060)])  # Kamailio's own address


def test_trusted_peers_are_left_out_of_the_flood_guard(tmp_path: Path) -> None:
    s = TelephonySettings(
        port=25060,
        workers=2,
        worker_base_port=25070,
        kamailio_trusted=["10.20.0.5", "10.21.0.9/29"],
    )
    assert s.kamailio_trusted == ["10.20.0.5/32", "10.21.0.8/29"]
    cfg, _ = write_kamailio_config(s, tmp_path)
    text = cfg.read_text()
    assert 'is_in_subnet("$si", "10.20.0.5/32,10.21.0.8/29")' in text
    assert "ok" in check_config(cfg)  # ipops is loaded and the test parses
    plain = render_kamailio(TelephonySettings(port=25060), [("127.0.0.1", 25070)])
    assert "is_in_subnet" not in plain["kamailio.cfg"]
    assert "ipops" not in plain["kamailio.cfg"]
    with pytest.raises(ValueError, match="kamailio_trusted"):
        TelephonySettings(kamailio_trusted=["sbc.example.net"])


# --- live Kamailio + SIPp backends ------------------------------------------------------------


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Caller audio: a 3 s tone with two digits, like a caller choosing a menu entry."""
    path = tmp_path_factory.mktemp("pcap") / "caller.pcap"
    return write_rtp_pcap(path, duration_s=3.0, dtmf=[(1.0, "1"), (2.0, "2")])


@contextlib.contextmanager
def backends(
    tmp_path: Path, kinds: list[str | None], pcap: Path
) -> Iterator[list[tuple[SippProcess | None, int]]]:
    """One SIPp UAS per entry: "answer" (uas_answer), "busy" (uas_busy → 486), or None for a
    port where nothing runs (a dead worker). Every process is stopped by PID on exit."""
    started: list[tuple[SippProcess | None, int]] = []
    proc: SippProcess | None
    try:
        for i, kind in enumerate(kinds):
            if kind is None:
                started.append((None, free_port("127.0.0.1", udp=True, tcp=False)))
                continue
            scenario = {"answer": "uas_answer", "busy": "uas_busy"}[kind]
            proc = start_sipp(scenario, tmp_path / f"backend{i}", pcap=pcap, timeout_s=300)
            started.append((proc, proc.port))
        for proc, _ in started:
            if proc is not None:
                proc.wait_listening()
        yield started
    finally:
        for proc, _ in started:
            if proc is not None:
                proc.stop(grace_s=5.0)


@contextlib.contextmanager
def kamailio(
    tmp_path: Path, ports: list[int], ping_interval_s: int = 2, **settings: Any
) -> Iterator[KamailioProcess]:
    port = free_port("127.0.0.1", udp=True, tcp=True)
    workers = [("127.0.0.1", p) for p in ports]
    proc = start_kamailio(
        _settings(port, **settings),
        tmp_path / "kamailio",
        workers,
        children=2,
        ping_interval_s=ping_interval_s,
    )
    try:
        yield proc
    finally:
        proc.stop()


def _backend_results(started: list[tuple[SippProcess | None, int]]) -> list[SippResult | None]:
    return [proc.stop(grace_s=10.0) if proc is not None else None for proc, _ in started]


def _call(tmp_path: Path, kam: KamailioProcess, calls: int, name: str, pcap: Path) -> SippResult:
    return run_sipp(
        "uac_hangup",
        tmp_path / name,
        (kam.host, kam.port),
        service="12345",
        calls=calls,
        rate=calls,  # all calls start within about a second: they overlap for HOLD_MS
        limit=calls,
        duration_ms=HOLD_MS,
        pcap=pcap,
        timeout_s=120,
        wait_s=150,
    )


def _explain(uac: SippResult, results: list[SippResult | None], kam: KamailioProcess) -> str:
    parts = [uac.summary()]
    parts += [r.summary() for r in results if r is not None]
    parts.append(kam.log()[-4000:])
    return "\n".join(parts)


def test_concurrent_calls_spread_over_backends(tmp_path: Path, pcap: Path) -> None:
    with (
        backends(tmp_path, ["answer", "answer", "answer"], pcap) as started,
        kamailio(tmp_path, [p for _, p in started]) as kam,
    ):
        uac = _call(tmp_path, kam, 12, "uac", pcap)
        results = _backend_results(started)
        why = _explain(uac, results, kam)
        assert kam.running(), why
    assert uac.returncode == 0, why
    assert (uac.successful, uac.failed) == (12, 0), why
    answered = [r.logged("answered") for r in results if r is not None]
    assert sum(answered) == 12, why
    assert sum(1 for n in answered if n > 0) >= 2, why
    assert len(uac.response_times_ms) == 12, why


def test_busy_backend_fails_over(tmp_path: Path, pcap: Path) -> None:
    with (
        backends(tmp_path, ["answer", "busy", "answer"], pcap) as started,
        kamailio(tmp_path, [p for _, p in started]) as kam,
    ):
        uac = _call(tmp_path, kam, 12, "uac", pcap)
        results = _backend_results(started)
        why = _explain(uac, results, kam)
    assert (uac.successful, uac.failed) == (12, 0), why
    good, busy, good2 = results
    assert good is not None and busy is not None and good2 is not None
    assert good.logged("answered") + good2.logged("answered") == 12, why
    # Round robin sends some first attempts to the busy backend: failover really happened.
    assert busy.logged("refused") > 0, why
    assert busy.logged("answered") == 0, why


def test_dead_backend_is_skipped(tmp_path: Path, pcap: Path) -> None:
    with (
        backends(tmp_path, ["answer", None, "answer"], pcap) as started,
        kamailio(tmp_path, [p for _, p in started]) as kam,
    ):
        uac = _call(tmp_path, kam, 9, "uac", pcap)
        results = _backend_results(started)
        why = _explain(uac, results, kam)
    assert (uac.successful, uac.failed) == (9, 0), why
    assert sum(r.logged("answered") for r in results if r is not None) == 9, why


def test_dead_backend_found_by_keepalive(tmp_path: Path, pcap: Path) -> None:
    """Without any call, OPTIONS probing alone takes a dead worker out of rotation, so later
    calls never wait for it."""
    with backends(tmp_path, ["answer", None], pcap) as started:
        dead = started[1][1]
        with kamailio(tmp_path, [p for _, p in started], ping_interval_s=1) as kam:
            marker = f"SIP worker down: sip:127.0.0.1:{dead}"
            # A condition, not a duration: the bound only stops a broken run from hanging.
            deadline = time.monotonic() + 60
            while marker not in kam.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert marker in kam.log(), kam.log()
            uac = _call(tmp_path, kam, 4, "uac", pcap)
            log = kam.log()
            results = _backend_results(started)
            why = _explain(uac, results, kam)
    assert (uac.successful, uac.failed) == (4, 0), why
    assert results[0] is not None and results[0].logged("answered") == 4, why
    assert "did not answer" not in log, why


def test_the_trunk_is_not_taken_for_a_flood(tmp_path: Path, pcap: Path) -> None:
    """Every caller of the region arrives from the carrier's trunk: from an address in
    kamailio_trusted, a call rate far over the flood guard's limit goes through whole, while
    the same rate from any other address is dropped as a flood."""
    trunk = "127.0.0.3"
    with (
        backends(tmp_path, ["answer", "answer"], pcap) as started,
        kamailio(
            tmp_path,
            [p for _, p in started],
            kamailio_pike_requests=10,
            kamailio_trusted=[trunk],
        ) as kam,
    ):
        # 24 calls × (INVITE, ACK, BYE) from one address: over 10 requests per 2 s however
        # slowly the machine sends them (the whole run lasts about HOLD_MS + 2 s)
        burst: dict[str, Any] = {
            "calls": 24,
            "rate": 24,
            "limit": 24,
            "duration_ms": HOLD_MS,
            "pcap": pcap,
            "timeout_s": 120,
        }
        remote = (kam.host, kam.port)
        uac = run_sipp(
            "uac_hangup", tmp_path / "trunk", remote, local_ip=trunk, wait_s=150, **burst
        )
        flood = start_sipp("uac_hangup", tmp_path / "other", remote, local_ip="127.0.0.4", **burst)
        try:
            deadline = time.monotonic() + 60
            while "flood from 127.0.0.4" not in kam.log() and time.monotonic() < deadline:
                time.sleep(0.2)
            log = kam.log()
        finally:
            flood.stop(grace_s=5.0)
        results = _backend_results(started)
        why = _explain(uac, results, kam)
    assert (uac.successful, uac.failed) == (24, 0), why
    assert f"flood from {trunk}" not in log, why
    assert "flood from 127.0.0.4" in log, why


def _send_udp(port: int, payload: bytes, wait_s: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(wait_s)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def _request(port: int, *, call_id: bool, method: str = "INVITE", extra: str = "") -> bytes:
    lines = [
        f"{method} sip:12345@127.0.0.1:{port} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-bad-1",
        "From: <sip:bad@127.0.0.1>;tag=bad1",
        f"To: <sip:12345@127.0.0.1:{port}>",
        *(["Call-ID: bad-1@127.0.0.1"] if call_id else []),
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        *([extra] if extra else []),
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def test_malformed_sip_does_not_hurt(tmp_path: Path, pcap: Path) -> None:
    with (
        backends(tmp_path, ["answer", "answer"], pcap) as started,
        kamailio(tmp_path, [p for _, p in started]) as kam,
    ):
        port = kam.port
        garbage = [
            b"\x00\xff\xfe garbage \x01\x02" * 20,
            b"\r\n\r\n",
            b"INVITE\r\n\r\n",
            b"SIP/2.0 200 OK\r\n\r\n",  # a reply to nothing
            _request(port, call_id=False),  # no Call-ID
            _request(port, call_id=True, extra="CSeq: x INVITE"),  # two CSeq, one bad
            _request(port, call_id=True).replace(b"Content-Length: 0", b"Content-Length: 999"),
            _request(port, call_id=True).replace(b"sip:12345@", b"sip:@@"),  # bad R-URI
        ]
        replies = [_send_udp(port, g) for g in garbage]
        for reply in replies:
            # Silence (dropped by the parser) or a client error; never a call set up.
            if reply is not None:
                code = int(reply.split(b" ", 2)[1])
                assert 400 <= code < 500, reply
        assert kam.running(), kam.log()
        assert sip_ping(kam.host, port) == 200, kam.log()
        uac = _call(tmp_path, kam, 2, "uac_after", pcap)
        results = _backend_results(started)
        why = _explain(uac, results, kam)
        assert kam.running(), why
    assert (uac.successful, uac.failed) == (2, 0), why
    # The malformed requests never reached a backend.
    assert sum(r.logged("answered") for r in results if r is not None) == 2, why
    assert all(r.unexpected == 0 for r in results if r is not None), why
