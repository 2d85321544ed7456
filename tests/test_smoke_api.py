"""A first walk through the API on both backends: intake, dispatch, sign, reply, review, rate."""

from __future__ import annotations

from typing import Any


async def test_lifecycle_happy_path(api: Any) -> None:
    citizen = await api()
    created = await citizen.post(
        "/requests", {"content": "小区供暖温度不达标", "phone": "13812345678"}, 201
    )
    number = created["number"]
    assert len(number) == 14
    dispatcher = await api("dispatcher")
    items = (await dispatcher.get("/tickets", channel="web"))["items"]
    t = next(i for i in items if i["number"] == number)
    t = await dispatcher.act(t, "dispatch", lead="150100-housing", assists=["150100-urban"])
    assert t["status"] == "dispatched"
    housing = await api("housing")
    t = await housing.act(t, "sign")
    assert t["status"] == "accepted"
    t = await housing.act(t, "reply", text="已协调供热公司整改，温度已达标。")
    assert t["status"] == "replied"
    t = await dispatcher.act(t, "approve")
    assert t["status"] == "reviewed"
    rated = await citizen.post(
        f"/requests/{number}/rating", {"phone": "13812345678", "satisfaction": "satisfied"}
    )
    assert rated["status"] == "revisited"
    assert rated["answer"] == "已协调供热公司整改，温度已达标。"
