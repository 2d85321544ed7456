#!/usr/bin/env python3
"""SIP load benchmark: SIPp callers with RTP through Kamailio to a pool of SIP workers.

Starts a private `hotline serve` (temp SQLite, --workers SIP worker processes, no triage) and
a real Kamailio in front of the workers (configuration from telephony/kamailio.py), then for
each concurrency level C runs SIPp: 2·C calls at C/hold calls per second, at most C at once.
Each caller sends audio (PCMA) and keys: 1 (普通话) at 1 s, 1 (政策咨询) at 2.5 s, so it ends
up in the queue hearing music on hold — no agent answers — until it hangs up after --hold s.

Per level it prints: calls, failed, INVITE→200 p50/p99 (ms, SIPp's response-time trace,
whole milliseconds), and the machine's CPU use during the level (/proc/stat, all processes,
SIPp included). At the end: the highest level with zero failed calls, and one JSON line.

    bench/sip_load.sh                         # defaults: 110 workers × 2 callers, levels 50..200
    bench/sip_load.sh --workers 80 --callers-per-worker 4 --levels 100,200,300   # IVR-only

Everything runs on 127.0.0.1; processes started here are stopped by their PIDs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import add_worker_rt_argument, worker_rt_env

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotline.config import load_settings  # noqa: E402
from telephony.kamailio import start_kamailio  # noqa: E402
from tests.hotline_server import Server, StaffClient  # noqa: E402
from tests.ports import free_port, free_port_block  # noqa: E402
from tests.sip.pcap import write_rtp_pcap  # noqa: E402
from tests.sip.sipp import run_sipp  # noqa: E402
from tests.test_telephony_sip import PASSWORD, add_user  # noqa: E402


def cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def run_level(front: int, level: int, hold_s: float, work: Path) -> dict[str, Any]:
    calls = 2 * level
    pcap = write_rtp_pcap(
        work / f"caller-{level}.pcap", duration_s=hold_s + 1, dtmf=[(1.0, "1"), (2.5, "1")]
    )
    busy0, total0 = cpu_times()
    started = time.monotonic()
    result = run_sipp(
        "caller_call",
        work / f"level-{level}",
        ("127.0.0.1", front),
        calls=calls,
        rate=max(1.0, level / hold_s),
        limit=level,
        pcap=pcap,
        values={"hold_ms": int(hold_s * 1000)},
        keys={"caller": "13800009999"},
        timeout_s=hold_s * 4 + 120,
        wait_s=hold_s * 4 + 180,
    )
    busy1, total1 = cpu_times()
    return {
        "concurrency": level,
        "calls": calls,
        "successful": result.successful,
        "failed": result.failed + max(0, calls - result.successful - result.failed),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "cpu_percent": round(100 * (busy1 - busy0) / max(1, total1 - total0), 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workers", type=int, default=110)
    ap.add_argument(
        "--callers-per-worker",
        type=int,
        default=2,
        help="[telephony] callers_per_worker: 2 (default) keeps a slot per caller for an "
        "agent's leg; 4 for IVR-only traffic",
    )
    ap.add_argument("--levels", default="50,100,150,200")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds each call lasts")
    ap.add_argument("--kamailio-children", type=int, default=4)
    ap.add_argument(
        "--kamailio-rt",
        type=int,
        default=0,
        help="run Kamailio's processes on SCHED_RR at this priority (default 0: normal)",
    )
    add_worker_rt_argument(ap)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x]
    work = Path(tempfile.mkdtemp(prefix="sip-load-"))
    db_url = f"sqlite:///{work / 'hotline.db'}"
    front = free_port()
    base = free_port_block(args.workers)
    while front in range(base, base + args.workers):
        base = free_port_block(args.workers)
    env = {
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__LOG__LEVEL": "WARNING",
        "HOTLINE__TELEPHONY__WORKERS": str(args.workers),
        "HOTLINE__TELEPHONY__WORKER_BASE_PORT": str(base),
        "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": "3600",
        "HOTLINE__TELEPHONY__RTP_BASE_PORT": "20000",
        "HOTLINE__TELEPHONY__RTP_PORTS_PER_WORKER": "20",
        "HOTLINE__TELEPHONY__MAX_INVITES_PER_S": "1000",
        "HOTLINE__TELEPHONY__CALLERS_PER_WORKER": str(args.callers_per_worker),
        # SIPp on 127.0.0.1 stands for the carrier's trunk: every caller from one address
        "HOTLINE__TELEPHONY__KAMAILIO_TRUSTED": '["127.0.0.1"]',
        **worker_rt_env(args.worker_rt),
    }
    server = Server(work, db_url, env=env)
    tel = load_settings(
        REPO / "config.toml",
        environ={**env, "HOTLINE__TELEPHONY__PORT": str(front), "HOTLINE__DATABASE__URL": db_url},
    ).telephony
    kamailio = None
    rows: list[dict[str, Any]] = []
    try:
        print(
            f"starting hotline serve with {args.workers} SIP workers (real-time priority "
            f"{tel.realtime_priority or 'off'}) …",
            flush=True,
        )
        server.wait_ready()
        # until every worker has linked to the call centre (a worker that has not answers
        # 503, and one still starting answers late: the first level would measure start-up)
        add_user(db_url, "bench-super", "supervisor")
        supervisor = StaffClient(server, "bench-super", PASSWORD)
        deadline = time.monotonic() + 600
        linked = 0
        while time.monotonic() < deadline:
            linked = len(supervisor.get("/callcenter")[1]["workers"])
            if linked >= args.workers:
                break
            time.sleep(1)
        else:
            raise SystemExit(f"only {linked} of {args.workers} SIP workers linked in 600 s")
        kamailio = start_kamailio(tel, work / "kamailio", children=args.kamailio_children)
        if args.kamailio_rt:
            # Kamailio's processes (it forks them at start) at the same real-time priority
            group = os.popen(f"pgrep -s {kamailio.proc.pid}").read().split()
            for pid in group:
                subprocess.run(["chrt", "-a", "-r", "-p", str(args.kamailio_rt), pid], check=True)
            print(f"Kamailio's {len(group)} processes at real-time priority {args.kamailio_rt}")
        print(f"Kamailio on 127.0.0.1:{front} → workers on {base}..{base + args.workers - 1}")
        print(f"{'conc.':>6} {'calls':>6} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7} {'CPU %':>6}")
        for level in levels:
            row = run_level(front, level, args.hold, work)
            rows.append(row)
            print(
                f"{row['concurrency']:>6} {row['calls']:>6} {row['failed']:>6} "
                f"{row['p50_ms'] if row['p50_ms'] is not None else '-':>7} "
                f"{row['p99_ms'] if row['p99_ms'] is not None else '-':>7} "
                f"{row['cpu_percent']:>6}",
                flush=True,
            )
            time.sleep(3)  # let the last calls' records settle
    finally:
        if kamailio is not None:
            kamailio.stop()
        if server.proc.poll() is None:
            server.stop()
        server.kill()
    clean = [r["concurrency"] for r in rows if r["failed"] == 0 and r["successful"] == r["calls"]]
    best = max(clean, default=0)
    print(f"highest concurrency with zero failed calls: {best}")
    summary = {
        "workers": args.workers,
        "callers_per_worker": args.callers_per_worker,
        "hold_s": args.hold,
        "levels": rows,
        "best": best,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
