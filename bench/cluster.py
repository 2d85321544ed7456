#!/usr/bin/env python3
"""Several processes under mixed load: 1, 2 and 4 web processes + the SIP pool + a worker on
one PostgreSQL and one Redis, beside the single-process SQLite default, on this machine.

Per configuration it starts, on 127.0.0.1 only:
- `pg-webN`: N × `hotline serve --role web` (each its own port), one `--role web,sip` (the call
  centre and --sip-workers SIP worker processes), one `--role worker` (triage, notices, search
  indexing, deadline watcher), all on a fresh database of one throwaway PostgreSQL
  (tests/pgserver.py) and one Redis (tests/redisserver.py, a key prefix per configuration);
- `sqlite-1`: one `hotline serve` with every role, SQLite, no Redis (the embedded default);
and Kamailio in front of the SIP workers (telephony/kamailio.py, as bench/sip_load.py does).

Then, for --duration seconds, all at once:
- web: --clients closed-loop citizens POST /api/v1/requests (bench/_common.py run_load), the
  connections spread round-robin over the web processes as nginx would;
- SMS: --sms-clients closed-loop gateways GET /api/v1/sms/kannel with Kannel's MO query
  (from, to, UTF-8 text, charset, coding, Kannel's message id, the gateway token), each from a
  number of its own so that each message is a new order, also spread over the web processes;
- SIP: SIPp (tests/sip/scenarios/caller_call.xml, RTP in PCMA, keys 1 then 1 → the queue with
  music on hold, no agent answers) at --sip-rate calls/s, each held --sip-hold s, via Kamailio.

Before the measured --duration, --warmup seconds of the same web and SMS load (not measured;
what it acknowledged is checked in the store too). Printed per configuration: accepted/s,
p50/p99 and errors per channel (SIP: calls completed and failed, INVITE→200 p50/p99 from SIPp
in whole ms), the machine's load average before and at the end of the load, the servers' CPU
seconds, what the worker had left untriaged; then a
check that every acknowledged request is in the store (each 201's number among the web
orders, each accepted SMS's Kannel id among the SMS orders, SIPp's completed calls against the
call records), and at the end a table and ONE JSON line.

    .venv/bin/python bench/cluster.py                      # sqlite-1, pg-web1, pg-web2, pg-web4
    .venv/bin/python bench/cluster.py --duration 20 --webs 1,2,4 --sip-rate 1
    .venv/bin/python bench/cluster.py --no-sqlite --webs 2 --keep

Every process started here (servers and their SIP workers, Kamailio, SIPp, PostgreSQL, Redis)
is stopped by its PID, also on Ctrl-C or an error. Exit status 0 if every configuration ran
and nothing acknowledged is missing, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

import aiohttp
from _common import (
    REPO_ROOT,
    BacklogProbe,
    LoadResult,
    ServerProcess,
    _pct,
    _process_tree,
    add_worker_rt_argument,
    bench_workdir,
    install_fast_loop,
    load_corpus,
    make_session,
    prepare_bodies,
    run_load,
    sqlite_url,
    wait_healthy,
    worker_rt_env,
)

sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa

from hotline.config import load_settings
from telephony.kamailio import KamailioProcess, start_kamailio
from telephony.kannel import MO_PATH
from telephony.tables import calls
from tests.pgserver import PostgresServer
from tests.ports import RTP_HIGH, RTP_LOW, free_port, free_port_block, port_free
from tests.redisserver import RedisServer
from tests.sip.pcap import write_rtp_pcap
from tests.sip.sipp import SippProcess, SippResult, start_sipp
from tickets.tables import tickets

GATEWAY_TOKEN = "bench-cluster-gateway-0001"  # Kannel's proof on every MO call
SERVICE_NUMBER = "12345"
SMS_PREFIX = "147"  # SMS senders: a prefix the web bodies never use, so no SMS supplements one
RTP_PORTS_PER_WORKER = 20
# SMS senders of the whole run, warm-up included: a number used twice would make its second
# message a supplement to the first one's open order, not a new order
SMS_SENDERS = itertools.count()
BOOT_TIMEOUT_S = 300.0  # the first boot writes the IVR prompts: 35–90 s on a loaded machine
SETTLE_S = 3.0  # after the load: let the last call records and replies commit


@dataclass(frozen=True, slots=True)
class Layout:
    """One configuration: `webs` web processes on PostgreSQL + Redis, or 0 for the single
    all-roles process on SQLite."""

    webs: int

    @property
    def name(self) -> str:
        return f"pg-web{self.webs}" if self.webs else "sqlite-1"


@dataclass
class SmsResult:
    outcomes: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of accepted messages
    accepted_ids: list[str] = field(default_factory=list)  # Kannel ids that became new orders
    error_examples: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0


# -- processes ---------------------------------------------------------------------------------
class Processes:
    """Everything one configuration started, stopped in reverse order by PID."""

    def __init__(self) -> None:
        self.servers: list[ServerProcess] = []
        self.kamailio: KamailioProcess | None = None
        self.sipp: SippProcess | None = None
        self._children: dict[int, bytes] = {}  # SIP workers etc.: pid → cmdline when seen

    def remember_children(self) -> None:
        for server in self.servers:
            if server.alive():
                for pid in _process_tree(server.pid)[1:]:
                    with contextlib.suppress(OSError):
                        self._children[pid] = Path(f"/proc/{pid}/cmdline").read_bytes()

    def stop(self) -> None:
        if self.sipp is not None and self.sipp.running():
            self.sipp.stop(grace_s=3.0)
        if self.kamailio is not None:
            self.kamailio.stop()
        self.remember_children()
        for server in reversed(self.servers):
            server.stop(timeout_s=20.0)
        # a SIP worker that outlived its server (it should not): the same process we saw
        for pid, cmdline in self._children.items():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                    os.kill(pid, signal.SIGKILL)


def server_env(args: argparse.Namespace, work: Path, shared: Path) -> dict[str, str]:
    """Settings every process of a configuration shares (ports of the SIP pool included)."""
    workers = args.sip_workers
    front = free_port()
    base = free_port_block(workers)
    while front in range(base, base + workers):
        base = free_port_block(workers)
    rtp = free_port_block(
        RTP_PORTS_PER_WORKER * workers, tcp=False, low=RTP_LOW, high=RTP_HIGH, step=1
    )
    return {
        **worker_rt_env(args.worker_rt),
        "HOTLINE__LOG__LEVEL": "WARNING",
        "HOTLINE__SEARCH__PATH": str(work / "search.db"),
        "HOTLINE__ATTACHMENTS__DIR": str(work / "attachments"),
        "HOTLINE__TELEPHONY__PROMPTS_DIR": str(shared / "prompts"),  # built once, reused
        "HOTLINE__TELEPHONY__SPOOL_DIR": str(work / "spool"),
        "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(work / "recordings"),
        "HOTLINE__TELEPHONY__KAMAILIO_DIR": str(work / "kamailio"),
        "HOTLINE__TELEPHONY__PORT": str(front),
        "HOTLINE__TELEPHONY__WORKERS": str(workers),
        "HOTLINE__TELEPHONY__WORKER_BASE_PORT": str(base),
        "HOTLINE__TELEPHONY__RTP_BASE_PORT": str(rtp),
        "HOTLINE__TELEPHONY__RTP_PORTS_PER_WORKER": str(RTP_PORTS_PER_WORKER),
        "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": "3600",
        "HOTLINE__TELEPHONY__MAX_INVITES_PER_S": "1000",
        # SIPp on 127.0.0.1 stands for the carrier's trunk: every caller from one address
        "HOTLINE__TELEPHONY__KAMAILIO_TRUSTED": '["127.0.0.1"]',
        "HOTLINE__SMS__GATEWAY_TOKEN": GATEWAY_TOKEN,
        "HOTLINE__SMS__PER_NUMBER_PER_HOUR": "1000",
    }


def wait_sip_workers(server: ServerProcess, env: dict[str, str], timeout_s: float) -> None:
    """Until every SIP worker has bound its UDP port (Kamailio's first probe then finds it)."""
    base, n = (
        int(env["HOTLINE__TELEPHONY__WORKER_BASE_PORT"]),
        int(env["HOTLINE__TELEPHONY__WORKERS"]),
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError("the sip process exited:\n" + server.log_tail())
        if not any(port_free(p, udp=True, tcp=False) for p in range(base, base + n)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"SIP workers not listening after {timeout_s:.0f} s:\n" + server.log_tail())


async def wait_all_healthy(servers: list[ServerProcess]) -> None:
    await asyncio.gather(*(wait_healthy(s, BOOT_TIMEOUT_S) for s in servers))


def start_layout(
    layout: Layout,
    args: argparse.Namespace,
    work: Path,
    shared: Path,
    db_url: str,
    redis_url: str | None,
    procs: Processes,
) -> tuple[list[str], int]:
    """Start the configuration's processes; returns the web URLs the load goes to and
    Kamailio's SIP port."""
    env = server_env(args, work, shared)
    if redis_url is not None:
        env["HOTLINE__REDIS__URL"] = redis_url
        env["HOTLINE__REDIS__PREFIX"] = f"bench-{layout.name}-{uuid.uuid4().hex[:6]}"

    def server(name: str, roles: str | None) -> ServerProcess:
        s = ServerProcess(
            work,
            port=free_port(),
            database_url=db_url,
            extra_env=env,
            log_name=f"{name}.log",
            serve_args=("--role", roles) if roles else (),
        )
        procs.servers.append(s)
        s.start()
        return s

    # the process with the call centre first: it migrates the fresh database and builds the
    # prompts while nothing else competes for the CPU
    sip = server("sip" if layout.webs else "all", "web,sip" if layout.webs else None)
    asyncio.run(wait_all_healthy([sip]))
    wait_sip_workers(sip, env, BOOT_TIMEOUT_S)
    webs = [sip]
    if layout.webs:
        webs = [server(f"web{i + 1}", "web") for i in range(layout.webs)]
        worker = server("worker", "worker")
        asyncio.run(wait_all_healthy([*webs, worker]))
    tel = load_settings(
        REPO_ROOT / "config.toml", environ={**env, "HOTLINE__DATABASE__URL": db_url}
    ).telephony
    procs.kamailio = start_kamailio(tel, work / "kamailio", children=args.kamailio_children)
    procs.remember_children()
    return [s.url for s in webs], tel.port


# -- load --------------------------------------------------------------------------------------
def sms_texts(corpus_path: Path | None) -> list[str]:
    """Short citizen texts (a subject, or the start of a message) for the MO messages."""
    corpus = load_corpus(corpus_path)
    texts = [(subject or detail)[:140] for subject, detail in corpus[:5000]]
    return [t for t in texts if t.strip()] or [
        "小区停水三天了，请尽快处理",
        "路灯不亮，晚上出行很危险",
    ]


async def run_sms(
    urls: list[str], clients: int, duration_s: float, texts: list[str], timeout_s: float
) -> SmsResult:
    """Closed loop of Kannel-style MO deliveries (GET get-url), client i → urls[i % n]."""
    result = SmsResult()
    perf = time.perf_counter

    async def client(session: aiohttp.ClientSession, base: str, deadline: float) -> None:
        while perf() < deadline:
            i = next(SMS_SENDERS)
            msg_id = str(uuid.uuid4())
            query = (
                f"from={SMS_PREFIX}{i:08d}&to={SERVICE_NUMBER}"
                f"&text={quote(texts[i % len(texts)], safe='')}&charset=UTF-8&coding=2"
                f"&id={msg_id}&token={GATEWAY_TOKEN}"
            )
            t0 = perf()
            try:
                async with session.get(f"{base}{MO_PATH}?{query}") as resp:
                    raw = await resp.read()
                    status, handled = resp.status, resp.headers.get("X-Hotline-Result", "")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                kind = type(exc).__name__
                result.outcomes[kind] += 1
                result.error_examples.setdefault(kind, str(exc)[:300])
                await asyncio.sleep(0.05)
                continue
            latency = (perf() - t0) * 1000.0
            if status == 200 and handled == "new":
                result.outcomes["new"] += 1
                result.latencies_ms.append(latency)
                result.accepted_ids.append(msg_id)
            else:
                kind = f"{status}-{handled or '?'}"
                result.outcomes[kind] += 1
                result.error_examples.setdefault(kind, raw.decode("utf-8", "replace")[:300])

    async with make_session(clients, timeout_s) as session:
        start = perf()
        deadline = start + duration_s
        await asyncio.gather(
            *(client(session, urls[i % len(urls)], deadline) for i in range(clients))
        )
        result.elapsed_s = perf() - start
    return result


async def run_web(
    urls: list[str], args: argparse.Namespace, bodies: list[Any], duration_s: float
) -> list[LoadResult]:
    """The web clients split over the web processes (client i → urls[i % n])."""
    share = [len(range(i, args.clients, len(urls))) for i in range(len(urls))]
    return list(
        await asyncio.gather(
            *(
                run_load(
                    url,
                    clients=n,
                    duration_s=duration_s,
                    bodies=bodies[k :: len(urls)] or bodies,
                    timeout_s=args.timeout,
                )
                for k, (url, n) in enumerate(zip(urls, share, strict=True))
                if n
            )
        )
    )


def start_calls(args: argparse.Namespace, work: Path, front: int) -> SippProcess | None:
    n = int(args.sip_rate * args.duration)
    if n <= 0:
        return None
    pcap = write_rtp_pcap(
        work / "caller.pcap", duration_s=args.sip_hold + 1, dtmf=[(1.0, "1"), (2.5, "1")]
    )
    return start_sipp(
        "caller_call",
        work / "sipp",
        ("127.0.0.1", front),
        calls=n,
        rate=args.sip_rate,
        pcap=pcap,
        values={"hold_ms": int(args.sip_hold * 1000)},
        keys={"caller": "13800009999"},
        timeout_s=args.duration + args.sip_hold * 4 + 120,
    )


# -- reporting and the store check -------------------------------------------------------------
def web_summary(results: list[LoadResult]) -> dict[str, Any]:
    lat = sorted(x for r in results for x in r.accepted_latencies())
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for r in results:
        errors.update(r.error_breakdown)
        examples = {**r.error_examples, **examples}
    elapsed = max((r.elapsed_s for r in results), default=0.0) or 1.0
    accepted = sum(len(r.accepted) for r in results)
    return {
        "requests": sum(len(r.outcomes) for r in results),
        "accepted": accepted,
        "per_s": round(accepted / elapsed, 1),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "errors": sum(errors.values()),
        "error_breakdown": dict(errors.most_common()),
        "error_examples": {k: v[:160] for k, v in examples.items()},
        "per_process": [len(r.accepted) for r in results],
    }


def sms_summary(r: SmsResult) -> dict[str, Any]:
    lat = sorted(r.latencies_ms)
    errors = {k: v for k, v in r.outcomes.items() if k != "new"}
    return {
        "requests": sum(r.outcomes.values()),
        "accepted": len(r.accepted_ids),
        "per_s": round(len(r.accepted_ids) / (r.elapsed_s or 1.0), 1),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "errors": sum(errors.values()),
        "error_breakdown": errors,
        "error_examples": {k: v[:160] for k, v in r.error_examples.items()},
    }


def sip_summary(r: SippResult | None, offered: int, rate: float) -> dict[str, Any]:
    if r is None:
        return {"offered": 0}
    return {
        "offered": offered,
        "completed": r.successful,
        "failed": r.failed + max(0, offered - r.successful - r.failed),
        "rate_per_s": rate,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
    }


def check_store(
    db_url: str, numbers: set[str], sms_ids: set[str]
) -> tuple[dict[str, int], list[str]]:
    """Every acknowledged request in the store: counts, and examples of what is missing."""
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            web = set(
                conn.execute(
                    sa.select(tickets.c.number).where(tickets.c.channel == "web")
                ).scalars()
            )
            sms = set(
                conn.execute(
                    sa.select(tickets.c.intake_key).where(tickets.c.channel == "sms")
                ).scalars()
            )
            call_rows = conn.execute(sa.select(sa.func.count()).select_from(calls)).scalar_one()
    finally:
        engine.dispose()
    missing_web = sorted(numbers - web)
    missing_sms = sorted(i for i in sms_ids if f"sms:gw:{i}" not in sms)
    counts = {
        "web_acknowledged": len(numbers),
        "web_orders_in_store": len(web),
        "web_missing": len(missing_web),
        "sms_acknowledged": len(sms_ids),
        "sms_orders_in_store": len(sms),
        "sms_missing": len(missing_sms),
        "call_records": int(call_rows),
    }
    return counts, (missing_web + missing_sms)[:10]


def fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def print_config(row: dict[str, Any]) -> None:
    w, m, c, v = row["web"], row["sms"], row["sip"], row["store"]
    print(f"== {row['config']} ({row['processes']}) ==")
    print(
        f"web   {w['accepted']} accepted, {w['per_s']}/s, p50 {fmt(w['p50_ms'])} ms, "
        f"p99 {fmt(w['p99_ms'])} ms, errors {w['errors']} {w['error_breakdown'] or ''}"
        f"  (per web process: {w['per_process']})"
    )
    print(
        f"sms   {m['accepted']} accepted, {m['per_s']}/s, p50 {fmt(m['p50_ms'])} ms, "
        f"p99 {fmt(m['p99_ms'])} ms, errors {m['errors']} {m['error_breakdown'] or ''}"
    )
    for kind, example in {**w["error_examples"], **m["error_examples"]}.items():
        print(f"      e.g. {kind}: {example}")
    print(
        f"sip   {c.get('completed', 0)}/{c['offered']} calls completed at "
        f"{c.get('rate_per_s', 0):g}/s, "
        f"failed {c.get('failed', 0)}, INVITE→200 p50 {fmt(c.get('p50_ms'))} ms, "
        f"p99 {fmt(c.get('p99_ms'))} ms"
    )
    print(
        f"store web {v['web_orders_in_store']} orders for {v['web_acknowledged']} 201s "
        f"(missing {v['web_missing']}); sms {v['sms_orders_in_store']} orders for "
        f"{v['sms_acknowledged']} accepted (missing {v['sms_missing']}); "
        f"{v['call_records']} call records" + (f"; e.g. {row['missing']}" if row["missing"] else "")
    )
    print(
        f"load  average {row['load_before']} before, {row['load_end']} at the end; server CPU "
        f"{row['server_cpu_s']} s; untriaged at the end {row['untriaged_end']} of "
        f"{row['orders_end']}",
        flush=True,
    )


def cpu_of(servers: list[ServerProcess]) -> float:
    return sum(s.cpu_seconds() or 0.0 for s in servers)


def run_layout(
    layout: Layout,
    args: argparse.Namespace,
    root: Path,
    db_url: str,
    redis_url: str | None,
    bodies: list[Any],
    texts: list[str],
) -> dict[str, Any]:
    work = root / layout.name
    work.mkdir()
    procs = Processes()
    try:
        print(f"starting {layout.name} …", flush=True)
        urls, front = start_layout(layout, args, work, root, db_url, redis_url, procs)

        async def both(duration_s: float) -> tuple[list[LoadResult], SmsResult]:
            install_fast_loop()
            web, sms = await asyncio.gather(
                run_web(urls, args, bodies, duration_s),
                run_sms(urls, args.sms_clients, duration_s, texts, args.timeout),
            )
            return web, sms

        # warm-up (not measured, but checked in the store too): first requests load code paths
        warm_web, warm_sms = asyncio.run(both(args.warmup)) if args.warmup > 0 else ([], None)
        time.sleep(1.0)  # Kamailio's OPTIONS rounds have marked every worker up by now
        load_before = round(os.getloadavg()[0], 2)
        cpu0 = cpu_of(procs.servers)
        procs.sipp = start_calls(args, work, front)
        web, sms = asyncio.run(both(args.duration))
        load_end = round(os.getloadavg()[0], 2)
        sip = None
        if procs.sipp is not None:
            sip = procs.sipp.wait(timeout_s=args.sip_hold * 4 + 120)
        time.sleep(SETTLE_S)
        cpu = cpu_of(procs.servers) - cpu0
        probe = BacklogProbe(db_url)
        try:
            backlog = probe.read()
        finally:
            probe.close()
        numbers = {n for r in (*warm_web, *web) for n, _ in r.accepted}
        sms_ids = set(sms.accepted_ids) | set(warm_sms.accepted_ids if warm_sms else ())
        counts, missing = check_store(db_url, numbers, sms_ids)
        processes = (
            f"{layout.webs} × web + web,sip ({args.sip_workers} SIP workers) + worker, "
            "PostgreSQL + Redis"
            if layout.webs
            else f"one process, all roles ({args.sip_workers} SIP workers), SQLite, no Redis"
        )
        row = {
            "config": layout.name,
            "processes": processes,
            "web": web_summary(web),
            "sms": sms_summary(sms),
            "sip": sip_summary(sip, int(args.sip_rate * args.duration), args.sip_rate),
            "store": counts,
            "missing": missing,
            "load_before": load_before,
            "load_end": load_end,
            "server_cpu_s": round(cpu, 1),
            "orders_end": backlog.orders,
            "untriaged_end": backlog.untriaged,
        }
        print_config(row)
        if sip is not None and (sip.failed or sip.returncode not in (0, None)):
            print(sip.summary()[:1500], file=sys.stderr)
        return row
    finally:
        procs.stop()


@contextlib.contextmanager
def backends(
    postgres: bool, diagnose: bool = False
) -> Iterator[tuple[PostgresServer | None, RedisServer | None]]:
    """One throwaway PostgreSQL and one Redis for every pg-* configuration. `diagnose`: the
    server logs lock waits longer than its deadlock_timeout (1 s) and statements longer than
    5 s, and its files (log included) are kept."""
    if not postgres:
        yield None, None
        return
    extra = {"log_lock_waits": "on", "log_min_duration_statement": "5000"} if diagnose else {}
    with PostgresServer(durable=True, settings=extra, keep=diagnose) as pg, RedisServer() as redis:
        if diagnose:
            print(f"PostgreSQL log: {pg.log_path}", file=sys.stderr, flush=True)
        yield pg, redis


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'config':<9} {'web/s':>6} {'p50':>5} {'p99':>6} {'err':>4} | {'sms/s':>6} {'p50':>5} "
        f"{'p99':>6} {'err':>4} | {'calls':>7} {'fail':>4} {'p50':>4} {'p99':>5} | "
        f"{'load':>5} {'missing':>7}"
    )
    lines = [head]
    for r in rows:
        w, m, c, v = r["web"], r["sms"], r["sip"], r["store"]
        lines.append(
            f"{r['config']:<9} {w['per_s']:>6} {fmt(w['p50_ms']):>5} {fmt(w['p99_ms']):>6} "
            f"{w['errors']:>4} | {m['per_s']:>6} {fmt(m['p50_ms']):>5} {fmt(m['p99_ms']):>6} "
            f"{m['errors']:>4} | {c.get('completed', 0):>3}/{c['offered']:<3} "
            f"{c.get('failed', 0):>4} {fmt(c.get('p50_ms')):>4} {fmt(c.get('p99_ms')):>5} | "
            f"{r['load_end']:>5} {v['web_missing'] + v['sms_missing']:>7}"
        )
    return "\n".join(lines)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of load per config")
    ap.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of web and SMS load before, unmeasured"
    )
    ap.add_argument("--webs", default="1,2,4", help="web process counts on PostgreSQL + Redis")
    ap.add_argument("--no-sqlite", action="store_true", help="skip the single-process default")
    ap.add_argument("--clients", type=int, default=32, help="web clients (closed loop), in all")
    ap.add_argument("--sms-clients", type=int, default=8, help="SMS gateway clients, in all")
    ap.add_argument("--sip-rate", type=float, default=1.0, help="new calls per second")
    ap.add_argument("--sip-hold", type=float, default=8.0, help="seconds each call lasts")
    ap.add_argument("--sip-workers", type=int, default=8, help="SIP worker processes")
    ap.add_argument("--kamailio-children", type=int, default=2)
    add_worker_rt_argument(ap)
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    ap.add_argument("--corpus", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "tipdm"
                    / "messages_unlabeled.csv")  # fmt: skip
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    ap.add_argument(
        "--pg-diagnostics",
        action="store_true",
        help="PostgreSQL logs lock waits > 1 s and statements > 5 s; its files are kept",
    )
    args = ap.parse_args()
    webs = [int(x) for x in args.webs.split(",") if x.strip()]
    layouts = ([] if args.no_sqlite else [Layout(0)]) + [Layout(n) for n in webs]
    signal.signal(signal.SIGTERM, _interrupt)
    bodies = prepare_bodies(args.corpus, 4096, args.seed)
    texts = sms_texts(args.corpus)
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    print(
        f"{started}: {len(layouts)} configurations × {args.duration:g} s (+{args.warmup:g} s "
        f"warm-up); web {args.clients} "
        f"clients, SMS {args.sms_clients} clients, SIP {args.sip_rate:g} calls/s held "
        f"{args.sip_hold:g} s; {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    with (
        bench_workdir(args.keep, prefix="hotline-cluster-") as root,
        backends(bool(webs), args.pg_diagnostics) as (
            pg,
            redis,
        ),
    ):
        for layout in layouts:
            if layout.webs:
                assert pg is not None and redis is not None
                db = f"cluster_web{layout.webs}"
                pg.create_database(db)
                db_url, redis_url = pg.url(db), redis.url
            else:
                db_url, redis_url = sqlite_url(root / "sqlite-1"), None
            t0 = time.monotonic()
            try:
                rows.append(run_layout(layout, args, root, db_url, redis_url, bodies, texts))
            except (RuntimeError, OSError, sa.exc.SQLAlchemyError) as exc:
                print(f"{layout.name} failed: {exc}", file=sys.stderr)
                failed.append(layout.name)
            print(
                f"({layout.name}: {time.monotonic() - t0:.0f} s from start to stopped)", flush=True
            )
    print()
    print(table(rows))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    summary = {
        "date": started,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "cpus": os.cpu_count(),
        "web_clients": args.clients,
        "sms_clients": args.sms_clients,
        "sip_rate": args.sip_rate,
        "sip_hold_s": args.sip_hold,
        "sip_workers": args.sip_workers,
        "configs": rows,
        "failed": failed,
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    missing = sum(r["store"]["web_missing"] + r["store"]["sms_missing"] for r in rows)
    return 0 if not failed and not missing else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: every process started here is stopped", file=sys.stderr)
        sys.exit(130)
