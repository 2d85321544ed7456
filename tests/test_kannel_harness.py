"""The Kannel harness itself: real bearerbox + smsbox + fakesmsc against a stand-in platform."""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from telephony.kannel import (
    DLR_DELIVERED,
    DLR_SMSC_ACK,
    MO_PATH,
    kannel_dlr_url,
    mo_url,
    render_kannel,
)
from telephony.kannel_run import KannelPorts, KannelProcess, start_kannel
from tests.sms.fakesmsc import FakeSmsc, Mt, Sms, assemble, mo_line, parse_concat, parse_mt

SERVICE = "12345"
CITIZEN = "13800138000"
COMPLAINT = "小区停水三天了，请尽快处理"
DLR_PATH = "/dlr"
WAIT_S = 20.0


# --- a stand-in for the platform --------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class Platform:
    """Records every request; answers 200 with an empty body (fail_mo: that many MO requests
    get a 500 first)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.errors: list[str] = []  # requests whose query was not UTF-8
        self.cond = threading.Condition()
        self.fail_mo = 0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    # strict: a query that is not UTF-8 is recorded as an error (fails the test)
                    query = dict(
                        urllib.parse.parse_qsl(
                            parts.query, keep_blank_values=True, encoding="utf-8", errors="strict"
                        )
                    )
                except UnicodeDecodeError:
                    with platform.cond:
                        platform.errors.append(self.path)
                    query = {}
                req = Request(
                    self.command, parts.path, parts.query, query, dict(self.headers), body
                )
                status = 200
                with platform.cond:
                    if parts.path == MO_PATH and platform.fail_mo > 0:
                        platform.fail_mo -= 1
                        status = 500
                    platform.requests.append(req)
                    platform.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # port 0: the OS picks
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(
        self, path: str, predicate: Callable[[Request], bool], count: int = 1
    ) -> list[Request]:
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.matching(path, predicate)) >= count, WAIT_S)
            hits = self.matching(path, predicate)
            assert ok, f"{len(hits)} of {count} requests to {path}; got {self.requests}"
            return hits

    def matching(self, path: str, predicate: Callable[[Request], bool]) -> list[Request]:
        return [r for r in self.requests if r.path == path and predicate(r)]


@pytest.fixture
def platform() -> Iterator[Platform]:
    p = Platform()
    try:
        yield p
    finally:
        p.close()
    assert not p.errors, p.errors


@pytest.fixture
def gateway(tmp_path: Path, platform: Platform) -> Iterator[KannelProcess]:
    kannel = start_kannel(
        tmp_path / "kannel",
        sms_url=mo_url(platform.url),
        dlr_url=platform.url + DLR_PATH,
        sender=SERVICE,
        log_level=0,
        http_retry_delay_s=1,
    )
    try:
        yield kannel
    finally:
        kannel.stop()
    assert not kannel.running()


@pytest.fixture
def smsc(tmp_path: Path, gateway: KannelProcess) -> Iterator[FakeSmsc]:
    assert gateway.ports.fake_smsc is not None
    fake = FakeSmsc(gateway.ports.fake_smsc, tmp_path / "fakesmsc")
    try:
        fake.start(ready=gateway.smsc_online)
        yield fake
    finally:
        fake.stop()
    assert not fake.running()


def _query(name: str, value: str) -> Callable[[Request], bool]:
    return lambda r: r.query.get(name) == value


def _from(number: str) -> Callable[[Request], bool]:
    return _query("from", number)


def _text(text: str) -> Callable[[Sms], bool]:
    return lambda s: s.text == text


# --- (a), (f): MO -----------------------------------------------------------------------------


def test_chinese_mo_reaches_platform_as_utf8(platform: Platform, smsc: FakeSmsc) -> None:
    smsc.send_mo(CITIZEN, SERVICE, COMPLAINT)
    [req] = platform.wait(MO_PATH, _from(CITIZEN))
    assert req.method == "GET"
    assert req.query["text"] == COMPLAINT
    assert req.query["to"] == SERVICE
    assert req.query["charset"] == "UTF-8"
    assert req.query["coding"] == "0"  # recoded from UCS-2 (2) by mo-recode
    uuid.UUID(req.query["id"])
    assert urllib.parse.quote(COMPLAINT.encode("utf-8")) in req.raw_query


@pytest.mark.parametrize(
    "text",
    ["TD", "1", "td", "0", "?", "HELP me please", "退订", "#12 水管爆了", "TD 小区停水", "x+y%20z"],
)
def test_any_first_word_is_forwarded(platform: Platform, smsc: FakeSmsc, text: str) -> None:
    smsc.send_mo(CITIZEN, SERVICE, text)
    [req] = platform.wait(MO_PATH, _from(CITIZEN))
    assert req.query["text"] == text
    assert req.query["to"] == SERVICE


def test_percent_a_collapses_whitespace_percent_b_keeps_it(
    tmp_path: Path, platform: Platform
) -> None:
    # %a is "all words" joined by one space; %b is the message as received (UTF-8 after
    # mo-recode). The contract uses %a: runs of spaces, tabs and newlines arrive as one space.
    url = f"{platform.url}{MO_PATH}?from=%p&to=%P&text=%a&exact=%b&charset=%C&coding=%c&id=%I"
    with start_kannel(tmp_path / "k", sms_url=url) as kannel:
        assert kannel.ports.fake_smsc is not None
        with FakeSmsc(kannel.ports.fake_smsc, tmp_path / "f") as fake:
            fake.start(ready=kannel.smsc_online)
            texts = {"13900000001": "  第一行\n第二行\t完", "13900000002": "a  b"}
            for sender, text in texts.items():
                fake.send_mo(sender, SERVICE, text)
            for sender, text in texts.items():
                [req] = platform.wait(MO_PATH, _from(sender))
                assert req.query["exact"] == text
                assert req.query["text"] == " ".join(text.split())


def test_mo_is_retried_until_the_platform_takes_it(platform: Platform, smsc: FakeSmsc) -> None:
    platform.fail_mo = 2  # the platform answers 500 twice (down, overloaded...)
    smsc.send_mo(CITIZEN, SERVICE, COMPLAINT)
    attempts = platform.wait(MO_PATH, _from(CITIZEN), count=3)
    assert {r.query["id"] for r in attempts} == {attempts[0].query["id"]}  # same id: dedupe key
    assert all(r.query["text"] == COMPLAINT for r in attempts)


def test_many_mo_in_one_write(platform: Platform, smsc: FakeSmsc) -> None:
    messages = [(f"1380000{i:04d}", SERVICE, f"第{i}条：路灯不亮") for i in range(30)]
    smsc.send_many(messages)
    got = platform.wait(MO_PATH, lambda r: r.query["from"].startswith("1380000"), count=30)
    assert sorted((r.query["from"], r.query["text"]) for r in got) == sorted(
        (s, t) for s, _, t in messages
    )


# --- (b), (c): MT -----------------------------------------------------------------------------


def test_chinese_sendsms_reaches_smsc(gateway: KannelProcess, smsc: FakeSmsc) -> None:
    result = gateway.sendsms(CITIZEN, COMPLAINT)
    assert result.accepted, result
    [sms] = smsc.wait_sms(lambda s: s.receiver == CITIZEN)
    assert sms.text == COMPLAINT
    assert sms.sender == SERVICE  # default-sender of the sendsms user
    [part] = sms.parts
    assert part.kind == "ucs-2"
    assert part.udh == b""


def test_long_chinese_text_is_split_and_concatenated(
    gateway: KannelProcess, smsc: FakeSmsc
) -> None:
    text = ("您好，您反映的小区停水问题已受理，工单号20240001。" * 8)[:200]
    assert len(text) == 200
    assert gateway.sendsms(CITIZEN, text, sender=SERVICE).accepted
    [sms] = smsc.wait_sms(lambda s: s.receiver == CITIZEN)
    assert sms.text == text
    assert len(sms.parts) == 3  # 67 UCS-2 characters per part
    concats = [p.concat for p in sms.parts if p.concat is not None]
    assert [c.seq for c in concats] == [1, 2, 3]
    assert len({(c.ref, c.total) for c in concats}) == 1
    assert concats[0].total == 3
    assert all(len(p.data) <= 134 for p in sms.parts)
    assert all(p.sender == SERVICE for p in sms.parts)


def test_text_over_max_messages_is_cut(gateway: KannelProcess, smsc: FakeSmsc) -> None:
    # max-messages = 10 parts of 67 UCS-2 characters. Kannel 1.4.5 does not refuse a longer
    # text: it answers 202 and sends the first 670 characters. The platform must keep within.
    text = "".join(chr(0x4E00 + i) for i in range(700))
    assert gateway.sendsms(CITIZEN, text).accepted
    [sms] = smsc.wait_sms(lambda s: s.receiver == CITIZEN)
    assert len(sms.parts) == 10
    assert sms.text == text[:670]


# --- (d): delivery reports --------------------------------------------------------------------


def test_delivery_reports_reach_dlr_url(
    platform: Platform, gateway: KannelProcess, smsc: FakeSmsc
) -> None:
    short_url = kannel_dlr_url(platform.url + DLR_PATH, "msg-1")
    long_url = kannel_dlr_url(platform.url + DLR_PATH, "T-2024.0001_2")
    assert gateway.sendsms(CITIZEN, COMPLAINT, dlr_url=short_url).accepted
    assert gateway.sendsms(CITIZEN, COMPLAINT * 10, dlr_url=long_url).accepted
    for ref in ("msg-1", "T-2024.0001_2"):
        reports = platform.wait(DLR_PATH, _query("ref", ref), count=2)
        assert {int(r.query["type"]) for r in reports} == {DLR_SMSC_ACK, DLR_DELIVERED}
        assert all(r.query["to"] == CITIZEN and r.query["from"] == SERVICE for r in reports)
        assert all(r.query["smsc"] == "fake" for r in reports)


def test_dlr_ref_must_not_need_percent_encoding() -> None:
    # Kannel expands %X escapes anywhere in a dlr-url: "%E9%95%BF" (长) would arrive mangled.
    for bad in ("msg/2", "长", "a b", "50%", ""):
        with pytest.raises(ValueError):
            kannel_dlr_url("http://127.0.0.1/dlr", bad)
    with pytest.raises(ValueError):
        kannel_dlr_url("http://127.0.0.1/dlr?x=%41")
    assert kannel_dlr_url("http://h/dlr?k=v", "T-1").startswith("http://h/dlr?k=v&ref=T-1&type=%d")


def test_default_dlr_url_when_request_has_only_a_mask(
    platform: Platform, gateway: KannelProcess, smsc: FakeSmsc
) -> None:
    assert gateway.sendsms("13900000001", "hello", dlr_mask=DLR_DELIVERED).accepted
    [report] = platform.wait(DLR_PATH, lambda r: r.query.get("to") == "13900000001")
    assert report.query["type"] == str(DLR_DELIVERED)


# --- (e): stop and start ----------------------------------------------------------------------


def test_stopped_gateway_refuses_and_restarted_works(
    platform: Platform, gateway: KannelProcess, smsc: FakeSmsc
) -> None:
    assert gateway.sendsms(CITIZEN, "before").accepted
    smsc.wait_sms(lambda s: s.text == "before")
    pids = gateway.pids
    gateway.stop()
    assert not gateway.running()
    with pytest.raises(ConnectionRefusedError):
        gateway.sendsms(CITIZEN, "while down")
    assert smsc.proc is not None
    smsc.proc.wait(timeout=WAIT_S)  # fakesmsc ends when bearerbox closes the link

    gateway.start()
    assert gateway.pids != pids
    smsc.start(ready=gateway.smsc_online)
    assert gateway.sendsms(CITIZEN, "after").accepted
    smsc.wait_sms(lambda s: s.text == "after")
    smsc.send_mo(CITIZEN, SERVICE, "还是没水")
    platform.wait(MO_PATH, lambda r: r.query.get("text") == "还是没水")


def test_queued_messages_survive_restart_and_arrive_once(
    gateway: KannelProcess, smsc: FakeSmsc
) -> None:
    assert gateway.sendsms(CITIZEN, "first").accepted
    smsc.wait_sms(lambda s: s.text == "first")
    smsc.stop()  # the SMSC link is down: bearerbox keeps MT in its store
    queued = [gateway.sendsms(CITIZEN, f"queued {i} 停水通知") for i in range(3)]
    assert all(r.accepted for r in queued), queued
    gateway.restart()
    smsc.start(ready=gateway.smsc_online)
    assert gateway.sendsms(CITIZEN, "last").accepted
    smsc.wait_sms(lambda s: s.text == "last")
    for i in range(3):
        smsc.wait_sms(_text(f"queued {i} 停水通知"))
    texts = [s.text for s in smsc.messages()]
    for text in ("first", "last", *(f"queued {i} 停水通知" for i in range(3))):
        assert texts.count(text) == 1, texts


# --- pure helpers -----------------------------------------------------------------------------


def test_render_kannel_settings(tmp_path: Path) -> None:
    ports = KannelPorts.free()
    assert len({ports.admin, ports.sendsms, ports.box, ports.fake_smsc}) == 4
    conf = render_kannel(
        bearerbox_admin_port=ports.admin,
        smsbox_port=ports.sendsms,
        smsbox_bearer_port=ports.box,
        fake_smsc_port=ports.fake_smsc,
        password="pw",
        work_dir=tmp_path,
        sms_url=mo_url("http://10.0.0.5:8080"),
    )
    lines = {line.strip() for line in conf.splitlines()}
    for expected in (
        "dlr-storage = internal",
        "smsc = fake",
        f"port = {ports.fake_smsc}",
        "concatenation = true",
        "max-messages = 10",
        "max-messages = 0",
        "keyword = default",
        "catch-all = true",
        "mo-recode = true",
        "accept-x-kannel-headers = true",
        'get-url = "http://10.0.0.5:8080/api/v1/sms/kannel?'
        'from=%p&to=%P&text=%a&charset=%C&coding=%c&id=%I"',
        f'log-file = "{tmp_path.resolve() / "bearerbox.log"}"',
    ):
        assert expected in lines, expected
    assert not any(line.startswith("global-sender") for line in lines)
    production = render_kannel(
        bearerbox_admin_port=1,
        smsbox_port=2,
        smsbox_bearer_port=3,
        smsc_group="group = smsc\nsmsc = smpp\nsmsc-id = cmcc",
        password="pw",
        work_dir=tmp_path,
    )
    assert "smsc = fake" not in production and "smsc = smpp" in production
    with pytest.raises(ValueError):
        render_kannel(
            bearerbox_admin_port=1, smsbox_port=2, smsbox_bearer_port=3, password="p", work_dir="."
        )
    with pytest.raises(ValueError):
        render_kannel(
            bearerbox_admin_port=1,
            smsbox_port=2,
            smsbox_bearer_port=3,
            fake_smsc_port=4,
            password='a"b',
            work_dir=".",
        )


def test_fakesmsc_line_format() -> None:
    assert mo_line("1", "2", "TD") == b"1 2 text TD"
    line = mo_line(CITIZEN, SERVICE, "水+%，")
    assert line.startswith(b"13800138000 12345 ucs2 ")
    assert b"\n" not in line and b"+" not in line.split(b" ", 3)[3]
    with pytest.raises(ValueError):
        mo_line(CITIZEN, SERVICE, "水" * 200)
    with pytest.raises(ValueError):
        mo_line("138 00", SERVICE, "x")

    ucs = parse_mt(b"12345 139 ucs-2 %5C%0FS%3AP%5Cl4N%09Y)")
    assert ucs is not None and ucs.text == "小区停水三天"
    part = parse_mt(b"1 2 udh %05%00%03%07%02%02 data f+v%84")
    assert part is not None and part.concat is not None
    assert (part.concat.ref, part.concat.total, part.concat.seq) == (7, 2, 2)
    assert part.text == "映的"
    assert parse_concat(b"\x06\x08\x04\x01\x02\x03\x01") is not None
    first = Mt("1", "2", "udh", "您好".encode("utf-16-be"), b"\x05\x00\x03\x07\x02\x01")
    [sms] = assemble([part, first])
    assert sms.text == "您好映的"
    assert assemble([part]) == []
