#!/usr/bin/env python3
"""Statistics at provincial scale: a year of orders, every statistics endpoint timed.

1. builds a database (a temp SQLite file by default, or a throwaway durable PostgreSQL with
   --postgres), migrated with hotline.db.upgrade;
2. fills it with --orders work orders (default 1,000,000) spread over the year before now,
   all leagues and banners, routed by the real dispatch table,
   in every lifecycle state with their assignments, audit events and deadline clocks
   (bench/stats_seed.py), plus a year of call-centre hours; the fill is timed separately;
3. builds the aggregates from those rows with the backfill the migration and
   `hotline stats rebuild` use, and times it;
4. serves them with `hotline serve`, logs in as a manager and times --repeat requests of each
   statistics endpoint, without and with filters (after two warm-up requests), and the
   /staff/stats page; prints p50 / p95 / max per endpoint and ONE JSON line at the end.

Run from the repository root:

    .venv/bin/python bench/stats.py [--postgres] [--orders 1000000] [--repeat 30]
    .venv/bin/python bench/stats.py --orders 50000 --repeat 10      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import sqlalchemy as sa
from _common import (
    REPO_ROOT,
    ServerProcess,
    bench_workdir,
    database_url_for,
    free_port,
    production_postgres_settings,
    wait_healthy,
)
from stats_seed import ASSIGNMENT_COLS, CLOCK_COLS, EVENT_COLS, TICKET_COLS, Chunk, Year
from watcher import _copy_chunk, _insert_chunk, _size_bytes

from hotline.app import build_services, load_triage_parts
from hotline.bus import InProcessBus
from hotline.config import load_settings
from hotline.db import open_database
from telephony import call_stats_store
from telephony.tables import call_hours
from tickets import stats_store, store
from tickets.db import Database, create_db_engine
from tickets.stats_tables import cube_tables
from tickets.tables import assignments, clocks, events, numbers, tickets

TZ = ZoneInfo("Asia/Shanghai")
# the data ends now (so the server's deadline watcher finds only what is really due); the
# periods asked for are the last year, the current month and an odd span inside the year
NOW = datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
_LAST = NOW.date()
YEAR = {"since": (_LAST - timedelta(days=364)).isoformat(), "until": _LAST.isoformat()}
MONTH = {"since": _LAST.replace(day=1).isoformat(), "until": _LAST.isoformat()}
ODD = {  # whole months, whole weeks and single days
    "since": (_LAST - timedelta(days=320)).isoformat(),
    "until": (_LAST - timedelta(days=50)).isoformat(),
}
PASSWORD = "bench-password-1"

# (name, path, query): the endpoints without and with filters
API = "/api/v1/stats/"
PHONE_COMPLAINTS = {"channel": "phone", "kind": "complaint"}
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("departments year", API + "departments", YEAR),
    ("departments month", API + "departments", MONTH),
    ("departments year region", API + "departments", {**YEAR, "region": "150100"}),
    ("departments odd period kind", API + "departments", {**ODD, "kind": "complaint"}),
    ("regions year", API + "regions", YEAR),
    ("regions league year", API + "regions", {**YEAR, "region": "150400"}),
    ("overview year", API + "overview", YEAR),
    ("overview year channel+kind", API + "overview", {**YEAR, **PHONE_COMPLAINTS}),
    ("overview month region", API + "overview", {**MONTH, "region": "150102"}),
    ("overview year department", API + "overview", {**YEAR, "department": "150100-housing"}),
    ("breakdown category year", API + "breakdown", {**YEAR, "by": "category"}),
    ("breakdown region year", API + "breakdown", {**YEAR, "by": "region"}),
    ("breakdown region year kind", API + "breakdown", {**YEAR, "by": "region", "kind": "help"}),
    ("breakdown category league", API + "breakdown", {**ODD, "by": "category", "region": "150200"}),
    ("breakdown department year", API + "breakdown", {**YEAR, "by": "department"}),
    ("series year weekly", API + "series", YEAR),
    ("series month daily by category", API + "series", {**MONTH, "by": "category"}),
    ("series year by kind, web", API + "series", {**YEAR, "by": "kind", "channel": "web"}),
    ("hot topics month", API + "hot-topics", MONTH),
    ("hot topics year league", API + "hot-topics", {**YEAR, "region": "150600"}),
    ("calls year", API + "calls", YEAR),
    ("page /staff/stats month", "/staff/stats", MONTH),
    ("page /staff/stats year region", "/staff/stats", {**YEAR, "region": "150100"}),
    ("xlsx departments year", API + "departments", {**YEAR, "format": "xlsx"}),
]


def fill(url: str, year: Year, chunk: int) -> float:
    engine = create_db_engine(url, pool_size=1)
    postgres = engine.dialect.name == "postgresql"
    t0 = time.perf_counter()
    try:
        for lo in range(1, year.orders + 1, chunk):
            hi = min(lo + chunk, year.orders + 1)
            c: Chunk = year.chunk(lo, hi)
            rows = [
                (tickets, TICKET_COLS, c.tickets),
                (assignments, ASSIGNMENT_COLS, c.assignments),
                (events, EVENT_COLS, c.events),
                (clocks, CLOCK_COLS, c.clocks),
            ]
            (_copy_chunk if postgres else _insert_chunk)(engine, rows)
            print(f"  filled {hi - 1:,} / {year.orders:,} orders", file=sys.stderr, end="\r")
        print(file=sys.stderr)
        with engine.connect().execution_options(sqlite_write=True) as conn, conn.begin():
            conn.execute(numbers.insert(), [{"day": d, "last": n} for d, n in year.numbers.items()])
            conn.execute(call_hours.insert(), list(call_hour_rows(random.Random(7))))
            store.refresh_next_due(conn)  # the clocks were written directly
            if postgres:
                for table in (tickets, assignments, events, clocks):
                    conn.execute(
                        sa.text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                        {"t": table.name, "n": conn.scalar(sa.select(sa.func.max(table.c.id)))},
                    )
    finally:
        engine.dispose()
    return time.perf_counter() - t0


def call_hour_rows(rng: random.Random) -> Any:
    """A year of hourly call counts: ~2,700 calls a day, busiest mid-morning."""
    start = call_stats_store.hour_of((NOW - timedelta(days=365)).astimezone(UTC))
    for h in range(start, call_stats_store.hour_of(NOW.astimezone(UTC))):
        local = call_stats_store.hour_start(h).astimezone(TZ).hour
        offered = max(0, int(rng.gauss(250 if 8 <= local < 18 else 30, 20)))
        queued = int(offered * 0.8)
        answered = int(queued * rng.uniform(0.85, 0.97))
        fast = int(answered * rng.uniform(0.8, 0.95))
        staffed = (40 if 8 <= local < 18 else 6) * 3_600_000
        yield {
            "hour": h, "offered": offered, "queued": queued, "answered": answered,
            "answered_fast": fast, "abandoned": queued - answered, "voicemail": offered // 40,
            "wait_ms": answered * 9000, "waits": answered, "talk_ms": answered * 200_000,
            "talks": answered, "callbacks": offered // 30, "callbacks_answered": offered // 40,
            "surveys": offered // 20, "staffed_ms": staffed, "busy_ms": int(staffed * 0.7),
        }  # fmt: skip


def rebuild(db: Database, step: int) -> tuple[float, int]:
    """The backfill (as in migration 0200 and `hotline stats rebuild`), timed."""
    t0 = time.perf_counter()
    lo, hi = db.run_read(stats_store.id_bounds)
    db.run_write(stats_store.clear)
    done = 0
    for start in range(lo, hi + 1, step):
        done += db.run_write(
            lambda c, s=start: stats_store.rebuild_range(c, s, s + step, TZ, datetime.now(UTC))
        )
        print(f"  aggregated {done:,} orders", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - t0, done


def cube_rows(db: Database) -> dict[str, int]:
    def tx(conn: Any) -> dict[str, int]:
        return {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for name, t in cube_tables.items()
        }

    return db.run_read(tx)


async def measure(base: str, repeat: int, only: Sequence[str] = ()) -> list[dict[str, Any]]:
    out = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            base + "/api/v1/session", json={"username": "manager", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200, await resp.text()
        for name, path, query in CASES:
            if only and not any(o in name for o in only):
                continue
            times: list[float] = []
            for i in range(repeat + 2):
                t0 = time.perf_counter()
                async with session.get(base + path, params=query) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{name}: {resp.status} {body[:300]!r}")
                if i >= 2:
                    times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            row = {
                "endpoint": name,
                "p50_ms": round(statistics.median(times), 1),
                "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
                "max_ms": round(times[-1], 1),
            }
            print(f"  {name:<36} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms")
            out.append(row)
    return out


def benchmark(args: argparse.Namespace, url: str, workdir: Path) -> int:
    backend = "postgresql" if args.postgres else "sqlite"
    settings = load_settings(REPO_ROOT / "config.toml", environ={"HOTLINE__DATABASE__URL": url})
    db = open_database(settings)
    if args.reuse:  # a database kept by an earlier run (--keep): measure again
        fill_s = rebuild_s = 0.0
        done = db.run_read(lambda c: stats_store.id_bounds(c)[1])
        rows = cube_rows(db)
        size_mb = _size_bytes(db.engine) / 2**20
        db.close()
        return serve_and_measure(
            args, url, workdir, backend, fill_s, rebuild_s, done, rows, size_mb
        )
    try:
        services = build_services(settings, db, InProcessBus())
        _, rules = load_triage_parts(settings, services.directory)
        year = Year(
            args.orders,
            NOW,
            services.directory,
            rules,
            services.tickets.deadlines,
            TZ,
            args.seed,  # type: ignore[arg-type]
        )
        print(f"filling {backend} with {args.orders:,} orders …", file=sys.stderr)
        fill_s = fill(url, year, args.chunk)
        print(f"  filled in {fill_s:.1f} s; building the aggregates …", file=sys.stderr)
        rebuild_s, done = rebuild(db, args.chunk // 2 or 1)
        print(f"  aggregates built in {rebuild_s:.1f} s", file=sys.stderr)
        rows = cube_rows(db)
        size_mb = _size_bytes(db.engine) / 2**20
        services.accounts.create_user_sync("manager", PASSWORD, _manager_role(), None, "领导")
    finally:
        db.close()
    return serve_and_measure(args, url, workdir, backend, fill_s, rebuild_s, done, rows, size_mb)


def serve_and_measure(
    args: argparse.Namespace,
    url: str,
    workdir: Path,
    backend: str,
    fill_s: float,
    rebuild_s: float,
    done: int,
    rows: dict[str, int],
    size_mb: float,
) -> int:
    server = ServerProcess(
        workdir,
        port=free_port(),
        database_url=url,
        extra_env={
            "HOTLINE__TELEPHONY__ENABLED": "false",
            "HOTLINE__TRIAGE__ENABLED": "false",
            "HOTLINE__SMS__CATCH_UP_HOURS": "0",
            "HOTLINE__SECURITY__LOGIN_MAX_FAILURES": "100",
        },
    )
    server.start()
    try:
        asyncio.run(wait_healthy(server, 300))
        print(f"statistics endpoints ({backend}, {done:,} orders, {args.repeat} requests each)")
        results = asyncio.run(measure(server.url, args.repeat, args.only))
    finally:
        server.stop()
    worst = max(r["p95_ms"] for r in results)
    built = (
        f"fill {fill_s:.0f} s, aggregates built in {rebuild_s:.0f} s "
        f"({done / max(rebuild_s, 1e-9):,.0f} orders/s)"
        if not args.reuse
        else "a store kept by an earlier run (--reuse)"
    )
    print(f"  {built}, database {size_mb:,.0f} MiB, cube rows {rows}")
    print(f"  worst p95 {worst:.1f} ms")
    summary = {
        "backend": backend,
        "orders": done,
        "fill_s": round(fill_s, 1),
        "rebuild_s": round(rebuild_s, 1),
        "db_mb": round(size_mb),
        "cube_rows": rows,
        "worst_p95_ms": worst,
        "endpoints": results,
    }
    if backend == "postgresql":
        summary["shared_buffers"] = args.shared_buffers
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(f"  load average at the end {summary['load_average']} (2 cores shared)")
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _manager_role() -> Any:
    from tickets.model import Role

    return Role.MANAGER


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--postgres", action="store_true", help="throwaway PostgreSQL")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per endpoint")
    parser.add_argument("--chunk", type=int, default=20_000, help="orders per fill transaction")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp dir (and the PostgreSQL cluster)"
    )
    parser.add_argument(
        "--reuse",
        help="measure again on what an earlier --keep run left: its SQLite work dir, or with "
        "--postgres its PostgreSQL cluster's directory",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="time only the endpoints whose name contains TEXT (repeatable)",
    )
    parser.add_argument(
        "--shared-buffers",
        default=production_postgres_settings()["shared_buffers"],
        help="PostgreSQL's shared_buffers (its own default is 128MB)",
    )
    args = parser.parse_args(argv)
    if args.reuse and not args.postgres:
        workdir = Path(args.reuse)
        return benchmark(args, f"sqlite:///{workdir / 'hotline.db'}", workdir)
    with (
        bench_workdir(args.keep, prefix="hotline-stats-") as workdir,
        database_url_for(
            workdir,
            args.postgres,
            settings={"shared_buffers": args.shared_buffers},
            keep=args.keep,
            reuse=Path(args.reuse) if args.reuse else None,
        ) as url,
    ):
        return benchmark(args, url, workdir)


if __name__ == "__main__":
    sys.exit(main())
