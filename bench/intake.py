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

With --spawn (or --database-url for a running server) it also follows the background work in
the database: orders triaged per second during the load (`triaged_per_s`), the orders still
untriaged and still without their acknowledgement SMS when the load stops (`backlog_end`,
`unacked_end`), the largest backlog seen (sampled every second) and how long the backlog takes
to drain after the load (`drain_s`, null if not within --drain-timeout).

Run from the repository root:

    .venv/bin/python bench/intake.py --spawn                   # own server, temp SQLite
    .venv/bin/python bench/intake.py --spawn --postgres        # own server, temp PostgreSQL
    .venv/bin/python bench/intake.py --spawn --duration 10 --clients 64
    .venv/bin/python bench/intake.py --url http://127.0.0.1:8080   # a server already running
    .venv/bin/python bench/intake.py --spawn --numbers-out /tmp/acked.txt
    .venv/bin/python bench/intake.py --spawn --clients 8 --duration 30   # triage keeps up?

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
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from _common import (
    DEFAULT_URL,
    Backlog,
    BacklogProbe,
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
    p.add_argument(
        "--database-url",
        help="without --spawn: the running server's database, to follow the triage backlog",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds to wait after the load for the triage and SMS backlog to drain (0: don't)",
    )
    add_server_arguments(p)
    return p


async def _sample(probe: BacklogProbe, peak: list[Backlog], stop: asyncio.Event) -> None:
    """The backlog every second while the load runs (keeps the largest)."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        b = await probe.aread()
        if not peak or b.untriaged + b.unacknowledged > peak[0].untriaged + peak[0].unacknowledged:
            peak[:] = [b]


async def _drain(probe: BacklogProbe, timeout_s: float) -> float | None:
    """Seconds until nothing is left untriaged or unacknowledged; None after `timeout_s`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        b = await probe.aread()
        if b.untriaged == 0 and b.unacknowledged == 0:
            return time.perf_counter() - t0
        await asyncio.sleep(0.25)  # a poll interval of the benchmark, not a timing assumption
    return None


async def _run(
    args: argparse.Namespace, url: str, title: str, server: ServerProcess | None = None
) -> LoadResult:
    out: TextIO | None = None
    if args.numbers_out is not None:
        out = args.numbers_out.open("a", encoding="utf-8")
    db_url = server.database_url if server is not None else args.database_url
    probe = BacklogProbe(db_url) if db_url else None
    cpu0 = server.cpu_seconds() if server else None
    before = await probe.aread() if probe else None
    peak: list[Backlog] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(probe, peak, stop)) if probe else None
    try:
        result = await run_from_args(args, url, numbers_out=out)
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        if out is not None:
            out.close()
    cpu_end = server.cpu_seconds() if server else None  # the load's CPU, before any drain
    extra: dict[str, object] = {}
    notes: list[str] = []
    if probe is not None and before is not None:
        end = await probe.aread()
        elapsed = result.elapsed_s or result.duration_s
        created = end.orders - before.orders
        triaged = created - (end.untriaged - before.untriaged)
        acked = created - (end.unacknowledged - before.unacknowledged)
        drain = await _drain(probe, args.drain_timeout) if args.drain_timeout > 0 else None
        cpu_drained = server.cpu_seconds() if server else None
        top = peak[0] if peak else end
        extra.update(
            triaged_per_s=round(triaged / elapsed, 1),
            acked_per_s=round(acked / elapsed, 1),
            backlog_end=end.untriaged,
            unacked_end=end.unacknowledged,
            backlog_max=top.untriaged,
            unacked_max=top.unacknowledged,
            drain_s=round(drain, 2) if drain is not None else None,
        )
        notes += [
            f"triaged       {triaged} during the load ({triaged / elapsed:.1f}/s); "
            f"acknowledgement SMS {acked} ({acked / elapsed:.1f}/s)",
            f"backlog end   {end.untriaged} untriaged, {end.unacknowledged} without SMS "
            f"(largest seen {top.untriaged} / {top.unacknowledged})",
            "drained       "
            + (f"{drain:.2f} s after the load" if drain is not None else "not within the timeout"),
        ]
        if cpu_end is not None and cpu_drained is not None:
            extra["server_cpu_drain_s"] = round(cpu_drained - cpu_end, 2)
            notes.append(f"server CPU while draining {cpu_drained - cpu_end:.2f} s")
        probe.close()
    if server is not None:
        extra["backend"] = "postgresql" if args.postgres else "sqlite"
        if cpu0 is not None and cpu_end is not None:
            extra["server_cpu_s"] = round(cpu_end - cpu0, 2)
            notes.append(f"server CPU    {cpu_end - cpu0:.2f} s during the load (pid {server.pid})")
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
