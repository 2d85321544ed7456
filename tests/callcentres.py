"""Two call centres sharing a real Redis, the SIP workers that outlive either, and the callers'
helpers, for the failover tests (test_callcenter_failover.py, test_softphone_failover.py; the
`cluster` fixture is in tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UNLIMITED
from tests.hotline_server import HOTLINE, Server, StaffClient
from tests.ports import RTP_HIGH, RTP_LOW, free_port, free_port_block
from tests.sip.rtp_phone import RtpPhone, tone_level
from tests.sip.sipp import SippProcess, start_sipp
from tests.test_telephony_sip import wait_for

LINK_TOKEN = "failover-test-link-token"
CALLER_HZ = 470  # the callers' voices (between the music-on-hold notes)
AGENT1_HZ = 1400
AGENT2_HZ = 2500
HEARD = 250.0  # RMS of a tone taken as heard (16-bit scale)
WAIT_S = 120.0  # bound for every wait; never asserted as a speed
CALLER1, CALLER2 = "13800000401", "13800000402"


def hears(phone: RtpPhone, hz: float, seconds: float = 1.5) -> float:
    start = phone.mark()
    time.sleep(seconds)
    return tone_level(phone.audio_since(start), hz)


def until_heard(phone: RtpPhone, hz: float, what: str) -> None:
    wait_for(lambda: hears(phone, hz) > HEARD, what)


class Cluster:
    """Two call centres, the workers' supervisor, and the shared folders and settings."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        self.tmp = tmp
        self.db_url = f"sqlite:///{tmp / 'hotline.db'}"
        self.sip_port = free_port()
        links = [free_port(udp=False), free_port(udp=False)]
        while links[0] == links[1]:
            links[1] = free_port(udp=False)
        self.links = links
        self.env = {
            "HOTLINE__TRIAGE__ENABLED": "false",
            "HOTLINE__REDIS__URL": redis_url,
            "HOTLINE__REDIS__PREFIX": f"t{uuid.uuid4().hex[:8]}",
            "HOTLINE__TELEPHONY__CENTRES": str([f"127.0.0.1:{p}" for p in links]).replace("'", '"'),
            "HOTLINE__TELEPHONY__LINK_TOKEN": f'"{LINK_TOKEN}"',
            "HOTLINE__TELEPHONY__CENTRE_LEASE_S": "5",
            "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": "900",
            "HOTLINE__TELEPHONY__ANNOUNCE_EVERY_S": "5",
            "HOTLINE__TELEPHONY__RING_AGENT_S": "20",
            "HOTLINE__TELEPHONY__WRAPUP_S": "0",
            "HOTLINE__TELEPHONY__PROMPTS_DIR": str(tmp / "prompts"),
            "HOTLINE__TELEPHONY__SPOOL_DIR": str(tmp / "spool"),
            "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(tmp / "recordings"),
        }
        self.centres: list[Server] = []
        self.workers: subprocess.Popen[bytes] | None = None

    def centre(self, name: str, link: int) -> Server:
        folder = self.tmp / name
        folder.mkdir()
        env = {**self.env, "HOTLINE__TELEPHONY__LINK_PORT": str(link)}
        server = Server(folder, self.db_url, "--role", "web,sip", env=env)
        self.centres.append(server)
        return server

    def start_workers(self) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
        environ.update(UNLIMITED)
        environ.update(self.env)
        environ.update(
            HOTLINE__DATABASE__URL=self.db_url,
            HOTLINE__TELEPHONY__PORT=str(self.sip_port),
            HOTLINE__TELEPHONY__RTP_BASE_PORT=str(
                free_port_block(40, tcp=False, low=RTP_LOW, high=RTP_HIGH)
            ),
            PYTHONUNBUFFERED="1",
        )
        with (self.tmp / "workers.out").open("wb") as out:
            self.workers = subprocess.Popen(
                [str(HOTLINE), "telephony", "workers"],
                env=environ,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def workers_output(self) -> str:
        return (self.tmp / "workers.out").read_text("utf-8", "replace")

    def stop(self) -> None:
        if self.workers is not None and self.workers.poll() is None:
            self.workers.send_signal(signal.SIGTERM)
            try:
                self.workers.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.workers.kill()
                self.workers.wait()
        for server in self.centres:
            if server.proc.poll() is None:
                server.stop()
            server.kill()


def snapshot(client: StaffClient) -> dict[str, Any] | None:
    """The wallboard of the active centre; None from a standby (503) or a dead process."""
    try:
        status, body = client.get("/callcenter")
    except OSError:
        return None
    return body if status == 200 else None


def agent_of(snap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in snap["agents"] if a["username"] == name)


def call_in(server_sip_port: int, phone: RtpPhone, caller: str, work: Path) -> SippProcess:
    return start_sipp(
        "caller_rtp",
        work,
        ("127.0.0.1", server_sip_port),
        calls=1,
        values={"rtp_port": phone.port, "hold_ms": 900_000},
        keys={"caller": caller},
        timeout_s=1200,
    )


def choose_complaint(phone: RtpPhone, done: Callable[[], bool]) -> None:
    """1 普通话, 2 投诉举报; a key pressed before the dialogue listens is lost: press again."""
    wait_for(lambda: phone.packets() > 0, "the hotline's first audio")
    phone.press("1")
    for _ in range(6):
        phone.press("2")
        try:
            wait_for(done, "the caller in the queue", timeout=15)
            return
        except pytest.fail.Exception:
            continue
    pytest.fail("the caller never reached the queue")
