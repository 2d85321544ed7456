#!/usr/bin/env python3
"""CPU cost of the background work per order: triage (classify, find the region, dispatch or
hold for review) and the acknowledgement notice, in one process, with the shipped model.

1. a temp database (SQLite, or a throwaway PostgreSQL with --postgres) gets --orders citizen
   requests from the TipDM corpus (submitted 64 at a time, as intake does);
2. the classifier alone predicts their texts (the floor: what the model itself costs);
3. the triage handles every order, then the notices every order event, in one of two ways:
   --mode queue (default): the durable work queue's consumers, batch by batch, as the server
   runs them; --mode single: one order (one event) at a time, as the in-process bus consumers
   did before the queue (Triage.triage / Notifier.handle per item, awaited in turn).

CPU is the process's own (time.process_time: every thread, so the executor and the database
threads count); the database server's own CPU (PostgreSQL) is not included. Prints a block and
one JSON line: orders, classifier_ms, triage_cpu_ms, notice_cpu_ms (per order), triage_per_s.

    .venv/bin/python bench/triage.py                       # SQLite, 2,000 orders
    .venv/bin/python bench/triage.py --postgres --orders 1000
    .venv/bin/python bench/triage.py --mode single         # the old way, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _common import (
    DEFAULT_CORPUS,
    REPO_ROOT,
    bench_workdir,
    database_url_for,
    install_fast_loop,
    prepare_bodies,
)

sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa

from hotline.app import build_services, load_predictor, load_triage_parts
from hotline.bus import InProcessBus
from hotline.config import REPO_ROOT as CONFIG_ROOT
from hotline.config import Settings, load_settings
from hotline.db import open_database
from routing.triage import Triage, TriageSettings
from telephony.notify import Notifier
from telephony.sms import SmsService
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket
from tickets.store import list_events
from tickets.tables import tickets


def settings_for(db_url: str) -> Settings:
    env = {"HOTLINE__DATABASE__URL": db_url, "HOTLINE__TELEPHONY__ENABLED": "false"}
    return load_settings(CONFIG_ROOT / "config.toml", environ=env)


async def seed(db: Database, settings: Settings, n: int, seed_: int) -> list[str]:
    svc = build_services(settings, db, InProcessBus()).tickets
    texts: list[str] = []
    bodies = prepare_bodies(DEFAULT_CORPUS, n, seed_)  # generated text if there is no corpus
    for first in range(0, n, 64):
        chunk = [json.loads(b.payload) for b in bodies[first : first + 64]]
        await asyncio.gather(
            *(
                svc.submit(
                    NewTicket(
                        Channel.WEB,
                        d["content"],
                        Caller(phone=d["phone"], name=d.get("name")),
                        address=d.get("address"),
                        region=d.get("region"),
                    )
                )
                for d in chunk
            )
        )
        texts += [d["content"] for d in chunk]
    return texts


async def measure(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    await work()
    return time.process_time() - cpu0, time.perf_counter() - t0


def pending(db: Database) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(tickets)
        .where(tickets.c.route_state == "pending", tickets.c.status == "new")
    )
    return int(db.run_read(lambda c: c.execute(stmt).scalar_one()))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with bench_workdir() as workdir, database_url_for(workdir, args.postgres, "triage") as url:
        settings = settings_for(url)
        db = open_database(settings)
        try:
            texts = await seed(db, settings, args.orders, args.seed)
            services = build_services(settings, db, InProcessBus())
            predictor = load_predictor(settings)
            assert predictor is not None, "make model first"
            cpu0 = time.process_time()
            for text in texts:
                predictor.predict(text)
            classifier_ms = (time.process_time() - cpu0) * 1000 / len(texts)

            gazetteer, rules = load_triage_parts(settings, services.directory)
            executor = ThreadPoolExecutor(max_workers=1)
            cfg = settings.triage
            triage = Triage(
                services.tickets,
                predictor,
                gazetteer,
                rules,
                TriageSettings(cfg.auto_dispatch, cfg.threshold),
                executor,
            )
            sms = SmsService(settings.sms, db, services.tickets, public_url="http://bench")
            notifier = Notifier(sms, services.directory, settings.locale.timezone)
            ids = db.run_read(lambda c: list(c.execute(sa.select(tickets.c.id)).scalars()))
            if args.mode == "single":
                triage_cpu, triage_wall = await measure(lambda: _single_triage(triage, ids))
                # the creation events, as the bus handed them over (read before the clock)
                before = db.run_read(lambda c: [list_events(c, tid)[0] for tid in ids])

                async def notices() -> None:
                    for ev in before:
                        await notifier.handle(ev)

                notice_cpu, notice_wall = await measure(notices)
            else:
                from tickets.outbox import NOTICE, TRIAGE, WorkQueue

                triage_cpu, triage_wall = await measure(
                    lambda: _drain(WorkQueue(db, TRIAGE), triage.handle_jobs, 100)
                )
                notice_cpu, notice_wall = await measure(
                    lambda: _drain(WorkQueue(db, NOTICE), notifier.handle_jobs, 200)
                )
            left = pending(db)
            executor.shutdown()
            n = len(ids)
            return {
                "backend": "postgresql" if args.postgres else "sqlite",
                "mode": args.mode,
                "orders": n,
                "untriaged_after": left,
                "classifier_ms": round(classifier_ms, 2),
                "triage_cpu_ms": round(triage_cpu * 1000 / n, 2),
                "triage_per_s": round(n / triage_wall, 1),
                "notice_cpu_ms": round(notice_cpu * 1000 / n, 2),
                "notices_per_s": round(n / notice_wall, 1),
            }
        finally:
            db.close()


async def _single_triage(triage: Triage, ids: Sequence[int]) -> None:
    for tid in ids:
        await triage.triage(tid)


async def _drain(queue: Any, handle: Callable[[list[Any]], Awaitable[Any]], batch: int) -> None:
    """Claim, handle and complete until the topic's queue is empty (the consumer's loop
    without its waiting)."""
    while jobs := await queue.claim(batch):
        failed = await handle(jobs) or {}
        assert not failed, failed
        await queue.complete(jobs)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=2000)
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--mode", choices=("queue", "single"), default="queue")
    p.add_argument("--seed", type=int, default=20261203)
    args = p.parse_args(argv)
    install_fast_loop()
    out = asyncio.run(run(args))
    print(f"== background work per order ({out['backend']}, {out['mode']}) ==")
    print(f"orders          {out['orders']} (left untriaged: {out['untriaged_after']})")
    print(f"classifier      {out['classifier_ms']} ms CPU per order (the model alone)")
    print(f"triage          {out['triage_cpu_ms']} ms CPU per order, {out['triage_per_s']}/s")
    print(f"notices         {out['notice_cpu_ms']} ms CPU per order, {out['notices_per_s']}/s")
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
