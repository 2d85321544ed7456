"""Serve the web app: listen, cap the connections one client address may hold open, stop
gracefully within a bound.

aiohttp's own limits cover the rest: keepalive_timeout closes a connection that sends no
complete request (slow or no headers) in time, the body-timeout middleware (agent_ui/app.py)
answers 408 to a body that does not arrive in time, and shutdown_timeout bounds how long a stop
waits for requests in progress. The cap keeps one address from holding every file descriptor
the process has (slow-body clients by the thousand made every other request fail): its
connections over the cap get a 503 and are closed at once. Addresses of trusted reverse
proxies are not capped (the proxy carries many clients and limits them itself).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
REFUSED_LOG_EVERY_S = 60.0  # one warning per address and minute while it is over the cap


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8080
    keepalive_timeout_s: float = 15.0
    shutdown_timeout_s: float = 5.0
    max_connections_per_address: int = 64
    uncapped: tuple[IPNetwork, ...] = ()  # trusted reverse proxies
    access_log: logging.Logger | None = None
    backlog: int = 1024


def _refusal() -> bytes:
    body = json.dumps(
        {
            "error": {
                "code": "too_many_connections",
                "message": "来自同一地址的连接过多，请稍后重试",
                "details": {},
            }
        },
        ensure_ascii=False,
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "Retry-After: 5\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()


class ConnectionGate:
    """Counts open connections per client address."""

    def __init__(self, cap: int, uncapped: tuple[IPNetwork, ...] = ()) -> None:
        self.cap = cap
        self.uncapped = uncapped
        self.open: dict[str, int] = {}
        self._warned: dict[str, float] = {}

    def admit(self, address: str | None) -> bool:
        if address is None or self._uncapped(address):
            return True
        n = self.open.get(address, 0)
        if n >= self.cap:
            now = time.monotonic()
            if now - self._warned.get(address, -REFUSED_LOG_EVERY_S) >= REFUSED_LOG_EVERY_S:
                self._warned[address] = now
                log.warning("来自 %s 的连接已达上限 %d，后来的连接答 503 并关闭", address, self.cap)
            return False
        self.open[address] = n + 1
        return True

    def release(self, address: str | None) -> None:
        if address is None or address not in self.open:
            return
        n = self.open[address] - 1
        if n:
            self.open[address] = n
        else:
            del self.open[address]

    def _uncapped(self, address: str) -> bool:
        if not self.uncapped:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.uncapped)


class GatedProtocol(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one connection: admits it through the gate
    (then hands every callback on) or answers 503 and closes it."""

    def __init__(self, make: Callable[[], asyncio.Protocol], gate: ConnectionGate) -> None:
        self._make = make
        self._gate = gate
        self._inner: asyncio.Protocol | None = None
        self._address: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if not self._gate.admit(address):
            # uvloop's transports write but are not asyncio.WriteTransport subclasses
            cast(asyncio.WriteTransport, transport).write(REFUSAL)
            transport.close()
            return
        self._address = address
        self._inner = self._make()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._gate.release(self._address)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def serve(app: web.Application, options: ServeOptions) -> None:
    """Run `app` until SIGINT or SIGTERM, then stop gracefully (bounded by
    shutdown_timeout_s: requests still running then are cancelled)."""
    asyncio.run(_serve(app, options))


async def _serve(app: web.Application, o: ServeOptions) -> None:
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=o.keepalive_timeout_s,
        shutdown_timeout=o.shutdown_timeout_s,
        access_log=o.access_log,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()  # the app's start-up: nothing in it waits for a catch-up
    # What start-up built (the directory, the classifier, the routes…) lives as long as the
    # process: moved out of the collector's reach, a full collection no longer walks it. Before,
    # each one took ~110 ms (188,000 objects, some large containers) and landed on whatever
    # request triggered it: a year's XLSX ranking 190 ms or 310 ms, depending on that.
    gc.collect()
    gc.freeze()
    listener: asyncio.Server | None = None
    try:
        gate = ConnectionGate(o.max_connections_per_address, o.uncapped)
        server: Any = runner.server
        listener = await loop.create_server(
            lambda: GatedProtocol(server, gate),
            o.host,
            o.port,
            reuse_address=True,
            backlog=o.backlog,
        )
        await stop.wait()
        log.info("stopping: waiting up to %gs for requests in progress", o.shutdown_timeout_s)
    finally:
        if listener is not None:
            listener.close()  # no new connections
        await runner.cleanup()
