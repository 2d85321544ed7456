"""Supervise the SIP worker processes: start one per port, restart any that dies, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from telephony.config import TelephonySettings
from telephony.worker import ENV_SETTINGS, ENV_TOKEN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolPaths:
    prompts: Path
    spool: Path
    recordings: Path


class WorkerPool:
    def __init__(
        self,
        settings: TelephonySettings,
        centres: list[str],
        token: str,
        paths: PoolPaths,
        log_level: str = "INFO",
    ) -> None:
        self.settings = settings
        self.centres = centres  # host:port of the call centre(s) the workers link to
        self.token = token
        self.paths = paths
        self.log_level = log_level
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for index in self.settings.worker_indexes:
            self._tasks.append(asyncio.create_task(self._keep(index)))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env[ENV_SETTINGS] = self.settings.model_dump_json()
        env[ENV_TOKEN] = self.token
        p = self.paths
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "telephony.worker",
            "--index",
            str(index),
            "--center",
            ",".join(self.centres),
            "--prompts",
            str(p.prompts),
            "--spool",
            str(p.spool),
            "--recordings",
            str(p.recordings),
            "--log-level",
            self.log_level,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _keep(self, index: int) -> None:
        """Run worker `index`, restarting it with a growing pause if it keeps dying."""
        backoff = 0.5
        while not self._stopping:
            proc = await self._spawn(index)
            self.procs[index] = proc
            code = await proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.error(
                "SIP worker %d (pid %d) exited with %s; restarting in %.1f s",
                index,
                proc.pid,
                code,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30)

    async def stop(self, grace_s: float = 5.0) -> None:
        self._stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                async with asyncio.timeout(grace_s):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
