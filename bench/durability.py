#!/usr/bin/env python3
"""Durability check: every request acknowledged with 201 survives `kill -9` of the server.

1. starts `hotline serve` in a temp dir on its own port (temp SQLite file by default, or a
   throwaway durable PostgreSQL from tests/pgserver.py with --postgres);
2. runs the intake load of bench/intake.py (same bodies, same load generator), writing the
   "number,phone" of every 201 to a file, flushed as each answer arrives;
3. --kill-after seconds into the load (default 5) sends SIGKILL to the server process it
   started (that PID only), lets the clients see the dead server for --linger seconds, then
   stops the load;
4. restarts the server on the same database and port, and checks concurrently that every
   acknowledged number is retrievable via GET /api/v1/requests/{number}?phone=...;
5. prints acknowledged / found / missing (up to 20 missing listed) and one JSON line, stops
   the restarted server, and exits 1 if any acknowledged request is missing (or could not be
   checked), 2 if the server could not be started, 0 otherwise.

Run from the repository root:

    .venv/bin/python bench/durability.py                  # SQLite
    .venv/bin/python bench/durability.py --postgres       # PostgreSQL
    .venv/bin/python bench/durability.py --clients 64 --kill-after 3 --keep
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp
from _common import (
    REQUESTS_PATH,
    ServerProcess,
    add_load_arguments,
    add_server_arguments,
    bench_workdir,
    database_url_for,
    free_port,
    install_fast_loop,
    parse_env_pairs,
    wait_healthy,
)
from intake import run_from_args


@dataclass
class Verification:
    found: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # number, phone, why
    statuses: Counter[str] = field(default_factory=Counter)


async def verify_numbers(
    url: str, acked: list[tuple[str, str]], concurrency: int, timeout_s: float = 30.0
) -> Verification:
    """GET every (number, phone); 200 with the same number = found, 404 = missing."""
    out = Verification()
    todo = iter(acked)

    async def check(session: aiohttp.ClientSession, number: str, phone: str) -> None:
        target = f"{url}{REQUESTS_PATH}/{quote(number)}"
        why = ""
        for attempt in range(3):
            try:
                async with session.get(target, params={"phone": phone}) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            out.statuses[str(status)] += 1
            if status == 404:
                out.missing.append((number, phone))
                return
            if status == 200:
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = {}
                if str(doc.get("number")) == number and "status" in doc:
                    out.found += 1
                else:
                    out.failed.append((number, phone, f"200 with unexpected body {raw[:200]!r}"))
                return
            why = f"HTTP {status}: {raw[:200].decode('utf-8', 'replace')}"
            if status < 500:
                break
            await asyncio.sleep(0.2 * (attempt + 1))
        out.failed.append((number, phone, why))

    async def worker(session: aiohttp.ClientSession) -> None:
        for number, phone in todo:
            await check(session, number, phone)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return out


def read_numbers(path: Path) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        number, sep, phone = line.strip().partition(",")
        if sep and number:
            rows.append((number, phone))
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Every 201-acknowledged citizen request must survive kill -9 of the server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_load_arguments(p, duration=10.0)
    p.add_argument(
        "--kill-after", type=float, default=5.0, help="seconds into the load to SIGKILL the server"
    )
    p.add_argument(
        "--linger",
        type=float,
        default=0.5,
        help="seconds the clients keep trying against the dead server before the load stops",
    )
    p.add_argument(
        "--numbers-out",
        type=Path,
        help="file for the acknowledged numbers (default: acknowledged.txt in the temp dir)",
    )
    p.add_argument(
        "--verify-concurrency", type=int, default=16, help="concurrent GETs when verifying"
    )
    add_server_arguments(p)
    return p


async def _durability(args: argparse.Namespace) -> int:
    backend = "postgresql" if args.postgres else "sqlite"
    with (
        bench_workdir(args.keep, prefix="hotline-durability-") as workdir,
        database_url_for(workdir, args.postgres, dbname="durability") as db_url,
    ):
        port = args.port or free_port()
        env = parse_env_pairs(args.server_env)
        numbers_path: Path = args.numbers_out or workdir / "acknowledged.txt"
        first = ServerProcess(
            workdir, port=port, database_url=db_url, config=args.config, extra_env=env
        )
        first.start()
        try:
            ready = await wait_healthy(first)
        except RuntimeError as exc:
            first.stop()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"server pid {first.pid} ready on {first.url} in {ready:.2f} s ({backend})")

        # -- load, with a SIGKILL in the middle ----------------------------------------------
        stop = asyncio.Event()
        acked_at_kill: list[int] = []
        acked_live = Counter[str]()

        def count(_number: str, _phone: str) -> None:
            acked_live["n"] += 1

        async def killer() -> None:
            await asyncio.sleep(args.kill_after)
            acked_at_kill.append(acked_live["n"])
            first.kill9()  # SIGKILL to first.pid only, then reap it
            print(
                f"sent SIGKILL to server pid {first.pid} at t≈{args.kill_after:.1f} s "
                f"({acked_at_kill[0]} acknowledged so far)",
                flush=True,
            )
            await asyncio.sleep(args.linger)
            stop.set()

        try:
            with numbers_path.open("w", encoding="utf-8") as out:
                kill_task = asyncio.create_task(killer())
                result = await run_from_args(
                    args, first.url, numbers_out=out, stop=stop, on_accepted=count
                )
                if not kill_task.done():
                    kill_task.cancel()
        finally:
            first.kill9()  # no-op if already dead; never leave it running
        print(result.human(f"load before/around the kill ({backend})"))
        if not acked_at_kill:
            print("error: the load ended before the kill; use --kill-after < --duration")
            return 2

        acked = read_numbers(numbers_path)
        if len(acked) != len(result.accepted):
            print(
                f"warning: numbers file has {len(acked)} lines, client saw "
                f"{len(result.accepted)} 201s",
                file=sys.stderr,
            )
        dupes = [n for n, c in Counter(n for n, _ in acked).items() if c > 1]

        # -- restart on the same database and verify ---------------------------------------
        second = ServerProcess(
            workdir,
            port=port,
            database_url=db_url,
            config=args.config,
            extra_env=env,
            log_name="server-restart.log",
        )
        second.start()
        try:
            try:
                ready = await wait_healthy(second)
            except RuntimeError as exc:
                print(f"error: restart failed: {exc}", file=sys.stderr)
                return 2
            print(f"restarted server pid {second.pid} ready in {ready:.2f} s; verifying …")
            unique = list(dict.fromkeys(acked))
            ver = await verify_numbers(second.url, unique, args.verify_concurrency)
        finally:
            code = second.stop()
            if code not in (0, None, -15):
                print(f"note: restarted server exited with {code}:\n{second.log_tail()}")

    print("== durability after kill -9 ==")
    print(f"backend          {backend}")
    print(f"acknowledged     {len(acked)} (at kill: {acked_at_kill[0]}, unique {len(unique)})")
    print(f"found            {ver.found}")
    print(f"missing          {len(ver.missing)}")
    print(f"not verifiable   {len(ver.failed)}")
    print(f"duplicate numbers {len(dupes)}")
    for number, phone in ver.missing[:20]:
        print(f"  MISSING {number} (phone {phone})")
    for number, phone, why in ver.failed[:20]:
        print(f"  UNVERIFIED {number} (phone {phone}): {why}")
    for number in dupes[:20]:
        print(f"  DUPLICATE number acknowledged twice: {number}")
    ok = bool(acked) and not ver.missing and not ver.failed and not dupes
    print(
        json.dumps(
            {
                "backend": backend,
                "clients": args.clients,
                "kill_after_s": args.kill_after,
                "acknowledged": len(acked),
                "acknowledged_at_kill": acked_at_kill[0],
                "found": ver.found,
                "missing": len(ver.missing),
                "unverified": len(ver.failed),
                "duplicates": len(dupes),
                "load": result.summary(),
                "ok": ok,
            },
            ensure_ascii=False,
        )
    )
    if not acked:
        print("error: nothing was acknowledged before the kill; the check proves nothing")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or args.verify_concurrency < 1:
        print("error: --clients, --verify-concurrency ≥ 1 and --duration > 0", file=sys.stderr)
        return 2
    if not 0 < args.kill_after < args.duration:
        print("error: need 0 < --kill-after < --duration", file=sys.stderr)
        return 2
    install_fast_loop()
    try:
        return asyncio.run(_durability(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
