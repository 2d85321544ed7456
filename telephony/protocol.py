"""Worker ↔ call-centre link: JSON lines over TCP, requests with ids and replies, both ways."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class LinkError(Exception):
    """The other side answered with an error, went away, or did not answer in time."""


class Link:
    """One connection; `request` waits for the reply, incoming requests go to `handler`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self._next = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = asyncio.Event()

    @property
    def connected(self) -> bool:
        return not self.closed.is_set()

    async def request(self, op: str, wait_s: float = 10.0, **args: Any) -> dict[str, Any]:
        if self.closed.is_set():
            raise LinkError("连接已断开")
        self._next += 1
        rid = self._next
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._send({"id": rid, "op": op, "args": args})
            async with asyncio.timeout(wait_s):
                return await fut
        except TimeoutError:
            raise LinkError(f"{op}: 对方 {wait_s} 秒未应答") from None
        finally:
            self._pending.pop(rid, None)

    async def notify(self, op: str, **args: Any) -> None:
        """Fire and forget (the link is ordered, so notifications arrive in sending order)."""
        if not self.closed.is_set():
            await self._send({"op": op, "args": args})

    async def _send(self, msg: dict[str, Any]) -> None:
        try:
            self.writer.write(json.dumps(msg, ensure_ascii=False).encode() + b"\n")
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            self._close()
            raise LinkError(f"发送失败: {exc}") from None

    async def run(self) -> None:
        """Read until the peer goes away; replies resolve requests, requests run as tasks."""
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.warning("link: dropped a line that is not JSON")
                    continue
                if "re" in msg:
                    fut = self._pending.get(msg["re"])
                    if fut is not None and not fut.done():
                        if msg.get("ok"):
                            fut.set_result(msg.get("result") or {})
                        else:
                            fut.set_exception(LinkError(str(msg.get("error"))))
                    continue
                task = asyncio.create_task(self._serve(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._close()

    async def _serve(self, msg: dict[str, Any]) -> None:
        rid = msg.get("id")
        try:
            result = await self.handler(str(msg.get("op")), dict(msg.get("args") or {}))
            reply: dict[str, Any] = {"re": rid, "ok": True, "result": result or {}}
        except Exception as exc:  # the error goes back to the caller; the link stays up
            if not isinstance(exc, LinkError | KeyError | ValueError):
                log.exception("link: handling %s failed", msg.get("op"))
            reply = {"re": rid, "ok": False, "error": str(exc)}
        if rid is not None:
            with contextlib.suppress(LinkError):
                await self._send(reply)

    def _close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(LinkError("连接已断开"))
        with contextlib.suppress(Exception):
            self.writer.close()

    async def close(self) -> None:
        self._close()
        for task in list(self._tasks):
            task.cancel()


async def connect(
    host: str, port: int, token: str, hello: dict[str, Any], handler: Handler
) -> Link:
    """Worker side: open the link and introduce ourselves with the shared token."""
    reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
    link = Link(reader, writer, handler)
    writer.write(json.dumps({"token": token, **hello}).encode() + b"\n")
    await writer.drain()
    return link


async def accept(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str
) -> dict[str, Any] | None:
    """Centre side: read the hello line; None (and the connection closed) on a wrong token."""
    try:
        async with asyncio.timeout(5):
            line = await reader.readline()
        hello = json.loads(line)
        if not isinstance(hello, dict):
            raise ValueError
        given = str(hello.pop("token", ""))
    except (TimeoutError, ValueError, ConnectionError):
        writer.close()
        return None
    if not hmac.compare_digest(given, token):
        log.warning("telephony: refused a worker link with a wrong token")
        writer.close()
        return None
    return hello


RELINK_PAUSE_S = (0.2, 1.0)  # first and longest pause between rounds over the centres


class CentreLink:
    """A worker's link to whichever call centre is active (standby mode): when it drops, the
    worker tries every address in turn until one takes it, introducing itself with `hello()`
    (made at that moment: the calls it holds now). Requests meanwhile wait for the next link,
    up to `wait_s`, and are sent again if the link died under them (the centre's requests from
    workers are safe to repeat); notifications meanwhile are dropped, since the next hello
    tells the new centre where every call stands."""

    def __init__(
        self,
        addresses: list[tuple[str, int]],
        token: str,
        hello: Callable[[], dict[str, Any]],
        handler: Handler,
        wait_s: float,
    ) -> None:
        self.addresses = addresses
        self.token = token
        self.hello = hello
        self.handler = handler
        self.wait_s = wait_s
        self.link: Link | None = None
        self.up = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.link is not None and not self.link.closed.is_set()

    async def run(self) -> None:
        """Link, serve, and link again, until cancelled."""
        pause = RELINK_PAUSE_S[0]
        while True:
            for host, port in self.addresses:
                try:
                    async with asyncio.timeout(5):
                        link = await connect(host, port, self.token, self.hello(), self.handler)
                except (OSError, TimeoutError):
                    continue
                self.link = link
                self.up.set()
                log.info("linked to the call centre at %s:%d", host, port)
                try:
                    await link.run()
                finally:
                    self.up.clear()
                    self.link = None
                    await link.close()
                log.warning(
                    "call centre link to %s:%d lost; looking for the active one", host, port
                )
                pause = RELINK_PAUSE_S[0]
                break
            else:
                await asyncio.sleep(pause)
                pause = min(pause * 2, RELINK_PAUSE_S[1])

    async def request(self, op: str, wait_s: float = 10.0, **args: Any) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.wait_s + wait_s
        while True:
            try:
                async with asyncio.timeout(max(0.0, give_up - loop.time())):
                    await self.up.wait()
            except TimeoutError:
                raise LinkError(f"{op}: 没有可用的呼叫中心") from None
            link = self.link
            if link is None:
                continue
            try:
                return await link.request(op, wait_s, **args)
            except LinkError:
                if not link.closed.is_set() or loop.time() >= give_up:
                    raise
                # the centre went away before it answered: ask the next one

    async def notify(self, op: str, **args: Any) -> None:
        link = self.link
        if link is not None:
            with contextlib.suppress(LinkError):
                await link.notify(op, **args)

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
