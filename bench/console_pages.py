#!/usr/bin/env python3
"""Staff work lists and order search at 1,000,000 orders: each role's queues, every filter, a
deep page, the list's word filter and the search page, timed through `hotline serve`.

1. builds a database (a temp SQLite file, or a throwaway PostgreSQL with --postgres) and fills
   it with --orders work orders over the year before now with bench/stats.py's fill and
   bench/stats_seed.py's Year (every lifecycle state, assignments, events, deadline clocks);
   this script then gives the rows what the lists filter on and the seed leaves flat: real
   TipDM message text as content, a summary and address, callers' mobile numbers (a few
   thousand repeat callers among one-off ones), 督办 / 催办 on part of the overdue orders and
   the dispatchers' review queue (new orders whose classification was not sure enough);
   the statistics aggregates are not built (no page here reads them);
2. creates a dispatcher, a supervisor and a department account (the department holding the
   most orders waiting for 签收 unless --department is given);
3. indexes the orders for search with `hotline search reindex`, stopped after
   --index-seconds if it has not finished (the figure says how many orders were indexed);
4. starts `hotline serve`, logs each role in, and times --repeat requests of each page and its
   API twin after two warm-ups (keep-alive, one at a time, 127.0.0.1: the time is the server's
   plus a loopback round trip); a case slower than --case-seconds in total stops early with at
   least --min-repeat requests, and says how many it made.

Prints a table (p50 / p95 / max, ✓ when p95 is under the 200 ms target of issue 14) and ONE JSON
line with the load average. Run from the repository root:

    .venv/bin/python bench/console_pages.py [--postgres] [--orders 1000000] [--repeat 20]
    .venv/bin/python bench/console_pages.py --orders 20000 --repeat 5    # a quick look
    .venv/bin/python bench/console_pages.py --keep …; then --reuse DIR to measure again
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import sqlalchemy as sa
from _common import (
    REGION_NAMES,
    REPO_ROOT,
    STREETS,
    SURNAMES,
    ServerProcess,
    bench_workdir,
    database_url_for,
    free_port,
    hotline_command,
    load_corpus,
    random_mobile,
    wait_healthy,
)
from stats import fill
from stats_seed import CLOCK_COLS, TICKET_COLS, Chunk, Year
from watcher import _size_bytes

from hotline.app import build_services, load_triage_parts
from hotline.bus import InProcessBus
from hotline.config import load_settings
from hotline.db import open_database
from tickets.model import Role
from tickets.tables import assignments, tickets

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(TZ).replace(minute=0, second=0, microsecond=0)
PASSWORD = "bench-password-1"
TARGET_P95_MS = 200.0
META_FILE = "console_pages.json"  # what a --keep run leaves for --reuse
_T = {name: i for i, name in enumerate(TICKET_COLS)}
_C = {name: i for i, name in enumerate(CLOCK_COLS)}


# -- the orders ---------------------------------------------------------------------------------
class ListYear(Year):
    """bench/stats_seed.py's year of orders, with the fields the lists filter on made real.

    The seed's own random stream is left alone (same lifecycle for the same seed); the
    extras draw from a second one."""

    def __init__(self, *args: Any, corpus: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = random.Random(self.rng.random())
        self.corpus = corpus or [("噪音扰民", "夜间施工噪音扰民，请尽快处理。")]
        # repeat callers: 30 % of the orders come from 20,000 numbers (~15 orders each)
        self.callers = [random_mobile(self.extra) for _ in range(20_000)]

    def chunk(self, lo: int, hi: int) -> Chunk:
        c = super().chunk(lo, hi)
        late = {
            row[_C["ticket_id"]] for row in c.clocks if row[_C["state"]] == "overdue"
        }  # orders with a running limit already passed
        x = self.extra
        rows = []
        for row in c.tickets:
            r = list(row)
            subject, detail = x.choice(self.corpus)
            r[_T["title"]] = subject[:200] or r[_T["title"]]
            r[_T["content"]] = (f"{subject}\n{detail}" if detail else subject)[:4000]
            if x.random() < 0.6:  # the agent's 诉求汇总 (phone orders mostly)
                r[_T["summary"]] = f"{subject}。{detail[:80]}"
            region = r[_T["region"]]
            place = REGION_NAMES.get(region or "", "") or (
                self.directory.region_name(region) if region else ""
            )
            if x.random() < 0.7:
                r[_T["address"]] = f"{place}{x.choice(STREETS)}{x.randint(1, 300)}号"
            if x.random() < 0.8:
                r[_T["caller_name"]] = x.choice(SURNAMES) + x.choice(("先生", "女士"))
            r[_T["caller_phone"]] = x.choice(self.callers) if x.random() < 0.3 else random_mobile(x)
            r[_T["caller_confidential"]] = x.random() < 0.01
            if r[_T["id"]] in late and x.random() < 0.3:  # 督办, half of them 催办 too
                r[_T["supervised"]] = True
                r[_T["urge_count"]] = x.choice((0, 1, 2))
            if r[_T["status"]] == "new" and x.random() < 0.6:
                # the triage was not sure: the order waits in the dispatchers' review queue
                category = (r[_T["category"]] or [None])[0] or "城乡建设"
                r[_T["category"]] = []
                r[_T["route_state"]] = "review"
                r[_T["suggestion"]] = {"category": [category], "confidence": 0.42}
            rows.append(tuple(r))
        c.tickets = rows
        return c


# -- what is asked ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Case:
    name: str
    role: str  # the account (dispatcher | supervisor | department)
    path: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    """Filter values drawn from the data (kept by --keep for --reuse)."""

    department: str
    phone: str
    day: str  # YYYYMMDD: a number prefix (one day's orders)
    week_from: str
    week_until: str


PAGE = "/staff/tickets"
API = "/api/v1/tickets"
SEARCH_PAGE = "/staff/search"
SEARCH_API = "/api/v1/search/tickets"
COMMON_WORD = "噪音"  # in some thousands of messages
RARE_WORD = "搅拌站"  # in a few dozen
TWO_WORDS = "小区 停车"


def cases(s: Sample) -> list[Case]:
    week = {"from": s.week_from, "until": s.week_until}
    out = [
        # where each role starts, and its other queues (the page); the API's nearest twin
        Case("dispatcher: review queue (default)", "dispatcher", PAGE, {"view": "review"}),
        Case("  api route_state=review&status=new", "dispatcher", API,
             {"route_state": "review", "status": "new"}),
        Case("dispatcher: redispatch queue", "dispatcher", PAGE, {"view": "redispatch"}),
        Case("  api status=reopened sort=due", "dispatcher", API,
             {"status": "reopened", "sort": "due"}),
        Case("dispatcher: extension queue", "dispatcher", PAGE, {"view": "extension"}),
        Case("dispatcher: replies to review", "dispatcher", PAGE, {"view": "replied"}),
        Case("  api status=replied sort=due", "dispatcher", API,
             {"status": "replied", "sort": "due"}),
        Case("department: inbox by deadline (default)", "department", PAGE, {"view": "inbox"}),
        Case("  api sort=due (all own orders)", "department", API, {"sort": "due"}),
        Case("department: doing by deadline", "department", PAGE, {"view": "doing"}),
        Case("department: overdue", "department", PAGE, {"view": "overdue"}),
        Case("  api overdue=1 sort=due", "department", API, {"overdue": "1", "sort": "due"}),
        Case("department: all own orders", "department", PAGE, {"view": "all"}),
        Case("supervisor: overdue board", "supervisor", PAGE, {"view": "overdue"}),
        Case("  api overdue=1 sort=due", "supervisor", API, {"overdue": "1", "sort": "due"}),
        Case("supervisor: 督办 board", "supervisor", PAGE, {"view": "supervised"}),
        Case("  api supervised=1 sort=due", "supervisor", API, {"supervised": "1", "sort": "due"}),
        Case("supervisor: all orders (default)", "supervisor", PAGE, {"view": "all"}),
        Case("  api (no filter)", "supervisor", API, {}),
    ]  # fmt: skip
    filters: list[tuple[str, dict[str, str]]] = [
        ("phone (repeat caller)", {"phone": s.phone}),
        ("number prefix (one day)", {"number": s.day}),
        ("region 150100 and below", {"region": "150100"}),
        ("department", {"department": s.department}),
        ("kind complaint", {"kind": "complaint"}),
        ("category 城乡建设", {"category": "城乡建设"}),
        ("channel web", {"channel": "web"}),
        ("state accepted", {"status": "accepted"}),
        ("date range (a week)", week),
        ("overdue", {"overdue": "1"}),
        ("supervised", {"supervised": "1"}),
        ("region+kind+week", {"region": "150100", "kind": "complaint", **week}),
        ("page 50 of all", {"page": "50"}),
        ("page 50 of complaints", {"kind": "complaint", "page": "50"}),
        (f"q common word {COMMON_WORD}", {"q": COMMON_WORD}),
        (f"q rare word {RARE_WORD}", {"q": RARE_WORD}),
        (f"q two words {TWO_WORDS}", {"q": TWO_WORDS}),
        (f"q {COMMON_WORD} + week", {"q": COMMON_WORD, **week}),
    ]
    for label, query in filters:
        out.append(Case(f"filter: {label}", "supervisor", PAGE, {"view": "all", **query}))
        api = dict(query)
        if "page" in api:
            api["offset"] = str((int(api.pop("page")) - 1) * 50)
        out.append(Case("  api", "supervisor", API, api))
    out += [
        Case(f"department: q {COMMON_WORD}", "department", PAGE, {"view": "all", "q": COMMON_WORD}),
        Case("department: phone", "department", PAGE, {"view": "all", "phone": s.phone}),
        Case(f"search page q={COMMON_WORD}", "supervisor", SEARCH_PAGE, {"q": COMMON_WORD}),
        Case("  api", "supervisor", SEARCH_API, {"q": COMMON_WORD}),
        Case(f"search page q={RARE_WORD}", "supervisor", SEARCH_PAGE, {"q": RARE_WORD}),
        Case("  api", "supervisor", SEARCH_API, {"q": RARE_WORD}),
        Case(f"search page q={TWO_WORDS}", "supervisor", SEARCH_PAGE, {"q": TWO_WORDS}),
        Case("  api", "supervisor", SEARCH_API, {"q": TWO_WORDS}),
        Case("search api q + region + kind", "supervisor", SEARCH_API,
             {"q": COMMON_WORD, "region": "150100", "kind": "complaint"}),
        Case(f"department: search page q={COMMON_WORD}", "department", SEARCH_PAGE,
             {"q": COMMON_WORD}),
        Case("  api", "department", SEARCH_API, {"q": COMMON_WORD}),
        Case("dispatcher: search page q=供暖 温度 不达标", "dispatcher", SEARCH_PAGE,
             {"q": "供暖 温度 不达标"}),
    ]  # fmt: skip
    return out


# -- building the database ----------------------------------------------------------------------
def sample_values(url: str, department: str | None) -> Sample:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if department is None:  # the department with the most orders waiting for 签收
                department = conn.execute(
                    sa.select(assignments.c.department)
                    .where(assignments.c.state == "pending")
                    .group_by(assignments.c.department)
                    .order_by(sa.func.count().desc())
                    .limit(1)
                ).scalar_one()
            phone = conn.execute(  # a repeat caller: the number with the most orders
                sa.select(tickets.c.caller_phone)
                .where(tickets.c.caller_phone.is_not(None))
                .group_by(tickets.c.caller_phone)
                .order_by(sa.func.count().desc())
                .limit(1)
            ).scalar_one()
    finally:
        engine.dispose()
    day = NOW.date() - timedelta(days=30)
    return Sample(
        department=str(department),
        phone=str(phone),
        day=day.strftime("%Y%m%d"),
        week_from=(day - timedelta(days=6)).isoformat(),
        week_until=day.isoformat(),
    )


def build(args: argparse.Namespace, url: str) -> tuple[float, Sample]:
    settings = load_settings(REPO_ROOT / "config.toml", environ={"HOTLINE__DATABASE__URL": url})
    db = open_database(settings)
    try:
        services = build_services(settings, db, InProcessBus())
        _, rules = load_triage_parts(settings, services.directory)
        year = ListYear(
            args.orders,
            NOW,
            services.directory,
            rules,
            services.tickets.deadlines,
            TZ,
            args.seed,
            corpus=load_corpus(),
        )
        print(f"filling with {args.orders:,} orders …", file=sys.stderr)
        fill_s = fill(url, year, args.chunk)
        print(f"  filled in {fill_s:.1f} s", file=sys.stderr)
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            with db.engine.connect().execution_options(sqlite_write=True) as conn:
                conn.exec_driver_sql("ANALYZE")
        sample = sample_values(url, args.department)
        accounts = services.accounts
        accounts.create_user_sync("dispatcher", PASSWORD, Role.DISPATCHER, None, "派单员")
        accounts.create_user_sync("supervisor", PASSWORD, Role.SUPERVISOR, None, "班长")
        accounts.create_user_sync(
            "department", PASSWORD, Role.DEPARTMENT, sample.department, "承办人"
        )
    finally:
        db.close()
    return fill_s, sample


def server_env(url: str, workdir: Path) -> dict[str, str]:
    return {
        "HOTLINE__DATABASE__URL": url,
        "HOTLINE__SEARCH__PATH": str(workdir / "search.db"),
        "HOTLINE__TELEPHONY__ENABLED": "false",
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__SMS__CATCH_UP_HOURS": "0",
        "HOTLINE__SECURITY__LOGIN_MAX_FAILURES": "100",
    }


def reindex(url: str, workdir: Path, budget_s: float) -> tuple[float, bool]:
    """`hotline search reindex` in a child process, stopped (SIGTERM to that child only) when
    `budget_s` runs out; returns (seconds, finished)."""
    env = {**os.environ, **server_env(url, workdir), "PYTHONUNBUFFERED": "1"}
    log = (workdir / "reindex.log").open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [*hotline_command(), "search", "reindex"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        proc.wait(budget_s)
        finished = proc.returncode == 0
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finished = False
    finally:
        log.close()
    return time.perf_counter() - t0, finished


def indexed_orders(workdir: Path) -> int:
    import sqlite3

    path = workdir / "search.db"
    if not path.is_file():
        return 0
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM orders_meta").fetchone()[0])


# -- measuring ----------------------------------------------------------------------------------
async def login(base: str, username: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post(
        base + "/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as resp:
        if resp.status != 200:
            await session.close()
            raise RuntimeError(f"login {username}: {resp.status} {await resp.text()}")
    return session


def _total(body: bytes, path: str) -> int | None:
    if not path.startswith("/api/"):
        return None
    try:
        return int(json.loads(body)["total"])
    except (ValueError, KeyError, TypeError):
        return None


async def measure(base: str, args: argparse.Namespace, sample: Sample) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sessions = {r: await login(base, r) for r in ("dispatcher", "supervisor", "department")}
    page_name = ""
    try:
        for case in cases(sample):
            is_twin = case.name.startswith(" ")
            page_name = page_name if is_twin else case.name
            session = sessions[case.role]
            times: list[float] = []
            total: int | None = None
            error = None
            started = time.perf_counter()
            for i in range(args.repeat + 2):
                t0 = time.perf_counter()
                async with session.get(
                    base + case.path, params=case.query, allow_redirects=False
                ) as resp:
                    body = await resp.read()
                    status = resp.status
                elapsed = (time.perf_counter() - t0) * 1000
                if status != 200:
                    error = f"{status} {body[:200].decode('utf-8', 'replace')}"
                    break
                total = _total(body, case.path) if total is None else total
                if i >= 2:
                    times.append(elapsed)
                spent = time.perf_counter() - started
                if len(times) >= args.min_repeat and spent > args.case_seconds:
                    break
            name = f"{page_name} → {case.name.strip()}" if is_twin else case.name
            row: dict[str, Any] = {"case": name, "role": case.role}
            row["url"] = case.path + ("?" + "&".join(f"{k}={v}" for k, v in case.query.items()))
            if error or not times:
                row["error"] = error or "no timed request"
                print(f"  {case.name:<44} ERROR {row['error']}", flush=True)
                out.append(row)
                continue
            times.sort()
            row.update(
                n=len(times),
                p50_ms=round(statistics.median(times), 1),
                p95_ms=round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
                max_ms=round(times[-1], 1),
                total=total,
            )
            row["meets_target"] = row["p95_ms"] < TARGET_P95_MS
            mark = "✓" if row["meets_target"] else "✗"
            extra = f"  total {total:,}" if total is not None else ""
            print(
                f"  {case.name:<44} p50 {row['p50_ms']:8.1f}  p95 {row['p95_ms']:8.1f}  "
                f"max {row['max_ms']:8.1f} ms  {mark} n={row['n']}{extra}",
                flush=True,
            )
            out.append(row)
    finally:
        for s in sessions.values():
            await s.close()
    return out


def serve_and_measure(
    args: argparse.Namespace, url: str, workdir: Path, meta: dict[str, Any]
) -> dict[str, Any]:
    server = ServerProcess(
        workdir, port=free_port(), database_url=url, extra_env=server_env(url, workdir)
    )
    server.start()
    try:
        asyncio.run(wait_healthy(server, 300))
        sample = Sample(**meta["sample"])
        print(
            f"console lists ({meta['backend']}, {meta['orders']:,} orders, "
            f"{meta['indexed']:,} indexed for search, department {sample.department}, "
            f"{args.repeat} requests each; ✓ = p95 under {TARGET_P95_MS:.0f} ms)",
            flush=True,
        )
        results = asyncio.run(measure(server.url, args, sample))
    finally:
        server.stop()
    return {**meta, "cases": results}


def benchmark(args: argparse.Namespace, url: str, workdir: Path) -> int:
    backend = "postgresql" if args.postgres else "sqlite"
    meta_path = workdir / META_FILE
    if args.reuse:
        meta = json.loads(meta_path.read_text())
    else:
        fill_s, sample = build(args, url)
        print(f"indexing for search (at most {args.index_seconds:.0f} s) …", file=sys.stderr)
        index_s, finished = reindex(url, workdir, args.index_seconds)
        indexed = indexed_orders(workdir)
        print(
            f"  indexed {indexed:,} orders in {index_s:.0f} s"
            + ("" if finished else " (stopped: time budget)"),
            file=sys.stderr,
        )
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        size_mb = _size_bytes(engine) / 2**20
        engine.dispose()
        meta = {
            "backend": backend,
            "orders": args.orders,
            "fill_s": round(fill_s, 1),
            "db_mb": round(size_mb),
            "indexed": indexed,
            "index_s": round(index_s, 1),
            "index_finished": finished,
            "sample": dataclasses.asdict(sample),
        }
        meta_path.write_text(json.dumps(meta, ensure_ascii=False))
    summary = serve_and_measure(args, url, workdir, meta)
    timed = [c for c in summary["cases"] if "p95_ms" in c]
    summary["repeat"] = args.repeat
    summary["met"] = sum(1 for c in timed if c["meets_target"])
    summary["missed"] = [c["case"] for c in timed if not c["meets_target"]]
    summary["errors"] = [c["case"] for c in summary["cases"] if "error" in c]
    summary["load_average"] = [round(x, 2) for x in os.getloadavg()]
    summary["at"] = datetime.now(TZ).isoformat(timespec="seconds")
    print(
        f"  fill {meta['fill_s']:.0f} s, database {meta['db_mb']:,} MiB, search index "
        f"{meta['indexed']:,} orders in {meta['index_s']:.0f} s"
        + ("" if meta["index_finished"] else " (stopped at the time budget)")
    )
    print(f"  {summary['met']} of {len(timed)} cases under {TARGET_P95_MS:.0f} ms p95")
    print(f"  load average at the end {summary['load_average']} (2 cores shared)")
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--postgres", action="store_true", help="throwaway PostgreSQL")
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per case")
    parser.add_argument(
        "--case-seconds", type=float, default=60.0, help="stop a slow case after this long …"
    )
    parser.add_argument("--min-repeat", type=int, default=5, help="… once it has this many")
    parser.add_argument("--index-seconds", type=float, default=1200.0, help="reindex budget")
    parser.add_argument("--department", help="the department account's code (default: busiest)")
    parser.add_argument("--chunk", type=int, default=20_000, help="orders per fill transaction")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--reuse", help="measure again on the SQLite work dir a --keep run left")
    args = parser.parse_args(argv)
    if args.reuse:
        workdir = Path(args.reuse)
        return benchmark(args, f"sqlite:///{workdir / 'hotline.db'}", workdir)
    with (
        bench_workdir(args.keep, prefix="hotline-pages-") as workdir,
        database_url_for(workdir, args.postgres) as url,
    ):
        return benchmark(args, url, workdir)


if __name__ == "__main__":
    sys.exit(main())
