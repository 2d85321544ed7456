#!/usr/bin/env python3
"""WebSocket fan-out of the staff console: N consoles connected to /api/v1/live, a citizen's
request committed, and the time from the 201 answer (the commit) to each console receiving the
new order's event. Prints p50/p99/max over all consoles and rounds, and the server's CPU.

    .venv/bin/python bench/console_push.py                    # 200 consoles, 30 rounds, SQLite
    .venv/bin/python bench/console_push.py --consoles 500 --rounds 20

The consoles are logged-in dispatchers (each its own session), all in this one client process;
the server is a private `hotline serve` (telephony off, triage off). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ServerProcess,
    bench_workdir,
    free_port,
    sqlite_url,
    wait_healthy,
)

PASSWORD = "bench-console-pass-1"


def create_user(database_url: str) -> None:
    from agent_ui.accounts import Accounts
    from hotline.app import load_routing
    from hotline.config import load_settings
    from hotline.db import open_database
    from tickets.model import Role

    settings = load_settings(environ={"HOTLINE__DATABASE__URL": database_url})
    db = open_database(settings)
    try:
        Accounts(db, load_routing(settings)).create_user_sync(
            "bench-dispatcher", PASSWORD, Role.DISPATCHER, None, "压测派单员"
        )
    finally:
        db.close()


class Arrivals:
    """When each order's event reached each console; an event per order once all have it."""

    def __init__(self, consoles: int) -> None:
        self.consoles = consoles
        self.times: dict[str, list[float]] = {}
        self.complete: dict[str, asyncio.Event] = {}

    def event(self, number: str) -> asyncio.Event:
        return self.complete.setdefault(number, asyncio.Event())

    def add(self, number: str) -> None:
        got = self.times.setdefault(number, [])
        got.append(time.perf_counter())
        if len(got) >= self.consoles:
            self.event(number).set()


async def console(base: str, ready: asyncio.Event, arrivals: Arrivals) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.post(
            base + "/api/v1/session", json={"username": "bench-dispatcher", "password": PASSWORD}
        ) as r:
            r.raise_for_status()
        async with s.ws_connect(base + "/api/v1/live", headers={"Origin": base}) as ws:
            await ws.receive_json()  # hello
            ready.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                m = json.loads(msg.data)
                if m.get("type") == "ticket" and m.get("action") == "create":
                    arrivals.add(m["number"])


async def run(base: str, consoles: int, rounds: int) -> dict[str, float | int]:
    arrivals = Arrivals(consoles)
    readies = [asyncio.Event() for _ in range(consoles)]
    tasks = [asyncio.create_task(console(base, e, arrivals)) for e in readies]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readies)), 300)
    lags: list[float] = []
    missing = 0
    async with aiohttp.ClientSession() as citizen:
        for i in range(rounds):
            body = {"content": f"压测推送 {i}：小区路灯不亮", "phone": "13800000000"}
            async with citizen.post(base + "/api/v1/requests", json=body) as r:
                committed = time.perf_counter()
                number = (await r.json())["number"]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.event(number).wait(), 10)
            got = arrivals.times.get(number, [])
            missing += consoles - len(got)
            lags += [(t - committed) * 1000 for t in got]
            await asyncio.sleep(0.2)
    for t in tasks:
        t.cancel()
    lags.sort()

    def pct(p: float) -> float:
        return round(lags[min(len(lags) - 1, int(p / 100 * len(lags)))], 1) if lags else -1

    return {
        "consoles": consoles,
        "rounds": rounds,
        "deliveries": len(lags),
        "missing": missing,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(lags[-1], 1) if lags else -1,
    }


async def main_async(args: argparse.Namespace) -> int:
    with bench_workdir(keep=False, prefix="hotline-push-") as work:
        db = sqlite_url(work)
        server = ServerProcess(
            work,
            port=free_port(),
            database_url=db,
            extra_env={
                "HOTLINE__TELEPHONY__ENABLED": "false",
                "HOTLINE__TRIAGE__ENABLED": "false",
                "HOTLINE__SECURITY__LOGIN_ADDRESS_FAILURES": "10000",
                # every console connects from 127.0.0.1: lift the per-address cap (default 64)
                # above what the consoles and the citizen hold, or most consoles are refused
                "HOTLINE__SERVER__MAX_CONNECTIONS_PER_ADDRESS": str(2 * args.consoles + 16),
            },
        )
        # the schema first (migrations), then the console user, then the server on it
        server.start()
        try:
            await wait_healthy(server, 120)
            create_user(db)
            cpu0, t0 = server.cpu_seconds() or 0.0, time.perf_counter()
            result = await run(server.url, args.consoles, args.rounds)
            cpu = (server.cpu_seconds() or 0.0) - cpu0
            result["server_cpu_pct"] = round(100 * cpu / (time.perf_counter() - t0), 1)
            result["load_1m"] = round(os.getloadavg()[0], 1)
        finally:
            server.stop()
    print(
        f"{result['consoles']} consoles × {result['rounds']} orders: "
        f"commit → console p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms, {result['missing']} missed; "
        f"server CPU {result['server_cpu_pct']} %, load {result['load_1m']}"
    )
    print(json.dumps(result))
    return 0 if result["missing"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consoles", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=30)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
