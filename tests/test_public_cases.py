"""The public 曝光纠错 column: supervisors publish a redacted, approved text of an answered order;
the public pages, the Atom feed and Open311 never show a field that was not approved."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from hotline.config import Settings
from tests.conftest import make_settings
from tickets.cases import leaks, redact

HOUSING = "150100-housing"
TZ = ZoneInfo("Asia/Shanghai")
SECRET_CONTENT = (
    "我是张建国，电话13912345678，住在新城区海东路12号院3栋2单元501室，楼下饭店油烟扰民"
)
SECRET_ANSWER = "已责令饭店安装油烟净化器。联系人王经理13800001111。"
NEVER = ("张建国", "13912345678", "12号院", "501室", "13800001111", "王经理", "海东路", "油烟扰民")


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url, HOTLINE__STATS__PUBLIC_MIN_REPLIES="1")


async def answered_order(api: Any) -> dict[str, Any]:
    agent, dispatcher, housing = [await api(u) for u in ("agent", "dispatcher", "housing")]
    body = {
        "content": SECRET_CONTENT,
        "phone": "13912345678",
        "name": "张建国",
        "address": "海东路12号院",
        "kind": "complaint",
        "region": "150102",
    }
    t = await agent.post("/tickets", body, 201)
    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    t = await housing.act(t, "sign")
    t = await housing.act(t, "reply", text=SECRET_ANSWER)
    t = await dispatcher.act(t, "approve")
    return await agent.act(t, "revisit", satisfaction="basic")  # type: ignore[no-any-return]


async def post_form(client: Any, path: str, form: dict[str, str]) -> tuple[int, str, str]:
    async with client.session.post(
        client.base + path, data={**form, "csrf_token": client.csrf}, allow_redirects=False
    ) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


def test_first_redaction_masks_what_identifies_a_person() -> None:
    out = redact(SECRET_CONTENT, ("张建国",))
    assert leaks(out, ("张建国",)) == []
    for word in ("张建国", "13912345678", "12号院", "501室"):
        assert word not in out
    assert "11月15号" in redact("11月15号起停暖")  # a date is not a house number
    assert leaks("请刘先生来电 0471-6661234", ()) == ["固定电话", "姓名"]


async def test_only_the_approved_text_is_ever_public(
    api: Any, http_session: Callable[[], tuple[aiohttp.ClientSession, str]]
) -> None:
    order = await answered_order(api)
    supervisor = await api("supervisor")
    # the order's page offers the supervisor to publish it
    _, detail = await get(supervisor.session, f"{supervisor.base}/staff/tickets/{order['id']}")
    assert 'action="/staff/cases"' in detail and order["number"] in detail
    status, location, _ = await post_form(supervisor, "/staff/cases", {"number": order["number"]})
    assert status == 303
    case_id = int(location.rsplit("/", 1)[1])
    status, draft = await get(supervisor.session, supervisor.base + location)
    assert status == 200
    form_question = re.search(r'<textarea id="case-question"[^>]*>([^<]*)</textarea>', draft)
    assert form_question is not None
    assert "13912345678" not in form_question.group(1) and "张建国" not in form_question.group(1)

    public, base = http_session()  # nobody logged in
    assert (await get(public, f"{base}/public/cases/{case_id}"))[0] == 404  # a draft
    version = int(re.findall(r'name="version" value="(\d+)"', draft)[0])
    leaking = {
        "title": "饭店油烟问题",
        "question": "市民反映楼下饭店油烟扰民。",
        "answer": SECRET_ANSWER,  # still names a person and a phone number
        "action": "publish",
        "version": str(version),
    }
    status, _, page = await post_form(supervisor, f"/staff/cases/{case_id}", leaking)
    assert status == 422 and "仍有个人信息" in page
    assert (await get(public, f"{base}/public/cases/{case_id}"))[0] == 404

    approved = {
        "title": "小区楼下饭店油烟问题得到整改",
        "question": "市民反映小区楼下一家饭店排放油烟，影响居民生活。",
        "answer": "经现场核查，已责令饭店安装油烟净化设施并通过验收。",
        "question_mn": "ᠢᠷᠭᠡᠨ ᠦ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ",
        "action": "publish",
        "version": str(version),
    }
    status, location, _ = await post_form(supervisor, f"/staff/cases/{case_id}", approved)
    assert status == 303 and location.endswith("done=publish")

    status, page = await get(public, f"{base}/public/cases/{case_id}")
    assert status == 200
    for text in (approved["title"], approved["question"], approved["answer"]):
        assert text in page
    assert "呼和浩特市住房和城乡建设局" in page and "基本满意" in page
    assert re.search(r'id="took">\d', page)
    listing = (await get(public, f"{base}/public"))[1]
    feed = (await get(public, f"{base}/public/cases.atom"))[1]
    for shown in (page, listing, feed):
        for secret in (*NEVER, order["number"]):
            assert secret not in shown, secret
    entries = ET.fromstring(feed).findall("{http://www.w3.org/2005/Atom}entry")
    assert [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries] == [
        approved["title"]
    ]
    # Mongolian: the page's words in Mongolian, the approved Mongolian question where given
    status, mn = await get(public, f"{base}/public/cases/{case_id}?lang=mn-Mong")
    assert 'lang="mn-Mong"' in mn and "ᠢᠷᠭᠡᠨ ᠦ ᠦᠨᠡᠯᠡᠯᠲᠡ" in mn and approved["question_mn"] in mn
    assert approved["answer"] in mn  # no Mongolian answer approved: the Chinese one, marked so

    # Open311 shows the approved text too, never the order's own
    async with public.get(f"{base}/open311/v2/requests/{order['number']}.json") as resp:
        (tracked,) = await resp.json()
    assert (tracked["description"], tracked["status_notes"]) == (
        approved["question"], approved["answer"],
    )  # fmt: skip

    # withdrawn: gone from every public place
    status, page = await get(supervisor.session, f"{supervisor.base}/staff/cases/{case_id}")
    version = int(re.findall(r'name="version" value="(\d+)"', page)[0])
    form = {"action": "withdraw", "version": str(version), **{k: "" for k in ("title",)}}
    assert (await post_form(supervisor, f"/staff/cases/{case_id}", form))[0] == 303
    assert (await get(public, f"{base}/public/cases/{case_id}"))[0] == 404
    assert approved["title"] not in (await get(public, f"{base}/public/cases.atom"))[1]


async def test_who_may_manage_the_column(api: Any) -> None:
    order = await answered_order(api)
    for who, status in (("agent", 403), ("housing", 403), ("manager", 200)):
        client = await api(who)
        assert (await get(client.session, client.base + "/staff/cases"))[0] == status, who
    manager = await api("manager")
    assert (await post_form(manager, "/staff/cases", {"number": order["number"]}))[0] == 403
    supervisor = await api("supervisor")
    unanswered = await (await api("agent")).post(
        "/tickets", {"content": "路灯坏了", "phone": "13812345678"}, 201
    )
    status, _, page = await post_form(supervisor, "/staff/cases", {"number": unanswered["number"]})
    assert status == 409 and "只能公开已答复的工单" in page


async def test_monthly_public_table_of_departments(
    api: Any, http_session: Callable[[], tuple[aiohttp.ClientSession, str]]
) -> None:
    await answered_order(api)
    public, base = http_session()
    month = datetime.now(TZ).strftime("%Y-%m")
    status, page = await get(public, f"{base}/public/departments?month={month}")
    assert status == 200
    row = re.search(r"<tr><td lang=\"zh-Hans\">呼和浩特市住房和城乡建设局</td>(.*?)</tr>", page)
    assert row is not None
    assert re.findall(r">([\d.]+%|—)<", row.group(1))[:2] == ["100.0%", "100.0%"]
    last = (datetime.now(TZ).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    assert (
        "呼和浩特市住房和城乡建设局"
        not in (await get(public, f"{base}/public/departments?month={last}"))[1]
    )
    status, mn = await get(public, f"{base}/public/departments?month={month}&lang=mn-Mong")
    assert "ᠰᠡᠳᠬᠢᠯ ᠬᠠᠩᠭᠤᠭᠰᠠᠨ ᠬᠤᠪᠢ" in mn
