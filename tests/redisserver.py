"""A throwaway Redis server on 127.0.0.1 for tests and benchmarks (Debian's redis-server,
installed by `make test`): its own port and folder, append-only file on, stopped by its PID.
Restart and kill -9 are there for the fault tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.ports import free_port

START_TIMEOUT_S = 60  # generous: a loaded CI machine; never asserted as a speed


class RedisServer:
    def __init__(self, port: int | None = None, directory: Path | None = None) -> None:
        self.port = port or free_port(udp=False)
        self._own_dir = directory is None
        self.dir = directory or Path(tempfile.mkdtemp(prefix="hotline-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server missing: run scripts/install-test-deps.sh as root")
        log = (self.dir / "redis.log").open("ab")
        args = {
            "--port": str(self.port),
            "--bind": "127.0.0.1",
            "--dir": str(self.dir),
            "--appendonly": "yes",
            "--appendfsync": "everysec",
            "--save": "",
            "--daemonize": "no",
            "--protected-mode": "yes",
        }
        self.proc = subprocess.Popen(
            [binary, *(x for pair in args.items() for x in pair)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
            if self.ping():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not ready after {START_TIMEOUT_S}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """kill -9: what a crash looks like (the append-only file survives)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
