"""`hotline serve` as a real subprocess for boot and end-to-end tests (SIP included), on ports
and folders of the test's own; stopped by its own PID."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UNLIMITED
from tests.ports import RTP_HIGH, RTP_LOW, free_port, free_port_block

HOTLINE = Path(sys.executable).with_name("hotline")
# generous: a cold start on a loaded CI machine; never asserted as a speed. At load 13–18 on
# 2 cores, generating the 43 IVR prompts alone took 35–90 s (7 s on a quiet machine).
BOOT_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30


class Server:
    """`hotline serve` in a subprocess with its output in files."""

    def __init__(
        self,
        tmp_path: Path,
        db_url: str,
        *args: str,
        env: dict[str, str] | None = None,
        nofile: int | None = None,
    ) -> None:
        """`nofile`: the server's limit of open files (RLIMIT_NOFILE), to test exhaustion."""
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stdout_path = tmp_path / "serve.out"
        self.stderr_path = tmp_path / "serve.err"
        self.sip_port = free_port()
        workers = int((env or {}).get("HOTLINE__TELEPHONY__WORKERS", "1"))
        self.recordings = tmp_path / "recordings"
        self.spool = tmp_path / "spool"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
        environ.update(UNLIMITED)
        environ.update(
            HOTLINE__SERVER__PORT=str(self.port),
            HOTLINE__DATABASE__URL=db_url,
            # the real SIP worker starts too, on a port and in folders of this test's own
            HOTLINE__TELEPHONY__PORT=str(self.sip_port),
            HOTLINE__TELEPHONY__RTP_BASE_PORT=str(
                free_port_block(40 * workers, tcp=False, low=RTP_LOW, high=RTP_HIGH)
            ),
            HOTLINE__TELEPHONY__PROMPTS_DIR=str(tmp_path / "prompts"),
            HOTLINE__TELEPHONY__SPOOL_DIR=str(self.spool),
            HOTLINE__TELEPHONY__RECORDINGS_DIR=str(self.recordings),
            HOTLINE__SEARCH__PATH=str(tmp_path / "search.db"),
            PYTHONUNBUFFERED="1",
        )
        # "{http_port}" in a value: this server's own HTTP port (public_url, callbacks)
        environ.update(
            {k: v.replace("{http_port}", str(self.port)) for k, v in (env or {}).items()}
        )
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                [str(HOTLINE), "serve", *args],
                env=environ,
                cwd=tmp_path,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                preexec_fn=(lambda: _limit_files(nofile)) if nofile else None,
            )

    def output(self) -> str:
        return self.stdout_path.read_text("utf-8", "replace") + self.stderr_path.read_text(
            "utf-8", "replace"
        )

    def wait_ready(self, sip_workers: int = 0) -> None:
        """Until /healthz answers (and, if asked, that many SIP workers are linked)."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"hotline serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                status, _, body = self.request("GET", "/healthz")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
                continue
            assert (status, body) == (200, {"status": "ok"})
            if sip_workers and self.output().count("telephony.center: SIP worker") < sip_workers:
                time.sleep(0.1)
                continue
            return
        pytest.fail(f"not ready after {BOOT_TIMEOUT_S}s:\n{self.output()}")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        cookie: str | None = None,
        csrf: str | None = None,
    ) -> tuple[int, Any, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if cookie:
            req.add_header("Cookie", cookie)
        if csrf:
            req.add_header("X-CSRF-Token", csrf)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, json.loads(exc.read())

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hotline serve did not stop on SIGTERM:\n{self.output()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _limit_files(n: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


class StaffClient:
    """A logged-in staff member of a running server (cookie + CSRF token)."""

    def __init__(self, server: Server, username: str, password: str) -> None:
        self.server = server
        status, headers, body = server.request(
            "POST", "/api/v1/session", {"username": username, "password": password}
        )
        assert status == 200, body
        self.cookie = headers["Set-Cookie"].split(";", 1)[0]
        self.csrf = body["user"]["csrf_token"]

    def get(self, path: str) -> tuple[int, Any]:
        status, _, body = self.server.request("GET", "/api/v1" + path, cookie=self.cookie)
        return status, body

    def download(self, url: str) -> bytes:
        """The bytes behind an attachment's `url` (as a reader fetches it)."""
        req = urllib.request.Request(self.server.base + url)
        req.add_header("Cookie", self.cookie)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
            return bytes(resp.read())

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, out = self.server.request(
            method, "/api/v1" + path, body, cookie=self.cookie, csrf=self.csrf
        )
        return status, out
