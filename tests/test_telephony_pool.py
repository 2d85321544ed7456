"""The scale-out shape: `hotline serve` with several SIP worker processes and a real Kamailio in
front (its configuration from telephony/kamailio.py), taking more concurrent calls than one
worker can hold (4) — none may fail — and surviving a worker's death."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.config import REPO_ROOT, load_settings
from telephony.kamailio import KamailioProcess, start_kamailio
from tests.hotline_server import Server, StaffClient
from tests.ports import free_port, free_port_block
from tests.sip.pcap import write_rtp_pcap
from tests.sip.sipp import run_sipp, start_sipp
from tests.test_telephony_sip import add_user

WORKERS = 3
RT_PRIORITY = 3
PASSWORD = "test-password-1"


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, KamailioProcess]]:
    tmp = tmp_path_factory.mktemp("pool")
    db_url = f"sqlite:///{tmp / 'hotline.db'}"
    front = free_port()
    base = free_port_block(WORKERS)
    while front in range(base, base + WORKERS):
        base = free_port_block(WORKERS)
    env = {
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__TELEPHONY__WORKERS": str(WORKERS),
        "HOTLINE__TELEPHONY__WORKER_BASE_PORT": str(base),
        # IVR-only callers: all 4 of a worker's call slots take callers, so 10 calls need
        # three workers (one holds 4 at most)
        "HOTLINE__TELEPHONY__CALLERS_PER_WORKER": "4",
        # the workers' threads on SCHED_RR (test_workers_run_at_real_time_priority)
        "HOTLINE__TELEPHONY__REALTIME_PRIORITY": str(RT_PRIORITY),
    }
    server = Server(tmp, db_url, env=env)
    # the same settings the server runs with, for Kamailio's configuration
    settings_env = {
        **env,
        "HOTLINE__TELEPHONY__PORT": str(front),
        "HOTLINE__DATABASE__URL": db_url,
    }
    tel = load_settings(REPO_ROOT / "config.toml", environ=settings_env).telephony
    kamailio: KamailioProcess | None = None
    try:
        server.wait_ready(sip_workers=WORKERS)
        kamailio = start_kamailio(tel, tmp / "kamailio", children=2)
        add_user(db_url, "super1", "supervisor")
        server.front_port = front  # type: ignore[attr-defined]
        yield server, kamailio
    finally:
        if kamailio is not None:
            kamailio.stop()
        code = server.stop() if server.proc.poll() is None else server.proc.returncode
        output = server.output()
        server.kill()
        assert code == 0, output
        assert "Traceback" not in output, output


def ended_calls(client: StaffClient) -> list[dict[str, Any]]:
    status, body = client.get("/calls?limit=200")
    assert status == 200
    return [c for c in body["items"] if c["ended_at"]]


def test_kamailio_spreads_more_calls_than_one_worker_holds_none_failing(
    pool: tuple[Server, KamailioProcess], tmp_path: Path
) -> None:
    server, _ = pool
    calls = 10  # > 2 workers × 4 calls: needs all three
    pcap = write_rtp_pcap(tmp_path / "caller.pcap", duration_s=10, dtmf=[(1.0, "1")])
    result = run_sipp(
        "caller_call",
        tmp_path / "load",
        ("127.0.0.1", server.front_port),  # type: ignore[attr-defined]
        calls=calls,
        rate=20,
        limit=calls,
        pcap=pcap,
        values={"hold_ms": 8000},
        keys={"caller": "13800000201"},
        timeout_s=60,
        wait_s=90,
    )
    assert (result.successful, result.failed) == (calls, 0), result.summary()
    supervisor = StaffClient(server, "super1", PASSWORD)
    deadline = time.monotonic() + 60
    while len(ended_calls(supervisor)) < calls and time.monotonic() < deadline:
        time.sleep(0.25)
    records = ended_calls(supervisor)
    assert len(records) == calls
    assert {r["worker"] for r in records} == set(range(WORKERS))  # every worker took calls
    assert all(r["ivr_path"].startswith("lang:cmn") for r in records)


def test_a_dead_worker_is_skipped_and_restarted(
    pool: tuple[Server, KamailioProcess], tmp_path: Path
) -> None:
    server, kamailio = pool
    supervisor = StaffClient(server, "super1", PASSWORD)
    _, snap = supervisor.get("/callcenter")
    victim = snap["workers"][0]
    os.kill(victim["pid"], signal.SIGKILL)
    pcap = write_rtp_pcap(tmp_path / "caller.pcap", duration_s=4)
    result = run_sipp(
        "caller_call",
        tmp_path / "after-kill",
        ("127.0.0.1", server.front_port),  # type: ignore[attr-defined]
        calls=6,
        rate=10,
        limit=6,
        pcap=pcap,
        values={"hold_ms": 2000},
        keys={"caller": "13800000202"},
        timeout_s=60,
    )
    assert (result.successful, result.failed) == (6, 0), result.summary()
    assert kamailio.running()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, snap = supervisor.get("/callcenter")
        pids = {w["index"]: w["pid"] for w in snap["workers"]}
        if len(pids) == WORKERS and pids.get(victim["index"]) != victim["pid"]:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"worker {victim['index']} was not restarted: {snap}")
    assert "restarting" in server.output()


def scheduling(pid: int) -> dict[int, tuple[int, int]]:
    """(policy, real-time priority) of every thread of a process, by thread id."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = (
                os.sched_getscheduler(int(tid)),
                os.sched_getparam(int(tid)).sched_priority,
            )
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    return out


def test_workers_run_at_real_time_priority(pool: tuple[Server, KamailioProcess]) -> None:
    """realtime_priority puts every thread of every worker on SCHED_RR (pjmedia's clock thread
    and aiortc's included: they inherit it), the one restarted after a crash too (this runs
    after the test above), and leaves the server itself alone. Every worker took calls at it
    in the tests above."""
    server, _ = pool
    supervisor = StaffClient(server, "super1", PASSWORD)
    _, snap = supervisor.get("/callcenter")
    assert len(snap["workers"]) == WORKERS
    for worker in snap["workers"]:
        threads = scheduling(worker["pid"])
        assert len(threads) > 2, threads  # the loop, pjmedia's clock, aiortc's, …
        # pjmedia's clock thread lifts itself to its policy's highest priority (99 for RR)
        assert set(threads.values()) <= {(os.SCHED_RR, RT_PRIORITY), (os.SCHED_RR, 99)}, (
            worker,
            threads,
        )
        assert (os.SCHED_RR, RT_PRIORITY) in threads.values()
    assert set(scheduling(server.proc.pid).values()) == {(os.SCHED_OTHER, 0)}
    assert "real-time priority 3" in server.output()


# -- scanners and floods at the front door ---------------------------------------------------------
def _sv(tool: str, *args: str, timeout_s: float = 120) -> str:
    """Run a sipvicious tool (Debian's sipvicious) and return what it printed."""
    out = subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    return out.stdout + out.stderr


def test_sip_scanners_learn_nothing_and_break_nothing(
    pool: tuple[Server, KamailioProcess], tmp_path: Path
) -> None:
    """svmap, svwar and svcrack against the public SIP port: no crash, no outbound call, and
    nothing learned beyond what any caller knows (the hotline's public number)."""
    server, _ = pool
    supervisor = StaffClient(server, "super1", PASSWORD)
    _, before = supervisor.get("/callcenter")
    target = f"127.0.0.1:{server.front_port}"  # type: ignore[attr-defined]
    found = _sv("svmap", target, "-p", str(server.front_port))  # type: ignore[attr-defined]
    assert "hotline" in found.lower() or "12345" in found or target in found, found
    wordlist = tmp_path / "words.txt"
    wordlist.write_text("\n".join(["1234", "12345", "admin", "password", "hotline"]))
    extensions = _sv("svwar", "-e", "100-120,12340-12350,8000-8010", "-m", "INVITE", target)
    crack = _sv("svcrack", "-u", "12345", "-d", str(wordlist), target)
    # what it enumerated is only the public number; nothing authenticates, nothing cracks
    listed = set(re.findall(r"\|\s*(\d+)\s*\|", extensions))
    assert listed <= {"12345"}, extensions
    # a cracked row would read "| 12345 | <password> |"
    cracked = re.search(r"\|\s*12345\s*\|\s*(1234|12345|admin|password|hotline)\s*\|", crack)
    assert cracked is None, crack
    _, after = supervisor.get("/callcenter")
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]]
    _, calls = supervisor.get("/calls?limit=200")
    assert not [c for c in calls["items"] if c["direction"] == "out"]  # no call placed out


def test_kamailio_drops_a_flood_before_the_workers(
    pool: tuple[Server, KamailioProcess], tmp_path: Path
) -> None:
    """pike at the front: one address flooding is dropped by Kamailio (logged), while a caller
    from another address gets through."""
    server, kamailio = pool
    pcap = write_rtp_pcap(tmp_path / "flood.pcap", duration_s=2)
    flood = start_sipp(
        "caller_call",
        tmp_path / "flood",
        ("127.0.0.1", server.front_port),  # type: ignore[attr-defined]
        calls=400,
        rate=100,
        pcap=pcap,
        values={"hold_ms": 1000},
        keys={"caller": "13800000301"},
        timeout_s=120,
    )
    try:
        deadline = time.monotonic() + 120
        while "flood from 127.0.0.1" not in kamailio.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "flood from 127.0.0.1" in kamailio.log(), kamailio.log()[-2000:]
        other = run_sipp(
            "caller_try",
            tmp_path / "other",
            ("127.0.0.1", server.front_port),  # type: ignore[attr-defined]
            calls=1,
            local_ip="127.0.0.2",
            values={"hold_ms": 1000},
            keys={"caller": "13800000302"},
            timeout_s=120,
            wait_s=150,
        )
        assert other.successful == 1, other.summary()  # a final answer, through the flood
    finally:
        flood.stop(grace_s=30)
