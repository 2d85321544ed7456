"""The SMS channel on SQLite and PostgreSQL with a fake gateway: incoming messages → orders,
supplements and survey answers (idempotent), abuse limits, the durable outbox (order, retry,
failure, delivery reports), quiet hours, notices from order events, and the HTTP endpoints'
answers to bad input."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import open_database
from telephony.notify import Notifier
from telephony.sms import SendError, SmsService
from tickets.db import Database
from tickets.model import Actor, Caller, Channel, NewTicket, Role, Status, TicketFilter
from tickets.outbox import NOTICE, WorkQueue

from .conftest import make_settings

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 Asia/Shanghai
PHONE = "13800000201"
AGENT = Actor(Role.AGENT, user_id=None, name="测试话务员")
DESK = Actor(Role.DISPATCHER, user_id=None, name="测试派单员")
GATEWAY_TOKEN = "test-gateway-token-0001"  # required with the Kannel backend


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class FakeGateway:
    """Takes messages like a gateway; `down` makes it refuse, `reject` refuse for good."""

    down: bool = False
    reject: set[str] = field(default_factory=set)
    sent: list[tuple[int, str, str]] = field(default_factory=list)

    async def send(self, msg_id: int, recipient: str, text: str) -> None:
        if recipient in self.reject:
            raise SendError("HTTP 403: number denied", permanent=True)
        if self.down:
            raise SendError("网关不可达: ConnectionRefused")
        self.sent.append((msg_id, recipient, text))


@dataclass
class Rig:
    sms: SmsService
    clock: Clock
    gateway: FakeGateway
    notifier: Notifier
    bus: InProcessBus
    settings: Settings

    async def mo(self, text: str, sender: str = PHONE, gw_id: str | None = None) -> Any:
        return await self.sms.receive(self.sms.parse(sender, "12345", text, gw_id))

    async def drain_events(self, q: Any) -> None:
        while not q.empty():
            await self.notifier.handle(q.get_nowait())

    async def outbox(self, **f: Any) -> list[Any]:
        return list(reversed(await self.sms.outbox(**f)))


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    settings = make_settings(
        db_url,
        HOTLINE__SMS__BACKEND="kannel",
        HOTLINE__SMS__GATEWAY_TOKEN=GATEWAY_TOKEN,
        HOTLINE__SMS__PER_NUMBER_PER_HOUR="5",
    )
    db: Database = open_database(settings)
    bus = InProcessBus()
    services = build_services(settings, db, bus)
    clock = Clock()
    sms = SmsService(
        settings.sms, db, services.tickets, public_url="http://hotline.test", now=clock
    )
    try:
        yield Rig(
            sms,
            clock,
            FakeGateway(),
            Notifier(sms, services.directory, "Asia/Shanghai"),
            bus,
            settings,
        )
    finally:
        db.close()


async def test_new_message_becomes_an_sms_order(rig: Rig) -> None:
    out = await rig.mo("呼和浩特市新城区某小区停水三天了", gw_id="k-1")
    assert out.handled_as == "new"
    assert out.ticket.channel is Channel.SMS
    assert out.ticket.caller.phone == PHONE


async def test_redelivered_message_creates_no_second_order(rig: Rig) -> None:
    first = await rig.mo("小区路灯坏了", gw_id="k-2")
    again = await rig.mo("小区路灯坏了", gw_id="k-2")
    assert (first.handled_as, again.handled_as) == ("new", "duplicate")
    _, total = await rig.sms.tickets.list_tickets(AGENT, TicketFilter(phone=PHONE))
    assert total == 1


async def test_redelivery_without_gateway_id_is_recognised_by_content_and_minute(rig: Rig) -> None:
    await rig.mo("噪音扰民")
    assert (await rig.mo("噪音扰民")).handled_as == "duplicate"
    rig.clock.at += timedelta(minutes=2)
    assert (await rig.mo("噪音扰民")).handled_as == "supplement"  # a new message, same order


async def test_reply_from_a_number_with_an_open_order_is_appended(rig: Rig) -> None:
    first = await rig.mo("楼道堆放杂物", gw_id="a")
    more = await rig.mo("补充：在3单元", gw_id="b")
    assert more.handled_as == "supplement"
    assert more.ticket.id == first.ticket.id
    events = await rig.sms.tickets.events(AGENT, first.ticket.id)
    assert [e.action for e in events][-1] == "supplement"
    assert events[-1].new == {"text": "补充：在3单元"}


async def test_message_quoting_an_order_number_goes_to_that_order(rig: Rig) -> None:
    old = await rig.sms.tickets.submit(
        NewTicket(Channel.WEB, "供暖不热", caller=Caller(phone=PHONE))
    )
    await rig.mo("另一件事：垃圾没人清运", gw_id="c")  # now the latest open order
    out = await rig.mo(f"工单{old.number}补充：温度只有15度", gw_id="d")
    assert (out.handled_as, out.ticket.id) == ("supplement", old.id)


async def test_survey_answer_3_reopens_the_order(rig: Rig) -> None:
    t = await rig.sms.tickets.submit(NewTicket(Channel.SMS, "咨询社保", caller=Caller(phone=PHONE)))
    t = await rig.sms.tickets.answer(AGENT, t.id, t.version, "请到社保大厅办理。")
    q = rig.bus.subscribe()
    await rig.notifier.handle(
        next(e for e in await rig.sms.tickets.events(AGENT, t.id) if e.action == "answer")
    )
    purposes = [m.purpose for m in await rig.outbox(recipient=PHONE)]
    assert purposes == ["reply", "survey"]
    out = await rig.mo("3", gw_id="s")
    assert out.handled_as == "survey"
    assert out.ticket.status is Status.REOPENED
    assert out.ticket.satisfaction.value == "unsatisfied"
    assert [m.purpose for m in await rig.outbox(recipient=PHONE)][-1] == "survey_thanks"
    rig.bus.unsubscribe(q)


async def test_td_stops_survey_messages(rig: Rig) -> None:
    assert (await rig.mo("TD", gw_id="t")).handled_as == "stop"
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "x问题", caller=Caller(phone=PHONE)))
    assert await rig.sms.notify(PHONE, "survey", t) is None
    assert [m.purpose for m in await rig.outbox(recipient=PHONE)] == ["stopped"]


async def test_blocked_number_makes_no_order(rig: Rig) -> None:
    await rig.sms.block(PHONE, "骚扰")
    assert (await rig.mo("骚扰内容", gw_id="x")).handled_as == "blocked"
    _, total = await rig.sms.tickets.list_tickets(AGENT, TicketFilter(phone=PHONE))
    assert total == 0
    assert await rig.sms.unblock(PHONE)
    assert (await rig.mo("正常诉求", gw_id="y")).handled_as == "new"


async def test_per_number_rate_limit(rig: Rig) -> None:
    results = [(await rig.mo(f"第{i}条", gw_id=f"r{i}")).handled_as for i in range(7)]
    assert results == [
        "new",
        "supplement",
        "supplement",
        "supplement",
        "supplement",
        "limited",
        "limited",
    ]


@pytest.mark.parametrize(
    ("sender", "text", "code"),
    [
        ("12", "有内容", "invalid_input"),
        (PHONE, "   ", "invalid_input"),
        (PHONE, "长" * 1001, "message_too_long"),
    ],
)
def test_bad_messages_are_refused(rig: Rig, sender: str, text: str, code: str) -> None:
    from tickets.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        rig.sms.parse(sender, "12345", text, None)
    assert exc.value.code == code


async def test_outbox_keeps_order_per_recipient_through_an_outage_and_sends_once(rig: Rig) -> None:
    for i in range(3):
        await rig.sms.notify(PHONE, "survey_thanks", None, urgent=True, dedupe=f"o{i}")
    await rig.sms.notify("13800000999", "survey_thanks", None, urgent=True)
    rig.gateway.down = True
    assert await rig.sms.send_due(rig.gateway) == 0
    first = await rig.outbox(recipient=PHONE)
    assert [m.attempts for m in first] == [1, 0, 0]  # later messages wait behind the first
    assert first[0].last_error.startswith("网关不可达")
    rig.gateway.down = False
    assert await rig.sms.send_due(rig.gateway) == 0  # back-off: not due yet
    rig.clock.at += timedelta(seconds=rig.settings.sms.retry_base_s)
    while await rig.sms.send_due(rig.gateway):
        pass
    ids = [i for i, to, _ in rig.gateway.sent if to == PHONE]
    assert ids == sorted(ids) and len(ids) == 3
    assert all(m.status == "sent" for m in await rig.outbox())


async def test_refused_message_fails_for_good_and_does_not_block_others(rig: Rig) -> None:
    rig.gateway.reject.add(PHONE)
    await rig.sms.notify(PHONE, "stopped", None, urgent=True)
    await rig.sms.notify("13800000998", "stopped", None, urgent=True)
    await rig.sms.send_due(rig.gateway)
    by = {m.recipient: m for m in await rig.outbox()}
    assert by[PHONE].status == "failed"
    assert by["13800000998"].status == "sent"


async def test_delivery_reports_update_the_message(rig: Rig) -> None:
    msg_id = await rig.sms.notify(PHONE, "stopped", None, urgent=True)
    await rig.sms.send_due(rig.gateway)
    assert await rig.sms.delivery_report(msg_id, 8)  # accepted by the SMSC: no change
    assert (await rig.outbox())[0].status == "sent"
    assert await rig.sms.delivery_report(msg_id, 1)
    assert (await rig.outbox())[0].status == "delivered"
    assert not await rig.sms.delivery_report(999_999, 1)


async def test_quiet_hours_hold_citizen_notices_not_urgent_ones(rig: Rig) -> None:
    rig.clock.at = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # 22:00 local
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "x诉求", caller=Caller(phone=PHONE)))
    await rig.sms.notify(PHONE, "reply", t)
    await rig.sms.notify(PHONE, "ack", t, urgent=True)
    await rig.sms.notify("13900000001", "dispatch", t)  # staff notices are not held
    by = {m.purpose: m for m in await rig.outbox()}
    assert by["reply"].next_at == datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 08:00 local
    assert by["ack"].next_at == rig.clock.at
    assert by["dispatch"].next_at == rig.clock.at


async def test_notices_from_order_events(rig: Rig) -> None:
    q = rig.bus.subscribe()
    t = await rig.sms.tickets.submit(
        NewTicket(Channel.WEB, "道路破损", caller=Caller(phone=PHONE), language="mn-Mong")
    )
    # the dispatch notice goes to the department's contact (config [routing.contacts])
    dept = rig.notifier.directory.department("150100-housing")
    object.__setattr__(dept, "sms", "13900000002")
    t = await rig.sms.tickets.dispatch(DESK, t.id, t.version, "150100-housing")
    await rig.drain_events(q)
    await rig.drain_events(q)  # seen twice: still one notice each
    msgs = await rig.outbox()
    assert [(m.recipient, m.purpose) for m in msgs] == [(PHONE, "ack"), ("13900000002", "dispatch")]
    assert t.number in msgs[0].text
    assert "ᠳ᠋ᠤᠭᠠᠷ" in msgs[0].text  # the citizen chose Mongolian
    assert "呼和浩特市住房和城乡建设局" in msgs[1].text
    rig.bus.unsubscribe(q)
    object.__setattr__(dept, "sms", "")


async def test_embedded_outbox_keeps_messages_and_sends_nothing(db_url: str) -> None:
    settings = make_settings(db_url)  # backend = "outbox"
    db = open_database(settings)
    try:
        services = build_services(settings, db, InProcessBus())
        sms = SmsService(settings.sms, db, services.tickets, public_url="http://x")
        await sms.notify(PHONE, "stopped", None, urgent=True)
        gw = FakeGateway()
        assert await sms.send_due(gw) == 0
        (m,) = await sms.outbox()
        assert (m.status, gw.sent) == ("kept", [])
    finally:
        db.close()


# -- HTTP -------------------------------------------------------------------------------------
SECRET = "s3cret-key"


@pytest.fixture
async def web(db_url: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    from hotline.app import make_app

    settings = make_settings(db_url, HOTLINE__SMS__WEBHOOK_SECRET=SECRET)
    db = open_database(settings)
    try:
        yield await aiohttp_client(make_app(settings, db))
    finally:
        db.close()


async def test_kannel_endpoint_takes_utf8_and_answers_empty(web: Any) -> None:
    params = {"from": PHONE, "to": "12345", "text": "小区停水三天了", "charset": "UTF-8"}
    resp = await web.get("/api/v1/sms/kannel", params={**params, "coding": "0", "id": "u-1"})
    assert resp.status == 200
    assert await resp.text() == ""
    assert resp.headers["X-Hotline-Result"] == "new"
    again = await web.get("/api/v1/sms/kannel", params={**params, "coding": "0", "id": "u-1"})
    assert again.headers["X-Hotline-Result"] == "duplicate"


async def test_kannel_endpoint_accepts_post(web: Any) -> None:
    form = {"from": PHONE, "to": "12345", "text": "路灯不亮", "charset": "UTF-8", "id": "p-1"}
    resp = await web.post("/api/v1/sms/kannel", data=form)
    assert (resp.status, resp.headers["X-Hotline-Result"]) == (200, "new")


async def test_kannel_endpoint_decodes_ucs2(web: Any) -> None:
    from urllib.parse import quote_from_bytes

    raw = quote_from_bytes("停水".encode("utf-16-be"))
    q = f"from={PHONE}&to=12345&charset=UTF-16BE&coding=2&id=u-2&text={raw}"
    resp = await web.get("/api/v1/sms/kannel?" + q)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"from": PHONE, "text": "x", "charset": "KOI8-R"}, 415, "unsupported_charset"),
        ({"from": PHONE, "text": ""}, 422, "invalid_input"),
        ({"from": PHONE, "text": "长" * 1200}, 413, "message_too_long"),
        ({"from": "abc", "text": "停水"}, 422, "invalid_input"),
        ({"from": PHONE, "text": "x", "charset": "UTF-16BE"}, 422, "invalid_input"),  # odd bytes
    ],
    ids=["charset", "empty", "oversized", "bad-number", "broken-ucs2"],
)
async def test_kannel_endpoint_bad_input(
    web: Any, params: dict[str, str], status: int, code: str
) -> None:
    # POSTed as a form: a GET URL this long is refused by the HTTP parser before (400)
    resp = await web.post("/api/v1/sms/kannel", data={"to": "12345", **params})
    body = await resp.json()
    assert (resp.status, body["error"]["code"]) == (status, code)


def signed(
    body: dict[str, Any], secret: str = SECRET, at: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """A provider's request: X-Timestamp (Unix seconds, now unless `at`) and X-Signature =
    hex HMAC-SHA256(secret, timestamp + "." + body)."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    ts = str(int(time.time() if at is None else at))
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sig}


async def test_webhook_with_a_good_signature_makes_an_order(web: Any) -> None:
    raw, headers = signed({"from": PHONE, "to": "12345", "text": "噪音扰民", "id": "w-1"})
    resp = await web.post("/api/v1/sms/webhook", data=raw, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["result"] == "new" and len(body["number"]) == 14


@pytest.mark.parametrize("how", ["forged", "missing", "other-body"])
async def test_webhook_refuses_a_bad_signature(web: Any, how: str) -> None:
    raw, headers = signed({"from": PHONE, "text": "噪音扰民"})
    if how == "forged":
        headers["X-Signature"] = "0" * 64
    elif how == "missing":
        del headers["X-Signature"]
    else:
        raw = raw.replace("噪音".encode(), "安静".encode())
    resp = await web.post("/api/v1/sms/webhook", data=raw, headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "not_authenticated"


async def test_dlr_endpoint_checks_its_parameters(web: Any) -> None:
    resp = await web.get("/api/v1/sms/dlr", params={"id": "abc", "type": "1"})
    assert resp.status == 422
    resp = await web.get("/api/v1/sms/dlr", params={"id": "5", "type": "1"})
    assert (resp.status, await resp.text()) == (200, "unknown")


async def test_outbox_view_is_for_staff(api: Any) -> None:
    citizen = await api()
    await citizen.request("GET", "/sms/outbox", status=401)
    department = await api("housing")
    await department.request("GET", "/sms/outbox", status=403)
    agent = await api("agent")
    body = await agent.request("GET", "/sms/outbox")
    assert body == {"items": []}


async def test_overdue_notice_goes_to_the_department_and_supervisors(rig: Rig) -> None:
    from tickets.model import TicketEvent

    s = rig.sms.s.model_copy(update={"supervisor_phones": ["13900000009"]})
    rig.sms.s = s
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "井盖丢失", caller=Caller(phone=PHONE)))
    dept = rig.notifier.directory.department("150100-urban")
    object.__setattr__(dept, "sms", "13900000003")
    ev = TicketEvent(
        id=99,
        ticket_id=t.id,
        at=NOW,
        actor_role=Role.SYSTEM,
        actor_id=None,
        actor_name="系统",
        action="deadline_overdue",
        from_status=t.status,
        to_status=t.status,
        reason=None,
        old={},
        new={"clock": "reply", "due_at": "2026-11-27T01:00:00Z", "department": "150100-urban"},
    )
    await rig.notifier.handle(ev)
    await rig.notifier.handle(ev)  # seen again after a restart: no second notice
    msgs = [m for m in await rig.outbox() if m.purpose == "overdue"]
    object.__setattr__(dept, "sms", "")
    assert sorted(m.recipient for m in msgs) == ["13900000003", "13900000009"]
    assert "办结" in msgs[0].text and "11月27日09:00" in msgs[0].text


async def test_long_texts_are_cut_to_what_kannel_sends(rig: Rig) -> None:
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "问题", caller=Caller(phone=PHONE)))
    text = rig.sms.render("dispatch", t, department="某局" * 400, due="明天")
    assert len(text) == 670 and text.endswith("…")


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (202, "0: Accepted for delivery", None),
        (403, "Authorization failed", True),
        (503, "busy", False),
        (None, "", False),
    ],
    ids=["accepted", "refused-4xx", "server-5xx", "timeout"],
)
async def test_kannel_gateway_classifies_answers(
    aiohttp_server: Any, status: int | None, body: str, permanent: bool | None
) -> None:
    import asyncio

    import aiohttp
    from aiohttp import web as aweb

    from telephony.config import SmsSettings
    from telephony.sms import KannelGateway

    seen: list[dict[str, str]] = []

    async def sendsms(request: aweb.Request) -> aweb.Response:
        seen.append(dict(request.query))
        if status is None:
            await asyncio.sleep(5)
        return aweb.Response(status=status or 200, text=body)

    app = aweb.Application()
    app.router.add_get("/cgi-bin/sendsms", sendsms)
    server = await aiohttp_server(app)
    settings = SmsSettings(
        backend="kannel",
        sendsms_url=str(server.make_url("/cgi-bin/sendsms")),
        username="u",
        password="p",
        gateway_token=GATEWAY_TOKEN,
        send_timeout_s=0.5,
    )
    async with aiohttp.ClientSession() as session:
        gw = KannelGateway(settings, "http://127.0.0.1:8080/api/v1/sms/dlr", session)
        if permanent is None:
            await gw.send(7, PHONE, "您好，测试")
        else:
            with pytest.raises(SendError) as exc:
                await gw.send(7, PHONE, "您好，测试")
            assert exc.value.permanent is permanent
    q = seen[0]
    assert (q["to"], q["text"], q["coding"], q["charset"]) == (PHONE, "您好，测试", "2", "UTF-8")
    assert q["dlr-url"] == (
        f"http://127.0.0.1:8080/api/v1/sms/dlr?id=7&type=%d&ts=%T&token={GATEWAY_TOKEN}"
    )
    assert "%" not in q["dlr-url"].split("?")[0]


@pytest.fixture
async def guarded(db_url: str, aiohttp_client: Any) -> AsyncIterator[Any]:
    """A platform that takes Kannel's calls only with a token."""
    from hotline.app import make_app

    settings = make_settings(db_url, HOTLINE__SMS__GATEWAY_TOKEN="k4nnel-tok")
    db = open_database(settings)
    try:
        yield await aiohttp_client(make_app(settings, db))
    finally:
        db.close()


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong", 401), ("k4nnel-tok", 200)])
async def test_kannel_calls_need_the_gateway_token_when_set(
    guarded: Any, token: str | None, status: int
) -> None:
    params = {"from": PHONE, "to": "12345", "text": "冒充的短信", "id": f"t-{token}"}
    if token is not None:
        params["token"] = token
    resp = await guarded.get("/api/v1/sms/kannel", params=params)
    assert resp.status == status
    dlr = {"id": "1", "type": "2", **({"token": token} if token else {})}
    resp = await guarded.get("/api/v1/sms/dlr", params=dlr)
    assert resp.status == status


async def test_kannel_calls_from_other_addresses_are_refused(
    db_url: str, aiohttp_client: Any
) -> None:
    from hotline.app import make_app

    settings = make_settings(db_url, HOTLINE__SMS__GATEWAY_ADDRESSES='["10.20.30.40"]')
    db = open_database(settings)
    try:
        client = await aiohttp_client(make_app(settings, db))
        resp = await client.get(
            "/api/v1/sms/kannel", params={"from": PHONE, "to": "12345", "text": "3"}
        )
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
        services = build_services(settings, db, InProcessBus())
        _, total = await services.tickets.list_tickets(AGENT, TicketFilter(phone=PHONE))
        assert total == 0  # nothing was done in the citizen's name
    finally:
        db.close()


async def test_webhook_signature_with_non_ascii_is_401_not_500(web: Any) -> None:
    raw, headers = signed({"from": PHONE, "text": "噪音扰民"})
    headers["X-Signature"] = "签名"
    resp = await web.post("/api/v1/sms/webhook", data=raw, headers=headers)
    assert resp.status == 401


async def test_held_message_does_not_block_a_later_urgent_one(rig: Rig) -> None:
    rig.clock.at = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)  # 22:00 local: quiet hours
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "x诉求", caller=Caller(phone=PHONE)))
    await rig.sms.notify(PHONE, "reply", t)  # held until 08:00
    await rig.sms.notify(PHONE, "stopped", None, urgent=True)
    assert await rig.sms.send_due(rig.gateway) == 1
    assert [text for _, _, text in rig.gateway.sent] == [rig.sms.render("stopped", None)]
    rig.clock.at = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 08:00 local
    assert await rig.sms.send_due(rig.gateway) == 1
    assert "已答复" in rig.gateway.sent[-1][2]


async def test_delivery_report_before_the_sent_mark_is_kept(rig: Rig) -> None:
    sms = rig.sms

    class Fast(FakeGateway):
        async def send(self, msg_id: int, recipient: str, text: str) -> None:
            await super().send(msg_id, recipient, text)
            await sms.delivery_report(msg_id, 1)  # Kannel's report beats our own update

    await sms.notify(PHONE, "stopped", None, urgent=True)
    await sms.send_due(Fast())
    (m,) = await rig.outbox()
    assert m.status == "delivered"


async def test_two_senders_send_each_message_once(rig: Rig) -> None:
    import asyncio

    for i in range(6):
        await rig.sms.notify(f"1380000030{i}", "stopped", None, urgent=True)
    a, b = FakeGateway(), FakeGateway()
    await asyncio.gather(rig.sms.send_due(a), rig.sms.send_due(b))
    ids = [i for i, _, _ in a.sent + b.sent]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6


async def test_concurrent_redelivery_is_handled_once(rig: Rig) -> None:
    import asyncio

    await rig.mo("第一条", gw_id="z0")
    msg = rig.sms.parse(PHONE, "12345", "补充内容", "z1")
    outs = await asyncio.gather(rig.sms.receive(msg), rig.sms.receive(msg))
    assert sorted(o.handled_as for o in outs) == ["duplicate", "supplement"]
    events = await rig.sms.tickets.events(
        AGENT, outs[0].ticket.id if outs[0].ticket else outs[1].ticket.id
    )
    assert [e.action for e in events].count("supplement") == 1


async def test_message_whose_handling_died_is_taken_over_later(rig: Rig) -> None:
    from telephony import sms_store

    msg = rig.sms.parse(PHONE, "12345", "处理中途崩溃的短信", "crash-1")
    row = {
        "key": msg.key,
        "sender": PHONE,
        "receiver": "12345",
        "text": msg.text,
        "received_at": rig.clock.at,
        "handled_as": "pending",
        "ticket_id": None,
    }
    await rig.sms.db.write(lambda c: sms_store.insert_inbox(c, row))
    assert (await rig.sms.receive(msg)).handled_as == "duplicate"  # maybe still in progress
    rig.clock.at += timedelta(minutes=6)
    assert (await rig.sms.receive(msg)).handled_as == "new"


def test_template_with_an_unknown_placeholder_stops_start_up() -> None:
    from hotline.config import ConfigError

    with pytest.raises(ConfigError, match=r"sms\.templates"):
        make_settings("sqlite:///:memory:", HOTLINE__SMS__TEMPLATES__ACK='"工单{numbr}"')


async def test_notices_come_from_the_durable_queue_once(rig: Rig) -> None:
    """An order committed while no notifier ran (a crash, a restart): its event's job waits
    in the work queue; handling it makes the notice, handling it again makes nothing more."""
    t = await rig.sms.tickets.submit(NewTicket(Channel.WEB, "无人处理", caller=Caller(phone=PHONE)))
    assert await rig.outbox() == []  # nobody listened to the bus
    queue = WorkQueue(rig.sms.db, NOTICE)
    jobs = await queue.claim()
    assert [j.payload["action"] for j in jobs] == ["create"]
    assert await rig.notifier.handle_jobs(jobs) == {}
    assert [(m.purpose, m.ticket_id) for m in await rig.outbox()] == [("ack", t.id)]
    await rig.notifier.handle_jobs(jobs)  # the same job again: its lease ran out, say
    assert len(await rig.outbox()) == 1
