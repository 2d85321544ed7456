#!/usr/bin/env python3
"""SMS throughput through a real gateway: Kannel's fake SMSC → bearerbox → smsbox → the
platform (orders) → outbox → Kannel → fake SMSC (acknowledgements).

Starts a private `hotline serve` (temp SQLite, sms.backend = kannel, no telephony, no triage),
Kannel with its fake SMSC, and sends --messages Chinese MO messages from distinct numbers in
batches. Prints: MO messages per second that became orders (first MO sent → last order
stored), acknowledgements per second (→ last acknowledgement received by the fake SMSC), and
one JSON line.

    .venv/bin/python bench/sms.py --messages 500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from telephony.kannel import mo_url  # noqa: E402
from telephony.kannel_run import KannelPorts, start_kannel  # noqa: E402
from tests.hotline_server import Server, StaffClient  # noqa: E402
from tests.sms.fakesmsc import FakeSmsc  # noqa: E402
from tests.test_telephony_sip import add_user  # noqa: E402

TOKEN = "bench-gateway-token-0001"  # Kannel's proof on every MO and DLR call
TEXTS = [
    "小区停水三天了，请尽快处理",
    "路灯不亮，晚上出行很危险",
    "楼下饭店油烟扰民，多次反映未解决",
    "咨询办理居住证需要哪些材料",
    "公交车不按站点停靠，投诉",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--batch", type=int, default=25, help="MO lines per fakesmsc write")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sms-bench-"))
    ports = KannelPorts.free()
    db_url = f"sqlite:///{work / 'hotline.db'}"
    server = Server(
        work,
        db_url,
        env={
            "HOTLINE__TRIAGE__ENABLED": "false",
            "HOTLINE__TELEPHONY__ENABLED": "false",
            "HOTLINE__LOG__LEVEL": "WARNING",
            "HOTLINE__SMS__BACKEND": "kannel",
            "HOTLINE__SMS__GATEWAY_TOKEN": TOKEN,
            "HOTLINE__SMS__SENDSMS_URL": f"http://127.0.0.1:{ports.sendsms}/cgi-bin/sendsms",
            "HOTLINE__SMS__USERNAME": "hotline",
            "HOTLINE__SMS__PASSWORD": "hotline-sms",
            "HOTLINE__SMS__PER_NUMBER_PER_HOUR": "1000",
            "HOTLINE__SMS__POLL_INTERVAL_S": "0.2",
            "HOTLINE__SMS__QUIET_FROM": '"00:00"',
            "HOTLINE__SMS__QUIET_UNTIL": '"00:00"',
        },
    )
    kannel = phone = None
    try:
        server.wait_ready()
        add_user(db_url, "agent1", "agent")
        agent = StaffClient(server, "agent1", "test-password-1")
        kannel = start_kannel(
            work / "kannel", ports=ports, sms_url=mo_url(server.base, TOKEN), log_level=3
        )
        assert ports.fake_smsc is not None
        phone = FakeSmsc(ports.fake_smsc, work / "fakesmsc")
        phone.start(ready=kannel.smsc_online)
        msgs = [(f"139{i:08d}", "12345", TEXTS[i % len(TEXTS)]) for i in range(args.messages)]
        started = time.monotonic()
        for i in range(0, len(msgs), args.batch):
            phone.send_many(msgs[i : i + args.batch])
        orders_done = acks_done = None
        deadline = started + 600
        while time.monotonic() < deadline and (orders_done is None or acks_done is None):
            if orders_done is None:
                _, body = agent.get("/tickets?channel=sms&limit=1")
                if body["total"] >= args.messages:
                    orders_done = time.monotonic() - started
            if acks_done is None and len(phone.messages()) >= args.messages:
                acks_done = time.monotonic() - started
            time.sleep(0.1)
    finally:
        if phone is not None:
            phone.stop()
        if kannel is not None:
            kannel.stop()
        if server.proc.poll() is None:
            server.stop()
        server.kill()
    n = args.messages
    result = {
        "messages": n,
        "orders_s": round(orders_done, 2) if orders_done else None,
        "orders_per_s": round(n / orders_done, 1) if orders_done else None,
        "acks_s": round(acks_done, 2) if acks_done else None,
        "acks_per_s": round(n / acks_done, 1) if acks_done else None,
    }
    print(f"{n} MO messages → orders in {result['orders_s']} s ({result['orders_per_s']}/s)")
    print(f"acknowledgements received in {result['acks_s']} s ({result['acks_per_s']}/s)")
    print(json.dumps(result))
    return 0 if orders_done and acks_done else 1


if __name__ == "__main__":
    sys.exit(main())
