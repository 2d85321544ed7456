"""Nobody can flood a phone through the platform: acknowledgements to one number within
[sms] ack_window_s are folded into one text that lists the order numbers, and citizen-facing
texts to one number are capped per 24 hours (the rest kept as `limited`, shown, not sent);
durable, and one carrier however many processes write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from agent_ui.context import SERVICES
from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.db import open_database
from telephony.notify import Notifier
from telephony.sms import SmsService
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket, Ticket
from tickets.outbox import NOTICE, WorkQueue

from .conftest import make_settings
from .test_sms import GATEWAY_TOKEN, NOW, PHONE, Clock, FakeGateway, Rig
from .waiting import wait_until

WINDOW = timedelta(seconds=600)  # config.toml's ack_window_s


def rig_for(db_url: str, **env: str) -> tuple[Rig, Database]:
    settings = make_settings(
        db_url,
        HOTLINE__SMS__BACKEND="kannel",
        HOTLINE__SMS__GATEWAY_TOKEN=GATEWAY_TOKEN,
        **env,
    )
    db = open_database(settings)
    bus = InProcessBus()
    services = build_services(settings, db, bus)
    clock = Clock()
    sms = SmsService(
        settings.sms, db, services.tickets, public_url="http://hotline.test", now=clock
    )
    notifier = Notifier(sms, services.directory, "Asia/Shanghai")
    return Rig(sms, clock, FakeGateway(), notifier, bus, settings), db


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    made, db = rig_for(db_url)
    try:
        yield made
    finally:
        db.close()


async def web_orders(
    rig: Rig, n: int, phone: str = PHONE, language: str = "zh-Hans"
) -> list[Ticket]:
    """n web submissions naming `phone`, each acknowledged by the notifier as in production."""
    q = rig.bus.subscribe()
    made = [
        await rig.sms.tickets.submit(
            NewTicket(Channel.WEB, f"第{i}件诉求", caller=Caller(phone=phone), language=language)
        )
        for i in range(n)
    ]
    await rig.drain_events(q)
    rig.bus.unsubscribe(q)
    return made


async def send_all(rig: Rig) -> list[str]:
    """What the gateway sent in this round (texts)."""
    before = len(rig.gateway.sent)
    while await rig.sms.send_due(rig.gateway):
        pass
    return [text for _, _, text in rig.gateway.sent[before:]]


async def test_300_web_orders_for_one_number_make_one_text_per_window(rig: Rig) -> None:
    """The report's case: 300 anonymous web submissions naming one phone queued 300 texts."""
    first = await web_orders(rig, 1)
    (text,) = await send_all(rig)
    assert first[0].number in text and "已受理" in text

    rest = await web_orders(rig, 299)
    assert await send_all(rig) == []  # one text per window: the next waits for its end
    rig.clock.at = NOW + WINDOW
    (folded,) = await send_all(rig)
    assert "299件诉求" in folded and folded.endswith("查询进度：http://hotline.test/track")
    shown = [t.number for t in rest[:10]]
    assert "、".join(shown) + "等299件" in folded  # bounded: the first ten, then the count
    assert rest[10].number not in folded
    assert len(folded) <= 670

    rows = await rig.outbox(recipient=PHONE, limit=1000)
    assert sorted(m.status for m in rows if m.status != "folded") == ["sent", "sent"]
    carrier = next(m for m in rows if m.status == "sent" and m.ticket_id == rest[0].id)
    folded_rows = [m for m in rows if m.status == "folded"]
    assert len(folded_rows) == 298 and {m.folded_into for m in folded_rows} == {carrier.id}
    # every order has its acknowledgement on record: its notice job, done (again) after a
    # restart, adds nothing
    jobs = await WorkQueue(rig.sms.db, NOTICE).claim(1000)
    assert len(jobs) == 300
    assert await rig.notifier.handle_jobs(jobs) == {}
    assert len(await rig.outbox(recipient=PHONE, limit=1000)) == 300


async def test_acks_due_before_the_first_is_sent_go_out_as_one_listing_every_number(
    rig: Rig,
) -> None:
    made = await web_orders(rig, 3)
    (text,) = await send_all(rig)  # the sender takes the carrier's text as it is now
    assert "3件诉求" in text
    assert "、".join(t.number for t in made) + "。" in text


async def test_a_single_late_ack_reads_like_a_plain_one(rig: Rig) -> None:
    await web_orders(rig, 1)
    await send_all(rig)
    rig.clock.at = NOW + timedelta(seconds=30)
    (late,) = await web_orders(rig, 1)
    assert await send_all(rig) == []
    (held,) = [m for m in await rig.outbox(recipient=PHONE) if m.ticket_id == late.id]
    assert (held.status, held.next_at) == ("queued", NOW + WINDOW)
    rig.clock.at = NOW + WINDOW
    assert await send_all(rig) == [rig.sms.render("ack", late)]
    # the window after it starts at its own due time
    rig.clock.at = NOW + WINDOW + timedelta(seconds=1)
    (third,) = await web_orders(rig, 1)
    assert await send_all(rig) == []
    (held,) = [m for m in await rig.outbox(recipient=PHONE) if m.ticket_id == third.id]
    assert held.next_at == NOW + 2 * WINDOW


async def test_after_the_window_an_ack_goes_at_once(rig: Rig) -> None:
    await web_orders(rig, 1)
    await send_all(rig)
    rig.clock.at = NOW + WINDOW
    (t,) = await web_orders(rig, 1)
    assert await send_all(rig) == [rig.sms.render("ack", t)]


async def test_other_numbers_and_other_purposes_are_not_folded(rig: Rig) -> None:
    made = await web_orders(rig, 2)
    (other,) = await web_orders(rig, 1, phone="13800000777")
    for t in made:
        await rig.sms.notify(PHONE, "reply", t, dedupe=f"reply:{t.id}")
        await rig.sms.notify(PHONE, "survey", t, dedupe=f"survey:{t.id}")
    texts = await send_all(rig)
    assert len(texts) == 2 + 4  # one folded ack each number, every reply and survey
    assert sum("已答复" in x for x in texts) == 2
    assert any(other.number in x for x in texts)


async def test_mongolian_citizens_get_the_folded_ack_in_mongolian(rig: Rig) -> None:
    made = await web_orders(rig, 2, language="mn-Mong")
    (text,) = await send_all(rig)
    assert text.startswith("【12345】ᠲᠠᠨ ᠤ 2")
    assert all(t.number in text for t in made)


async def test_embedded_outbox_folds_too(db_url: str) -> None:
    settings = make_settings(db_url)  # backend = "outbox": kept, never sent
    db = open_database(settings)
    try:
        bus = InProcessBus()
        services = build_services(settings, db, bus)
        sms = SmsService(settings.sms, db, services.tickets, public_url="http://x", now=Clock())
        notifier = Notifier(sms, services.directory, "Asia/Shanghai")
        q = bus.subscribe()
        for i in range(5):
            await services.tickets.submit(
                NewTicket(Channel.WEB, f"诉求{i}", caller=Caller(phone=PHONE))
            )
        while not q.empty():
            await notifier.handle(q.get_nowait())
        statuses = sorted(m.status for m in await sms.outbox())
        assert statuses == ["folded"] * 4 + ["kept"]
        (kept,) = [m for m in await sms.outbox() if m.status == "kept"]
        assert "5件诉求" in kept.text
    finally:
        db.close()


async def test_two_processes_fold_into_one_carrier(db_url: str) -> None:
    """Two platform processes (each its own database pool and writer) acknowledge orders for
    one number at the same moment: still one text."""
    a, db_a = rig_for(db_url)
    b, db_b = rig_for(db_url)
    try:
        made = [
            await a.sms.tickets.submit(
                NewTicket(Channel.WEB, f"并发{i}", caller=Caller(phone=PHONE))
            )
            for i in range(20)
        ]
        await asyncio.gather(
            *(
                (a if i % 2 else b).sms.notify(PHONE, "ack", t, urgent=True, dedupe=f"ack:{t.id}")
                for i, t in enumerate(made)
            )
        )
        rows = await a.outbox(recipient=PHONE, limit=100)
        carriers = [m for m in rows if m.status != "folded"]
        assert len(carriers) == 1 and len(rows) == 20
        assert "等20件" in carriers[0].text
        # and two senders send it once
        await asyncio.gather(a.sms.send_due(a.gateway), b.sms.send_due(b.gateway))
        assert len(a.gateway.sent) + len(b.gateway.sent) == 1
    finally:
        db_a.close()
        db_b.close()


# -- the daily cap -----------------------------------------------------------------------------
@pytest.fixture
async def capped(db_url: str) -> AsyncIterator[Rig]:
    made, db = rig_for(db_url, HOTLINE__SMS__CITIZEN_TEXTS_PER_DAY="3")
    try:
        yield made
    finally:
        db.close()


async def test_citizen_texts_over_the_daily_cap_are_kept_as_limited_not_sent(
    capped: Rig,
) -> None:
    rig = capped
    for i in range(5):
        await rig.sms.notify(PHONE, "survey_thanks", None, urgent=True, dedupe=f"t{i}")
        rig.clock.at += timedelta(minutes=1)
    await rig.sms.notify(PHONE, "dispatch", None, department="某局")  # staff: never capped
    texts = await send_all(rig)
    assert len(texts) == 3 + 1
    limited = await rig.outbox(recipient=PHONE, status="limited")
    assert len(limited) == 2
    assert all("24 小时" in (m.last_error or "") for m in limited)
    # once the first is 24 hours old, there is room for one again
    rig.clock.at = NOW + timedelta(hours=24, seconds=30)
    await rig.sms.notify(PHONE, "survey_thanks", None, urgent=True, dedupe="t-next-day")
    assert len(await send_all(rig)) == 1


async def test_folded_acks_count_once_against_the_cap(capped: Rig) -> None:
    rig = capped
    await web_orders(rig, 50)  # one carrier
    await rig.sms.notify(PHONE, "survey_thanks", None, urgent=True, dedupe="a")
    await rig.sms.notify(PHONE, "survey_thanks", None, urgent=True, dedupe="b")
    assert len(await send_all(rig)) == 3
    assert await rig.outbox(recipient=PHONE, status="limited") == []


async def test_staff_see_folded_and_limited_messages(app_client: Any, api: Any) -> None:
    svc = app_client.server.app[SERVICES]
    svc.sms.s = svc.sms.s.model_copy(update={"citizen_texts_per_day": 1})
    made = [
        await svc.tickets.submit(NewTicket(Channel.WEB, f"诉求{i}", caller=Caller(phone=PHONE)))
        for i in range(2)
    ]

    async def acknowledged() -> bool:  # by the app's own notifier
        return len(await svc.sms.outbox(recipient=PHONE)) == 2

    await wait_until(acknowledged)
    await svc.sms.notify(PHONE, "reply", made[0], dedupe="test-reply")  # over the cap
    agent = await api("agent")
    items = (await agent.get("/sms/outbox"))["items"]
    by_status = {m["status"]: m for m in items}
    assert sorted(by_status) == ["folded", "kept", "limited"]
    assert by_status["folded"]["folded_into"] == by_status["kept"]["id"]
    assert by_status["limited"]["purpose"] == "reply"
    assert [m["id"] for m in (await agent.get("/sms/outbox?status=limited"))["items"]] == [
        by_status["limited"]["id"]
    ]
    async with agent.session.get(agent.base + "/staff/sms") as resp:
        html = await resp.text()
    assert "超出每日上限，未发送" in html
    assert f"已并入第 {by_status['kept']['id']} 条" in html
