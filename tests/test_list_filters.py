"""The work lists' filters through the API (the staff pages read the same query string):
words, phone, number prefix, department, region with its banners, state, triage state,
category, date range, 督办 / 催办, overdue, and sorting by deadline — on both stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import Api

TZ = ZoneInfo("Asia/Shanghai")


async def numbers(client: Api, **query: Any) -> set[str]:
    return {t["number"] for t in (await client.get("/tickets", limit=200, **query))["items"]}


async def test_filters_select_exactly_the_matching_orders(api: Any) -> None:
    agent: Api = await api("agent")
    dispatcher: Api = await api("dispatcher")
    supervisor: Api = await api("supervisor")
    heat = await agent.post(
        "/tickets",
        {
            "content": "小区供暖温度不达标",
            "phone": "13811110000",
            "region": "150102",
            "category": ["城乡建设", "住房保障"],
            "address": "新城区海东路",
        },
        201,
    )
    noise = await agent.post(
        "/tickets",
        {"content": "夜间施工噪音扰民", "phone": "13922220000", "region": "150203"},
        201,
    )
    heat = await dispatcher.act(heat, "dispatch", lead="150100-housing")
    heat = await supervisor.act(heat, "supervise", note="领导关注")
    heat = await supervisor.act(heat, "urge", note="尽快办理")

    assert await numbers(supervisor, q="供暖 达标") == {heat["number"]}
    assert await numbers(supervisor, q="海东路") == {heat["number"]}
    assert await numbers(supervisor, phone="13922220000") == {noise["number"]}
    assert heat["number"] in await numbers(supervisor, number=heat["number"][:8])
    assert await numbers(supervisor, number=heat["number"]) == {heat["number"]}
    assert await numbers(supervisor, department="150100-housing") == {heat["number"]}
    # a league includes its banners and counties: 150100 has 150102, not 150203
    assert await numbers(supervisor, region="150100") == {heat["number"]}
    assert await numbers(supervisor, region="150200") == {noise["number"]}
    assert await numbers(supervisor, category="住房保障") == {heat["number"]}
    assert await numbers(supervisor, category="住房") == set()  # whole names only
    # a corrected path is found by its new names only (the names' table follows the order)
    noise = await agent.act(noise, "edit", category=["环境保护", '噪音%_"污染'])
    assert await numbers(supervisor, category='噪音%_"污染') == {noise["number"]}
    assert await numbers(supervisor, category="噪音%") == set()  # no pattern: a whole name
    assert await numbers(supervisor, category="环境保护") == {noise["number"]}
    noise = await agent.act(noise, "edit", category=["环境保护"])
    assert await numbers(supervisor, category='噪音%_"污染') == set()
    assert await numbers(supervisor, category="环境保护") == {noise["number"]}
    assert await numbers(supervisor, supervised="1") == {heat["number"]}
    assert await numbers(supervisor, urged="1") == {heat["number"]}
    assert await numbers(supervisor, urged="0") == {noise["number"]}
    listed = (await supervisor.get("/tickets?status=new"))["items"]  # (get's own `status`)
    assert {t["number"] for t in listed} == {noise["number"]}
    today = datetime.now(TZ).date()
    assert await numbers(supervisor, **{"from": str(today), "until": str(today)}) == {
        heat["number"],
        noise["number"],
    }
    assert await numbers(supervisor, **{"until": str(today - timedelta(days=1))}) == set()
    due = (await supervisor.get("/tickets", sort="due"))["items"]
    assert due[0]["number"] == heat["number"]  # the one with a running limit first
    for bad in ({"from": "2026-13-01"}, {"region": "999999"}, {"overdue": "maybe"}):
        reply = await supervisor.request("GET", "/tickets", None, 422, **bad)
        assert reply["error"]["code"] == "invalid_input"
