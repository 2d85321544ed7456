"""Telephony end to end: the real `hotline serve` with its pjsua2 SIP worker, called by SIPp with
RTP and RFC 4733 keys: menu paths, status readout, queue → agent (a SIPp phone), queue timeout →
voicemail → work order with the recording, hang-up in the queue, outbound survey, bad input,
and a worker killed in the middle of a voicemail."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.hotline_server import HOTLINE, Server, StaffClient
from tests.ports import free_port
from tests.sip.pcap import write_rtp_pcap
from tests.sip.sipp import SippResult, run_sipp, sipp_server, start_sipp

PASSWORD = "test-password-1"
QUEUE_TIMEOUT_S = 8
WAIT_S = 90  # upper bound for polling; never asserted as a speed


def keys(*presses: tuple[float, str]) -> list[tuple[float, str]]:
    return list(presses)


MENU_COMPLAINT = keys((1.0, "1"), (2.5, "2"))  # 普通话, then 投诉举报


@pytest.fixture(scope="module")
def citizen_port() -> int:
    """Where the SIPp "citizen phone" listens: the trunk of the survey calls points here."""
    return free_port()


def add_user(db_url: str, username: str, role: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
    env["HOTLINE__DATABASE__URL"] = db_url
    argv = ["user", "add", "--username", username, "--password", PASSWORD, "--role", role]
    subprocess.run([str(HOTLINE), *argv], env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def hotline(tmp_path_factory: pytest.TempPathFactory, citizen_port: int) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("sip")
    db_url = f"sqlite:///{tmp / 'hotline.db'}"
    server = Server(
        tmp,
        db_url,
        env={
            "HOTLINE__TRIAGE__ENABLED": "false",
            "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": str(QUEUE_TIMEOUT_S),
            "HOTLINE__TELEPHONY__ANNOUNCE_EVERY_S": "4",
            "HOTLINE__TELEPHONY__RING_AGENT_S": "6",
            "HOTLINE__TELEPHONY__WRAPUP_S": "0",
            "HOTLINE__TELEPHONY__DIGIT_TIMEOUT_S": "3",
            "HOTLINE__TELEPHONY__VOICEMAIL_MAX_S": "20",
            "HOTLINE__TELEPHONY__TRUNK": f'"sip:{{number}}@127.0.0.1:{citizen_port}"',
            "HOTLINE__TELEPHONY__MAX_INVITES_PER_S": "20",
        },
    )
    try:
        server.wait_ready(sip_workers=1)
        add_user(db_url, "agent1", "agent")
        add_user(db_url, "super1", "supervisor")
        yield server
    finally:
        code = server.stop() if server.proc.poll() is None else server.proc.returncode
        output = server.output()
        server.kill()
        assert code == 0, output
        assert "Traceback" not in output, output


@pytest.fixture
def supervisor(hotline: Server) -> StaffClient:
    return StaffClient(hotline, "super1", PASSWORD)


@pytest.fixture
def agent(hotline: Server) -> Iterator[StaffClient]:
    client = StaffClient(hotline, "agent1", PASSWORD)
    yield client
    client.send("DELETE", "/agent/session")


@pytest.fixture
def call(hotline: Server, tmp_path: Path) -> Callable[..., SippResult]:
    """Place one call with SIPp: keys pressed at times, hang up after hold_s unless the
    hotline hangs up first."""
    n = [0]

    def place(
        caller: str,
        presses: list[tuple[float, str]],
        hold_s: float,
        *,
        transport: str = "u1",
        service: str = "12345",
    ) -> SippResult:
        n[0] += 1
        work = tmp_path / f"call{n[0]}"
        work.mkdir()
        pcap = write_rtp_pcap(work / "audio.pcap", duration_s=hold_s + 1, dtmf=presses)
        return run_sipp(
            "caller_call",
            work,
            ("127.0.0.1", hotline.sip_port),
            calls=1,
            pcap=pcap,
            values={"hold_ms": int(hold_s * 1000)},
            keys={"caller": caller},
            transport=transport,
            service=service,
            timeout_s=hold_s + 60,
            wait_s=hold_s + 90,
        )

    return place


def wait_for(probe: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


def calls_of(client: StaffClient, caller: str) -> list[dict[str, Any]]:
    status, body = client.get(f"/calls?caller={caller}")
    assert status == 200, body
    return [c for c in body["items"] if c["ended_at"]]


def rms(wav: Path | bytes) -> float:
    with wave.open(str(wav) if isinstance(wav, Path) else io.BytesIO(wav), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    return float(np.sqrt((pcm**2).mean())) if pcm.size else 0.0


def test_menu_1_then_2_queue_timeout_leaves_voicemail_order_with_recording(
    hotline: Server, supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    caller = "13800000101"
    result = call(caller, MENU_COMPLAINT, hold_s=QUEUE_TIMEOUT_S + 25)
    assert result.successful == 1, result.summary()
    record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
    assert record["outcome"] == "voicemail"
    assert record["kind"] == "complaint"
    assert record["language"] == "cmn"
    assert record["ivr_path"].startswith("lang:cmn>menu:2>queue>timeout>voicemail")
    assert record["queued_at"] and record["ticket_id"]
    # the contract: the voicemail order is listed by channel=phone with the caller's number
    status, listing = supervisor.get("/tickets?channel=phone")
    assert status == 200
    orders = [t for t in listing["items"] if t["caller"]["phone"] == caller]
    assert len(orders) == 1, listing
    order = orders[0]
    assert order["id"] == record["ticket_id"]
    assert order["kind"] == "complaint"
    status, full = supervisor.get(f"/tickets/{order['id']}")
    (attachment,) = full["attachments"]
    assert attachment["type"] == "recording"
    assert attachment["seconds"] > 1
    assert "path" not in attachment  # the server's file path is never shown
    assert (
        rms(supervisor.download(attachment["url"])) > 500
    )  # the caller's tone was recorded, not silence
    assert not list(hotline.spool.glob("voicemail/*.json"))  # spool cleared


def test_caller_hanging_up_in_queue_is_recorded_as_abandoned(
    supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    caller = "13800000102"
    result = call(caller, MENU_COMPLAINT, hold_s=6)  # queued at ~3 s, gone at 6 s
    assert result.successful == 1, result.summary()
    record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
    assert record["outcome"] == "abandoned"
    assert record["ticket_id"] is None
    assert record["wait_s"] is not None and record["wait_s"] > 0
    status, stats = supervisor.get("/calls/stats")
    assert status == 200
    assert stats["abandoned"] >= 1


def test_status_check_by_number_reads_the_order_state_to_its_caller(
    hotline: Server, supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    caller = "13800000103"
    status, _, made = hotline.request(
        "POST", "/api/v1/requests", {"content": "小区供暖温度不达标", "phone": caller}
    )
    assert status == 201, made
    number = made["number"]
    presses = keys((1.0, "1"), (2.5, "3"))
    presses += [(4.0 + 0.35 * i, d) for i, d in enumerate(number)]
    presses.append((4.0 + 0.35 * len(number), "#"))
    result = call(caller, presses, hold_s=presses[-1][0] + 8)
    assert result.successful == 1, result.summary()
    record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
    assert "menu:3>status:new" in record["ivr_path"], record
    assert record["outcome"] == "ivr"


def test_status_check_refuses_an_order_of_another_phone(
    hotline: Server, supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    status, _, made = hotline.request(
        "POST", "/api/v1/requests", {"content": "路灯不亮", "phone": "13800000999"}
    )
    assert status == 201
    caller = "13800000104"
    presses = keys((1.0, "1"), (2.5, "3"))
    presses += [(4.0 + 0.35 * i, d) for i, d in enumerate(made["number"])]
    presses.append((4.0 + 0.35 * len(made["number"]), "#"))
    call(caller, presses, hold_s=presses[-1][0] + 6)
    record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
    assert "status:unknown" in record["ivr_path"]


def test_queue_rings_the_available_agent_and_bridges_with_recording(
    hotline: Server,
    agent: StaffClient,
    supervisor: StaffClient,
    call: Callable[..., SippResult],
    tmp_path: Path,
) -> None:
    phone_port = free_port()
    agent_audio = write_rtp_pcap(tmp_path / "agent.pcap", duration_s=20, tone_hz=660)
    with sipp_server(
        "uas_answer",
        tmp_path / "agent-phone",
        port=phone_port,
        pcap=agent_audio,
        values={"bye_timeout_ms": 60000},
    ) as phone:
        status, body = agent.send(
            "POST", "/agent/session", {"uri": f"sip:agent1@127.0.0.1:{phone_port}"}
        )
        assert status == 201, body
        assert body["state"] == "paused"  # signed in, not yet ready
        status, body = agent.send("PUT", "/agent/state", {"state": "available"})
        assert (status, body["state"]) == (200, "available")
        caller = "13800000105"
        result = call(caller, MENU_COMPLAINT, hold_s=14)
        assert result.successful == 1, result.summary()
        record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
        phone_result = phone.stop()
    assert phone_result.successful == 1, phone_result.summary()
    assert record["outcome"] == "answered"
    assert record["agent"] == "agent1"
    assert record["ivr_path"].endswith("queue>agent:agent1")
    assert record["talk_s"] > 0
    recording = hotline.recordings / f"{record['id']}.wav"
    assert recording.is_file()
    assert rms(recording) > 500
    status, snap = supervisor.get("/callcenter")
    me = next(a for a in snap["agents"] if a["username"] == "agent1")
    assert me["answered"] == 1
    assert me["state"] == "available"  # wrap-up is 0 s in this test's config
    status, stats = supervisor.get("/calls/stats")
    assert stats["answered"] >= 1 and stats["answered_within"] >= 1


def test_survey_call_goes_to_the_orders_phone_and_records_unsatisfied(
    agent: StaffClient, supervisor: StaffClient, citizen_port: int, tmp_path: Path
) -> None:
    phone = "13800000106"
    status, made = agent.send(
        "POST",
        "/tickets",
        {
            "channel": "phone",
            "content": "咨询办理居住证需要的材料",
            "phone": phone,
            "kind": "consult",
        },
    )
    assert status == 201, made
    status, answered = agent.send(
        "POST",
        f"/tickets/{made['id']}/answer",
        {"version": made["version"], "text": "请携带身份证和居住证明到派出所办理。"},
    )
    assert status == 200, answered
    # pjsua offers telephone-event as payload type 120; the phone answers and sends with it
    press_3 = write_rtp_pcap(
        tmp_path / "press3.pcap", duration_s=20, dtmf=[(2.0, "3")], event_pt=120
    )
    with sipp_server(
        "uas_answer",
        tmp_path / "citizen-phone",
        port=citizen_port,
        pcap=press_3,
        values={"bye_timeout_ms": 60000, "event_pt": 120},
    ) as citizen:
        status, body = agent.send("POST", f"/tickets/{made['id']}/call", {"purpose": "survey"})
        assert status == 202, body

        def reopened() -> Any:
            _, t = agent.get(f"/tickets/{made['id']}")
            return t if t["status"] == "reopened" else None

        ticket = wait_for(reopened, "the survey answer on the order")
        result = citizen.stop()
    assert result.successful == 1, result.summary()
    assert ticket["satisfaction"] == "unsatisfied"

    def ended() -> list[dict[str, Any]]:
        _, calls = supervisor.get(f"/calls?ticket_id={made['id']}")
        return [c for c in calls["items"] if c["ended_at"]]

    (survey,) = wait_for(ended, "the survey call's record to close")
    # the call went to the order's own number, through the trunk
    assert (survey["direction"], survey["purpose"], survey["dialled"]) == ("out", "survey", phone)
    assert survey["outcome"] == "survey"
    assert survey["answered_at"] and survey["talk_s"] > 0


def test_outbound_call_takes_no_number_from_the_request(agent: StaffClient) -> None:
    status, made = agent.send("POST", "/tickets", {"channel": "phone", "content": "测试外呼"})
    assert status == 201
    status, body = agent.send(
        "POST", f"/tickets/{made['id']}/call", {"purpose": "survey", "number": "13900000000"}
    )
    assert status == 422, body  # unknown field: there is no way to name a number
    status, body = agent.send("POST", f"/tickets/{made['id']}/call", {"purpose": "survey"})
    assert status == 409, body  # no phone on this order (and not answered): nothing is dialled
    status, body = agent.send("POST", f"/tickets/{made['id']}/call", {"purpose": "callback"})
    assert status == 409, body


@pytest.mark.parametrize(
    ("service", "media", "rtpmap", "expect"),
    [
        ("99999", "8", "a=rtpmap:8 PCMA/8000", 404),  # a number this hotline does not answer
        ("12345", "96", "a=rtpmap:96 opus/48000/2", 488),  # no codec in common
    ],
    ids=["unknown-number", "unknown-codec"],
)
def test_unacceptable_invites_get_precise_sip_answers(
    hotline: Server, tmp_path: Path, service: str, media: str, rtpmap: str, expect: int
) -> None:
    result = run_sipp(
        "caller_refused",
        tmp_path,
        ("127.0.0.1", hotline.sip_port),
        calls=1,
        service=service,
        keys={"caller": "13800000107"},
        values={"media": media, "rtpmap": rtpmap, "expect": expect},
        timeout_s=30,
    )
    assert result.successful == 1, result.summary()


def test_malformed_sip_is_ignored_and_calls_still_work(
    hotline: Server, supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    junk = [
        b"\x00\xff garbage \r\n\r\n",
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n",
        b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:12345@127.0.0.1>\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 99999\r\n\r\nv=0",  # no Call-ID, lying length
        b"X" * 60000,
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for datagram in junk:
            s.sendto(datagram, ("127.0.0.1", hotline.sip_port))
    with socket.create_connection(("127.0.0.1", hotline.sip_port)) as t:
        t.sendall(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -5\r\n\r\n" + b"\xfe" * 5000)
    caller = "13800000108"
    result = call(caller, keys((1.0, "1")), hold_s=3)
    assert result.successful == 1, result.summary()
    wait_for(lambda: calls_of(supervisor, caller), "the call after the junk")
    assert "exited with" not in hotline.output()  # the worker survived


def test_call_over_tcp(supervisor: StaffClient, call: Callable[..., SippResult]) -> None:
    caller = "13800000109"
    result = call(caller, keys((1.0, "1")), hold_s=4, transport="t1")
    assert result.successful == 1, result.summary()
    record = wait_for(lambda: calls_of(supervisor, caller), "the TCP call record")[0]
    assert record["ivr_path"].startswith("lang:cmn")


FLOOD_RATE = 100  # INVITEs per second from one address; the hotline fixture allows 20


def try_call(hotline: Server, workdir: Path, caller: str, local_ip: str) -> SippResult:
    """One call from local_ip that takes whatever final answer the hotline gives (logged by
    the scenario as answered / busy / unavailable); no answer at all fails it."""
    return run_sipp(
        "caller_try",
        workdir,
        ("127.0.0.1", hotline.sip_port),
        calls=1,
        local_ip=local_ip,
        values={"hold_ms": 1000},
        keys={"caller": caller},
        timeout_s=120,
        wait_s=150,
    )


def test_invite_flood_is_refused_without_hanging_the_worker(
    hotline: Server, supervisor: StaffClient, call: Callable[..., SippResult], tmp_path: Path
) -> None:
    """One address floods the worker with INVITEs; while the flood goes on, a caller from
    another address gets a final answer every time and is answered once the flooder's
    admitted calls are over; every flood INVITE gets a final answer (200 within the rate,
    486/503 beyond it), the worker is never restarted, the flood is logged in summaries, not
    a line per INVITE, and the flooder's address is let in again once the flood is over.
    Conditions only: how long anything takes is never asserted."""
    before = hotline.output()
    pcap = write_rtp_pcap(tmp_path / "flood.pcap", duration_s=3)
    flood = start_sipp(
        "caller_call",
        tmp_path / "flood",
        ("127.0.0.1", hotline.sip_port),
        calls=FLOOD_RATE * WAIT_S,  # outlasts the caller's tries below; stopped after them
        rate=FLOOD_RATE,
        pcap=pcap,
        values={"hold_ms": 2000},
        keys={"caller": "13800000110"},
        timeout_s=WAIT_S * 3,
    )
    tries: list[SippResult] = []
    try:
        wait_for(
            lambda: "INVITE flood from 127.0.0.1" in hotline.output()[len(before) :],
            "the worker to refuse the flood",
        )

        def answered_from_elsewhere() -> bool:
            result = try_call(hotline, tmp_path / f"try{len(tries)}", "13800000116", "127.0.0.2")
            tries.append(result)
            assert result.successful == 1, result.summary()  # a final answer, never silence
            assert not result.logged("unavailable"), result.summary()  # not taken for the flood
            return bool(result.logged("answered"))

        wait_for(answered_from_elsewhere, "a caller from another address answered in the flood")
        assert flood.running(), "the flood ended before the caller was answered"
    finally:
        flooded = flood.stop(grace_s=60)  # no new INVITEs; the calls under way finish
    after = hotline.output()[len(before) :]
    assert "exited with" not in after, after  # the worker was never restarted
    assert "Assertion" not in after, after
    assert flooded.returncode in (0, 1), flooded.summary()  # SIPp ended by itself
    # every flood INVITE got a final answer: no timeouts, the calls that failed were refused
    # (486 busy, 503 over the rate), and none got 481 (a worker that lost its calls). Late
    # answers to SIPp's retransmissions of finished calls ("Dead call") are no failure.
    assert "retransmission timeout" not in flooded.errors, flooded.summary()
    assert flooded.created == flooded.successful + flooded.failed, flooded.summary()
    refusals = re.findall(
        r"while expecting '\w+' \(index \d+\), received 'SIP/2\.0 (\d{3})", flooded.errors
    )
    assert len(refusals) == flooded.failed, flooded.summary()
    assert set(refusals) <= {"486", "503"}, flooded.summary()
    assert "SIP/2.0 481" not in flooded.errors, flooded.summary()
    assert refusals.count("503") > 0, flooded.summary()  # over the rate: refused
    assert flooded.successful >= 1, flooded.summary()  # within the rate: answered
    # logged as summaries, not a line per refused INVITE
    assert after.count("INVITE flood from") * 10 < refusals.count("503"), after

    def flooder_let_in_again() -> bool:
        result = try_call(hotline, tmp_path / f"again{len(tries)}", "13800000117", "127.0.0.1")
        tries.append(result)
        assert result.successful == 1, result.summary()  # 503 until it keeps under the rate
        return bool(result.logged("answered"))

    wait_for(flooder_let_in_again, "the flooder's address let in again after the flood")
    caller = "13800000111"
    normal = call(caller, keys((1.0, "1")), hold_s=3)
    assert normal.successful == 1, normal.summary()
    wait_for(lambda: calls_of(supervisor, caller), "a normal call after the flood")


def test_worker_killed_mid_voicemail_the_message_becomes_an_order(
    hotline: Server, supervisor: StaffClient, tmp_path: Path
) -> None:
    caller = "13800000112"
    hold = QUEUE_TIMEOUT_S + 40
    pcap = write_rtp_pcap(tmp_path / "vm.pcap", duration_s=hold, dtmf=MENU_COMPLAINT)
    proc = start_sipp(
        "caller_call",
        tmp_path / "crash",
        ("127.0.0.1", hotline.sip_port),
        calls=1,
        pcap=pcap,
        values={"hold_ms": hold * 1000},
        keys={"caller": caller},
        timeout_s=hold + 30,
    )
    try:

        def recording_started() -> bool:
            notes = list(hotline.spool.glob("voicemail/*.json"))
            wavs = list(hotline.spool.glob("voicemail/*.wav"))
            return bool(notes) and any(w.stat().st_size > 16000 for w in wavs)  # >1 s of audio

        wait_for(recording_started, "the voicemail recording to start")
        _, snap = supervisor.get("/callcenter")
        (worker,) = snap["workers"]
        os.kill(worker["pid"], signal.SIGKILL)
        record = wait_for(lambda: calls_of(supervisor, caller), "the call to be closed")[0]
    finally:
        proc.stop(grace_s=2)
    assert record["outcome"] == "voicemail"
    assert record["ticket_id"]
    _, order = supervisor.get(f"/tickets/{record['ticket_id']}")
    (attachment,) = order["attachments"]
    assert attachment["seconds"] >= 1
    assert rms(supervisor.download(attachment["url"])) > 500
    assert not list(hotline.spool.glob("voicemail/*.json"))

    def worker_back() -> Any:
        _, snap = supervisor.get("/callcenter")
        return [w for w in snap["workers"] if w["pid"] != worker["pid"]]

    wait_for(worker_back, "the pool to restart the worker")


BARESIP_CONFIG = """\
sip_listen 127.0.0.1:{sip}
net_interface 127.0.0.1
audio_player null
audio_source aufile,{wav}
audio_alert null
module_path /usr/lib/baresip/modules
module cons.so
module g711.so
module aufile.so
module_app account.so
module_app menu.so
cons_listen 127.0.0.1:{cons}
"""


def test_baresip_softphone_call_end_to_end_leaves_a_voicemail(
    hotline: Server, supervisor: StaffClient, tmp_path: Path
) -> None:
    """A real softphone (baresip) dials in, keys 1 and 2 over RTP events, talks into the
    voicemail, hangs up: the order has its recording."""
    caller = "13800000113"
    sip, cons = free_port(), free_port()
    home = tmp_path / "baresip"
    home.mkdir()
    tone = home / "voice.wav"
    rate = 8000
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * 500 * np.arange(rate * 90) / rate)).astype("<i2")
    with wave.open(str(tone), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    (home / "config").write_text(BARESIP_CONFIG.format(sip=sip, wav=tone, cons=cons))
    (home / "accounts").write_text(f"<sip:{caller}@127.0.0.1:{sip}>;regint=0\n")
    with (home / "out.log").open("wb") as out:
        proc = subprocess.Popen(
            [
                "baresip",
                "-f",
                str(home),
                "-t",
                "120",  # a safety net: it quits by itself
                "-e",
                f"d sip:12345@127.0.0.1:{hotline.sip_port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        console = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

        def press(key: str) -> None:
            console.sendto(key.encode(), ("127.0.0.1", cons))

        def record() -> list[dict[str, Any]]:
            _, body = supervisor.get(f"/calls?caller={caller}")
            return list(body["items"])

        wait_for(record, "baresip's call to be answered")  # offered: the IVR has it
        time.sleep(1.5)
        press("1")  # 普通话
        time.sleep(1.5)
        press("2")  # 投诉举报 → queue → (timeout) voicemail

        def recording() -> bool:
            wavs = list(hotline.spool.glob("voicemail/*.wav"))
            return any(w.stat().st_size > 5 * 16000 for w in wavs)  # 5 s of speech

        wait_for(recording, "the voicemail to record baresip's audio")
        press("b")  # hang up
        ended = wait_for(lambda: [c for c in record() if c["ended_at"]], "the call to end")[0]
        console.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert ended["outcome"] == "voicemail", ended
    assert ended["ivr_path"].startswith("lang:cmn>menu:2>queue"), ended
    _, order = supervisor.get(f"/tickets/{ended['ticket_id']}")
    (attachment,) = order["attachments"]
    assert attachment["seconds"] >= 5
    assert rms(supervisor.download(attachment["url"])) > 500


def test_callback_rings_the_agent_then_the_orders_phone_and_bridges(
    agent: StaffClient, supervisor: StaffClient, citizen_port: int, tmp_path: Path
) -> None:
    phone = "13800000114"
    status, made = agent.send(
        "POST", "/tickets", {"channel": "phone", "content": "电话留言待回拨", "phone": phone}
    )
    assert status == 201, made
    status, body = agent.send("POST", f"/tickets/{made['id']}/call", {"purpose": "callback"})
    assert status == 409, body  # not signed in with a phone: nobody to connect
    agent_port = free_port()
    agent_audio = write_rtp_pcap(tmp_path / "agent.pcap", duration_s=30, tone_hz=660)
    citizen_audio = write_rtp_pcap(tmp_path / "citizen.pcap", duration_s=30, tone_hz=440)
    with (
        sipp_server(
            "uas_answer",
            tmp_path / "agent-phone",
            port=agent_port,
            pcap=agent_audio,
            values={"bye_timeout_ms": 60000},
        ) as desk,
        sipp_server(
            "uas_hangup",  # the citizen talks a while, then hangs up
            tmp_path / "citizen-phone",
            port=citizen_port,
            pcap=citizen_audio,
            duration_ms=6000,
        ) as citizen,
    ):
        status, body = agent.send(
            "POST", "/agent/session", {"uri": f"sip:agent1@127.0.0.1:{agent_port}"}
        )
        assert status == 201, body
        status, body = agent.send("POST", f"/tickets/{made['id']}/call", {"purpose": "callback"})
        assert status == 202, body

        def ended() -> list[dict[str, Any]]:
            _, calls = supervisor.get(f"/calls?ticket_id={made['id']}")
            return [c for c in calls["items"] if c["ended_at"]]

        (record,) = wait_for(ended, "the call-back to end")
        desk_result, citizen_result = desk.stop(), citizen.stop()
    assert desk_result.successful == 1, desk_result.summary()
    assert citizen_result.successful == 1, citizen_result.summary()
    assert (record["direction"], record["purpose"], record["dialled"]) == ("out", "callback", phone)
    assert record["outcome"] == "callback"
    assert record["agent"] == "agent1"
    assert record["talk_s"] > 0
    recording = Path(supervisor.server.recordings / f"{record['id']}.wav")
    assert rms(recording) > 500


def test_mongolian_is_chosen_with_key_2(
    supervisor: StaffClient, call: Callable[..., SippResult]
) -> None:
    """蒙古语: the choice is kept on the call; prompts without a Mongolian recording yet are
    played in Mandarin (tests/test_prompts.py covers the fallback)."""
    caller = "13800000115"
    result = call(caller, keys((1.0, "2")), hold_s=4)
    assert result.successful == 1, result.summary()
    record = wait_for(lambda: calls_of(supervisor, caller), "the call record")[0]
    assert (record["language"], record["ivr_path"][:7]) == ("mn", "lang:mn")


@pytest.mark.parametrize(
    "uri",
    [
        "sip:13900000000@trunk.example.com",  # a number on the trunk: toll fraud
        "sip:agent@127.0.0.1:5090?Route=%3Csip:evil%3E",  # URI headers
        "tel:13900000000",
        "sip:agent@127.0.0.2",
    ],
)
def test_agent_phone_must_be_on_the_centres_own_hosts(agent: StaffClient, uri: str) -> None:
    status, body = agent.send("POST", "/agent/session", {"uri": uri})
    assert status == 422, body
    status, body = agent.get("/agent/state")
    assert body["state"] == "offline"


def test_a_worker_keeps_call_slots_for_agents_and_turns_a_third_caller_away(
    hotline: Server, supervisor: StaffClient, tmp_path: Path
) -> None:
    """callers_per_worker = 2: a worker (4 calls) keeps a slot for each caller's agent leg;
    the third caller gets 486 (behind Kamailio: the next worker)."""
    pcap = write_rtp_pcap(tmp_path / "hold.pcap", duration_s=15)
    holders = [
        start_sipp(
            "caller_call",
            tmp_path / f"holder{i}",
            ("127.0.0.1", hotline.sip_port),
            calls=1,
            pcap=pcap,
            values={"hold_ms": 12000},
            keys={"caller": f"1380000012{i}"},
            timeout_s=60,
        )
        for i in range(2)
    ]
    try:

        def both_in() -> bool:
            _, snap = supervisor.get("/callcenter")
            return bool(snap["calls"] >= 2)

        wait_for(both_in, "two callers in the IVR")
        third = run_sipp(
            "caller_refused",
            tmp_path / "third",
            ("127.0.0.1", hotline.sip_port),
            calls=1,
            keys={"caller": "13800000129"},
            values={"media": "8", "rtpmap": "a=rtpmap:8 PCMA/8000", "expect": 486},
            timeout_s=30,
        )
        assert third.successful == 1, third.summary()
    finally:
        results = [h.wait(timeout_s=60) for h in holders]
    assert all(r.successful == 1 for r in results), [r.summary() for r in results]
