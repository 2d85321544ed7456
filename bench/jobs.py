#!/usr/bin/env python3
"""Background work across worker processes: the store's queue alone (every consumer polls
PostgreSQL, `FOR UPDATE SKIP LOCKED`) against delivery through Redis streams (one relay polls,
consumers block on the stream; hotline/jobs_redis.py).

For each delivery (`table`, `stream`) and number of worker processes (--processes, default
1,2,4), on one throwaway durable PostgreSQL and one Redis, 127.0.0.1 only, M child processes
each run --consumers `consume()` loops on one topic (a worker process runs one per topic:
triage, search, 多人同诉, notices) and, with streams, the relay (one of them holds its lease).
The handler only records when it saw each job, so what is measured is the queue itself.

- idle: --idle seconds with nothing to do. Printed: the database statements the waiting costs
  per second (claims, and with streams the check of entries against their rows), summed over
  the processes.
- drain: --jobs jobs are written first, then the processes start. Printed: jobs/s from the first
  job handled to the last, jobs run twice (must be 0) and jobs never run (must be 0).

Then a table and ONE JSON line. Exit status 1 if a job ran twice or never.

    .venv/bin/python bench/jobs.py
    .venv/bin/python bench/jobs.py --processes 1,4 --jobs 50000 --idle 20
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, bench_workdir

from hotline.db import upgrade
from tickets import outbox_store
from tickets.db import Database
from tickets.outbox import Job, WorkQueue, consume, enqueue

TOPIC = "bench"
BATCH = 100


# -- a worker process -----------------------------------------------------------------------------
async def child(db_url: str, redis_url: str, prefix: str, consumers: int) -> dict[str, Any]:
    db = Database(db_url)
    counts: Counter[str] = Counter()

    class Counting(WorkQueue):
        async def claim(self, limit: int = 100) -> list[Job]:
            counts["claim"] += 1
            return await super().claim(limit)

        async def held(self, jobs: Any) -> set[tuple[int, str]]:
            counts["held"] += bool(jobs)  # (an empty check reads nothing)
            return await super().held(jobs)

    table = Counting(db, TOPIC, lease=timedelta(seconds=60))
    seen: list[tuple[int, float]] = []

    async def handle(jobs: list[Job]) -> None:
        now = time.time()
        seen.extend((j.id, now) for j in jobs)

    tasks: list[asyncio.Task[None]] = []
    client: Any = None
    queue: Any = table
    if redis_url:
        import redis.asyncio as aioredis

        from hotline.jobs_redis import StreamJobs

        client = aioredis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
        streams = StreamJobs(client, prefix)
        queue = streams(table)
        tasks.append(asyncio.create_task(streams.run()))
    tasks += [
        asyncio.create_task(consume(queue, handle, batch=BATCH, idle_s=1.0))
        for _ in range(consumers)
    ]
    started = time.time()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    stopped = time.time()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if client is not None:
        await client.aclose()
    db.close()
    return {"seen": seen, "counts": counts, "started": started, "stopped": stopped}


# -- the run ----------------------------------------------------------------------------------
def start_children(
    args: argparse.Namespace, db_url: str, redis_url: str, prefix: str, n: int, work: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    procs = []
    for i in range(n):
        out = work / f"{prefix}-{i}.json"
        cmd = [sys.executable, __file__, "--child", db_url, redis_url, prefix, str(args.consumers)]
        procs.append((subprocess.Popen([*cmd, str(out)], cwd=REPO_ROOT), out))
    return procs


def stop_children(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> list[dict[str, Any]]:
    for p, _ in procs:
        p.send_signal(signal.SIGTERM)
    results = []
    for p, out in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        results.append(json.loads(out.read_text()) if out.exists() else {})
    return results


def depth(db: Database) -> int:
    return db.run_read(lambda c: outbox_store.stats(c, TOPIC)[0])


def run_config(
    args: argparse.Namespace, delivery: str, n: int, db_url: str, redis_url: str, work: Path
) -> dict[str, Any]:
    db = Database(db_url)
    r_url = redis_url if delivery == "stream" else ""
    # idle
    procs = start_children(args, db_url, r_url, f"idle-{delivery}-{n}", n, work)
    time.sleep(args.idle)
    idle = stop_children(procs)
    secs = sum(x["stopped"] - x["started"] for x in idle) / max(1, len(idle))
    claims = sum(x["counts"].get("claim", 0) for x in idle) / secs
    helds = sum(x["counts"].get("held", 0) for x in idle) / secs

    # drain
    def add(conn: Any, k: int) -> None:
        for _ in range(k):
            enqueue(conn, TOPIC, payload={})

    for start in range(0, args.jobs, 5000):
        count = min(5000, args.jobs - start)
        db.run_write(functools.partial(add, k=count))
    procs = start_children(args, db_url, r_url, f"drain-{delivery}-{n}", n, work)
    deadline = time.monotonic() + args.timeout
    while depth(db) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a late second run of a job would show now
    drained = stop_children(procs)
    left = depth(db)
    db.run_write(lambda c: c.exec_driver_sql("DELETE FROM work_queue"))
    db.close()
    seen = [tuple(s) for x in drained for s in x["seen"]]
    ids = Counter(i for i, _ in seen)
    times = sorted(t for _, t in seen)
    span = (times[-1] - times[0]) if len(times) > 1 else 0.0
    row = {
        "delivery": delivery,
        "processes": n,
        "idle_claims_per_s": round(claims, 1),
        "idle_checks_per_s": round(helds, 1),
        "jobs": args.jobs,
        "jobs_per_s": round(len(ids) / span, 0) if span else None,
        "twice": sum(1 for c in ids.values() if c > 1),
        "never": args.jobs - len(ids),
        "left_in_table": left,
        "drain_claims": sum(x["counts"].get("claim", 0) for x in drained),
        "drain_checks": sum(x["counts"].get("held", 0) for x in drained),
    }
    print(json.dumps(row, ensure_ascii=False), file=sys.stderr, flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", default="1,2,4", help="worker process counts")
    ap.add_argument("--consumers", type=int, default=4, help="consume() loops per process")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of the idle phase")
    ap.add_argument("--jobs", type=int, default=20000, help="jobs of the drain phase")
    ap.add_argument("--timeout", type=float, default=300.0, help="most seconds a drain may take")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    from tests.pgserver import PostgresServer
    from tests.redisserver import RedisServer

    rows = []
    with (
        bench_workdir(args.keep, "hotline-jobs-") as work,
        PostgresServer(durable=True) as pg,
        RedisServer() as redis,
    ):
        for delivery in ("table", "stream"):
            for n in (int(x) for x in args.processes.split(",")):
                name = f"b_{delivery}_{n}"
                pg.create_database(name)
                db = Database(pg.url(name))
                upgrade(db)
                db.close()
                rows.append(run_config(args, delivery, n, pg.url(name), redis.url, work))
    print(
        f"\nbackground work: {args.consumers} consumers per process, batches of {BATCH}, "
        f"{os.cpu_count()} cores; idle {args.idle:g} s, drain {args.jobs} jobs"
    )
    print(
        "| delivery | processes | idle: claims/s | idle: checks/s | drain: jobs/s "
        "| run twice | never run |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['delivery']} | {r['processes']} | {r['idle_claims_per_s']} | "
            f"{r['idle_checks_per_s']} | {r['jobs_per_s']} | {r['twice']} | {r['never']} |"
        )
    print(json.dumps({"bench": "jobs", "rows": rows}, ensure_ascii=False))
    return 0 if all(r["twice"] == 0 and r["never"] == 0 for r in rows) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        db_url, redis_url, prefix, consumers, out = sys.argv[2:7]
        result = asyncio.run(child(db_url, redis_url, prefix, int(consumers)))
        Path(out).write_text(json.dumps(result))
    else:
        sys.exit(main())
