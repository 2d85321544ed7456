#!/usr/bin/env python3
"""Load benchmark of citizen web intake: concurrent clients POST /api/v1/requests.

Closed loop: each of --clients workers (default 32) sends its next request as soon as the
previous one answers, for --duration seconds (default 30), over one keep-alive aiohttp
connector. Bodies are realistic: subject + detail of the TipDM 12345 messages
(/work/shared/data/tipdm/messages_unlabeled.csv; generated Chinese text if it is missing),
a random mainland mobile number, a region code out of 150102 150103 150203 150602 152502.
Bodies are JSON-encoded before the clock starts and the client runs on uvloop when available,
so that on a small box the client takes as little CPU from the server as possible.

Every response is recorded (status or exception, perf_counter latency). At the end it prints a
human-readable block and then ONE JSON line: clients, duration_s, accepted (201 count),
accepted_per_s, p50_ms, p90_ms, p99_ms, max_ms (latency percentiles over 201 responses),
errors (non-201 answers + exceptions) and error_breakdown (by status / exception type).

Run from the repository root:

    .venv/bin/python bench/intake.py --spawn                   # own server, temp SQLite
    .venv/bin/python bench/intake.py --spawn --postgres        # own server, temp PostgreSQL
    .venv/bin/python bench/intake.py --spawn --duration 10 --clients 64
    .venv/bin/python bench/intake.py --url http://127.0.0.1:8080   # a server already running
    .venv/bin/python bench/intake.py --spawn --numbers-out /tmp/acked.txt

--numbers-out FILE writes "number,phone" of every accepted request, flushed as each 201
arrives (bench/durability.py relies on this). --spawn starts `hotline serve` in a temp dir
with HOTLINE__SERVER__PORT / HOTLINE__DATABASE__URL overrides, waits for /healthz, runs the
load and stops the server; --postgres adds a throwaway durable PostgreSQL (tests/pgserver.py).
Exit status: 0 if the run completed (errors are reported, not fatal), 1 if nothing was
accepted, 2 if the server could not be started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from _common import (
    DEFAULT_URL,
    LoadResult,
    ServerProcess,
    add_load_arguments,
    add_server_arguments,
    bench_workdir,
    database_url_for,
    emit_report,
    free_port,
    install_fast_loop,
    parse_env_pairs,
    prepare_bodies,
    run_load,
    wait_healthy,
)


async def run_from_args(
    args: argparse.Namespace,
    url: str,
    *,
    numbers_out: TextIO | None = None,
    stop: asyncio.Event | None = None,
    on_accepted: Callable[[str, str], None] | None = None,
) -> LoadResult:
    """Build the bodies named by the load options in `args` and run the load against `url`."""
    bodies = prepare_bodies(args.corpus, args.bodies, args.seed)
    return await run_load(
        url,
        clients=args.clients,
        duration_s=args.duration,
        bodies=bodies,
        numbers_out=numbers_out,
        stop=stop,
        timeout_s=args.timeout,
        on_accepted=on_accepted,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Load benchmark: concurrent citizens POST /api/v1/requests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--url", default=DEFAULT_URL, help="server base URL (ignored with --spawn)")
    add_load_arguments(p, duration=30.0)
    p.add_argument(
        "--numbers-out",
        type=Path,
        help='append "number,phone" of every 201 to this file, flushed per line',
    )
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start `hotline serve` in a temp dir (own port, temp database) and stop it after",
    )
    add_server_arguments(p)
    return p


async def _run(
    args: argparse.Namespace, url: str, title: str, server: ServerProcess | None = None
) -> LoadResult:
    out: TextIO | None = None
    if args.numbers_out is not None:
        out = args.numbers_out.open("a", encoding="utf-8")
    cpu0 = server.cpu_seconds() if server else None
    try:
        result = await run_from_args(args, url, numbers_out=out)
    finally:
        if out is not None:
            out.close()
    extra: dict[str, object] = {}
    notes: list[str] = []
    if server is not None:
        cpu1 = server.cpu_seconds()
        extra["backend"] = "postgresql" if args.postgres else "sqlite"
        if cpu0 is not None and cpu1 is not None:
            extra["server_cpu_s"] = round(cpu1 - cpu0, 2)
            notes.append(f"server CPU    {cpu1 - cpu0:.2f} s (pid {server.pid})")
    emit_report(result, title, notes, **extra)
    return result


async def _spawned(args: argparse.Namespace) -> int:
    backend = "postgresql" if args.postgres else "sqlite"
    result: LoadResult | None = None
    with bench_workdir(args.keep) as workdir, database_url_for(workdir, args.postgres) as db_url:
        server = ServerProcess(
            workdir,
            port=args.port or free_port(),
            database_url=db_url,
            config=args.config,
            extra_env=parse_env_pairs(args.server_env),
        )
        server.start()
        try:
            try:
                ready = await wait_healthy(server)
            except RuntimeError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"server pid {server.pid} ready on {server.url} in {ready:.2f} s ({backend})")
            result = await _run(args, server.url, f"intake benchmark ({backend})", server)
            if not server.alive():
                print(
                    "warning: the server died during the run; log tail:\n" + server.log_tail(),
                    file=sys.stderr,
                )
        finally:
            code = server.stop()
            if result is not None and code not in (0, None, -15):
                print(f"note: server exited with {code}; log tail:\n{server.log_tail()}")
    return 0 if result is not None and result.accepted else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        print("error: --clients must be ≥ 1 and --duration > 0", file=sys.stderr)
        return 2
    if args.postgres and not args.spawn:
        print("error: --postgres only makes sense with --spawn", file=sys.stderr)
        return 2
    install_fast_loop()
    try:
        if args.spawn:
            return asyncio.run(_spawned(args))
        result = asyncio.run(_run(args, args.url, "intake benchmark"))
        return 0 if result.accepted else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
