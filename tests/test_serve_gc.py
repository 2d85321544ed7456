"""agent_ui/server.serve: what the application built at start-up is frozen out of the garbage
collector (gc.freeze), so a full collection during a request does not walk it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time

import aiohttp

from tests.ports import free_port

APP = textwrap.dedent(
    """
    import gc, sys
    from aiohttp import web
    from agent_ui.server import ServeOptions, serve

    class Node:
        def __init__(self):
            self.me = self  # a cycle: tracked by the collector

    async def build(app):
        app["kept"] = [Node() for _ in range(20000)]

    async def counts(request):
        later = [Node() for _ in range(100)]  # made while serving: left to the collector
        seen = {id(o) for o in gc.get_objects()}  # frozen objects are not listed
        return web.json_response({
            "startup_frozen": sum(id(n) not in seen for n in request.app["kept"]),
            "later_frozen": sum(id(n) not in seen for n in later),
        })

    app = web.Application()
    app.on_startup.append(build)
    app.router.add_get("/gc", counts)
    serve(app, ServeOptions(port=int(sys.argv[1])))
    """
)


async def _frozen(port: int, proc: subprocess.Popen[bytes]) -> dict[str, int]:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"http://127.0.0.1:{port}/gc") as r:
                    body: dict[str, int] = await r.json()
                    return body
            except aiohttp.ClientConnectionError:
                assert proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server never answered"
                await asyncio.sleep(0.1)


def test_start_up_objects_are_frozen_out_of_the_collector() -> None:
    port = free_port(udp=False)
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port)])
    try:
        assert asyncio.run(_frozen(port, proc)) == {"startup_frozen": 20000, "later_frozen": 0}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
