"""SMS through a real gateway: Kannel (bearerbox + smsbox) with its fake SMSC in front of the
real `hotline serve`, on the configuration `hotline telephony kannel-config` writes (the gateway
token in its get-url). A Chinese message becomes an order and the acknowledgement with its
number reaches the phone; the 回访 survey closes the loop; with Kannel stopped while notices are
due, every message arrives exactly once after it is back; acknowledgements to one phone are
folded into one text per window."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telephony.kannel_run import KannelPorts, KannelProcess
from tests.hotline_server import HOTLINE, Server, StaffClient
from tests.sms.fakesmsc import FakeSmsc, Sms
from tests.test_telephony_sip import add_user
from tests.waiting import wait_until_sync

SERVICE = "12345"
PASSWORD = "test-password-1"
WAIT_S = 60.0
GATEWAY_TOKEN = "kannel-test-token-0001"  # Kannel proves itself with it (backend = "kannel")


@dataclass
class Gateway:
    server: Server
    kannel: KannelProcess
    phone: FakeSmsc
    agent: StaffClient

    def wait_sms(self, to: str, needle: str, count: int = 1) -> list[Sms]:
        return self.phone.wait_sms(
            lambda m: m.receiver == to and needle in m.text, count=count, timeout_s=WAIT_S
        )

    def orders_of(self, phone: str) -> list[dict[str, Any]]:
        _, body = self.agent.get(f"/tickets?phone={phone}")
        return list(body["items"])


def kannel_config(out: Path, env: dict[str, str], ports: KannelPorts, platform: str) -> Path:
    """`hotline telephony kannel-config` with the platform's settings; the path it wrote."""
    assert ports.fake_smsc is not None
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
    environ.update(env)
    done = subprocess.run(
        [
            str(HOTLINE),
            "telephony",
            "kannel-config",
            "--out",
            str(out),
            "--platform-url",
            platform,
            "--fake-smsc-port",
            str(ports.fake_smsc),
            "--admin-port",
            str(ports.admin),
            "--box-port",
            str(ports.box),
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    conf = Path(done.stdout.strip())
    assert f"&token={GATEWAY_TOKEN}" in conf.read_text("utf-8")
    return conf


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("sms")
    ports = KannelPorts.free()
    db_url = f"sqlite:///{tmp / 'hotline.db'}"
    env = {
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__TELEPHONY__ENABLED": "false",
        "HOTLINE__SERVER__PUBLIC_URL": "http://127.0.0.1:{http_port}",
        "HOTLINE__SMS__BACKEND": "kannel",
        "HOTLINE__SMS__GATEWAY_TOKEN": GATEWAY_TOKEN,
        "HOTLINE__SMS__SENDSMS_URL": f"http://127.0.0.1:{ports.sendsms}/cgi-bin/sendsms",
        "HOTLINE__SMS__USERNAME": "hotline",
        "HOTLINE__SMS__PASSWORD": "hotline-sms",
        "HOTLINE__SMS__SENDER": f'"{SERVICE}"',
        "HOTLINE__SMS__RETRY_BASE_S": "1",
        "HOTLINE__SMS__RETRY_MAX_S": "2",
        "HOTLINE__SMS__POLL_INTERVAL_S": "0.2",
        # acknowledgements to one number: one text per 10 s (the folding test waits it out)
        "HOTLINE__SMS__ACK_WINDOW_S": "10",
        # the tests run at any hour: no quiet hours
        "HOTLINE__SMS__QUIET_FROM": '"00:00"',
        "HOTLINE__SMS__QUIET_UNTIL": '"00:00"',
    }
    server = Server(tmp, db_url, env=env)
    kannel: KannelProcess | None = None
    phone: FakeSmsc | None = None
    try:
        server.wait_ready()
        add_user(db_url, "agent1", "agent")
        # the operator's way: kannel.conf from the platform's own settings (token included)
        assert ports.fake_smsc is not None
        conf = kannel_config(tmp / "kannel", env, ports, server.base)
        kannel = KannelProcess(
            conf, tmp / "kannel", ports, username="hotline", password="hotline-sms", log_level=1
        )
        kannel.start()
        kannel.wait_listening(ports.fake_smsc)
        phone = FakeSmsc(ports.fake_smsc, tmp / "fakesmsc")
        phone.start(ready=kannel.smsc_online)
        yield Gateway(server, kannel, phone, StaffClient(server, "agent1", PASSWORD))
    finally:
        if phone is not None:
            phone.stop()
        if kannel is not None:
            kannel.stop()
        code = server.stop() if server.proc.poll() is None else server.proc.returncode
        output = server.output()
        server.kill()
        assert code == 0, output
        assert "Traceback" not in output, output


def test_chinese_sms_becomes_an_order_and_the_ack_carries_its_number(gateway: Gateway) -> None:
    citizen = "13800000301"
    gateway.phone.send_mo(citizen, SERVICE, "呼和浩特市新城区某小区停水三天了，请尽快处理")
    (ack,) = gateway.wait_sms(citizen, "已受理")
    (order,) = gateway.orders_of(citizen)
    assert order["channel"] == "sms"
    assert order["content"] == "呼和浩特市新城区某小区停水三天了，请尽快处理"
    assert order["number"] in ack.text
    assert ack.sender == SERVICE
    # the fake SMSC reports delivery; Kannel calls the dlr-url with our outbox id
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        _, box = gateway.agent.get(f"/sms/outbox?recipient={citizen}")
        if box["items"] and box["items"][0]["status"] == "delivered":
            break
        time.sleep(0.2)
    assert box["items"][0]["status"] == "delivered", box
    assert box["items"][0]["delivered_at"]


def test_survey_answer_by_sms_closes_the_loop(gateway: Gateway) -> None:
    citizen = "13800000302"
    gateway.phone.send_mo(citizen, SERVICE, "请问办理居住证需要什么材料")
    gateway.wait_sms(citizen, "已受理")
    (order,) = gateway.orders_of(citizen)
    status, answered = gateway.agent.send(
        "POST",
        f"/tickets/{order['id']}/answer",
        {"version": order["version"], "text": "请携带身份证和居住证明到社区派出所办理。"},
    )
    assert status == 200, answered
    gateway.wait_sms(citizen, "已答复")
    gateway.wait_sms(citizen, "回复1满意")
    gateway.phone.send_mo(citizen, SERVICE, "3")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        _, t = gateway.agent.get(f"/tickets/{order['id']}")
        if t["status"] == "reopened":
            break
        time.sleep(0.2)
    assert (t["status"], t["satisfaction"]) == ("reopened", "unsatisfied")
    gateway.wait_sms(citizen, "感谢您的评价")
    # Kannel may deliver the same message to the platform twice: still one order
    assert len(gateway.orders_of(citizen)) == 1


def test_notices_due_while_kannel_is_down_arrive_once_when_it_is_back(
    gateway: Gateway,
) -> None:
    citizens = [f"1380000031{i}" for i in range(4)]
    gateway.phone.stop()
    gateway.kannel.stop()
    numbers = {}
    for c in citizens:
        status, _, made = gateway.server.request(
            "POST", "/api/v1/requests", {"content": "路灯不亮，晚上很危险", "phone": c}
        )
        assert status == 201, made
        numbers[c] = made["number"]

    def attempted() -> bool:
        _, box = gateway.agent.get("/sms/outbox?status=queued")
        mine = [m for m in box["items"] if m["recipient"] in citizens]
        return len(mine) == len(citizens) and all(m["attempts"] >= 1 for m in mine)

    deadline = time.monotonic() + WAIT_S
    while not attempted() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert attempted()  # the sender tried, failed and keeps them
    gateway.kannel.start()
    gateway.phone.start(ready=gateway.kannel.smsc_online)
    for c in citizens:
        gateway.wait_sms(c, numbers[c])
    time.sleep(3)  # time enough for any duplicate to show up
    for c in citizens:
        assert len([m for m in gateway.phone.messages() if m.receiver == c]) == 1
    _, box = gateway.agent.get("/sms/outbox")
    states = {m["status"] for m in box["items"] if m["recipient"] in citizens}
    assert states <= {"sent", "delivered"}


def test_web_orders_naming_one_phone_reach_it_in_one_text_per_window(gateway: Gateway) -> None:
    """Issue 10 item 3 through the real gateway: five web submissions naming one phone (well
    within the 10-second window) make at most two texts that carry all five numbers."""
    citizen = "13800000320"
    numbers = []
    for i in range(5):
        status, _, made = gateway.server.request(
            "POST", "/api/v1/requests", {"content": f"第{i}件：路面塌陷", "phone": citizen}
        )
        assert status == 201, made
        numbers.append(made["number"])

    def every_number_arrived() -> list[str]:
        texts = [m.text for m in gateway.phone.messages() if m.receiver == citizen]
        return texts if all(any(n in t for t in texts) for n in numbers) else []

    texts = wait_until_sync(every_number_arrived, timeout=WAIT_S)
    assert len(texts) <= 2, texts
    _, box = gateway.agent.get(f"/sms/outbox?recipient={citizen}")
    assert len(box["items"]) == 5
    assert sum(m["status"] == "folded" for m in box["items"]) >= 3
