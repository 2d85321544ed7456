"""Every branch of the work-order lifecycle through the API, with exact audit trails."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent_ui.accounts import Accounts
from agent_ui.context import SERVICES
from hotline.app import load_routing
from hotline.config import Settings
from tests.conftest import PASSWORD
from tickets.db import Database
from tickets.model import Kind, Role, Urgency

PHONE = "13812345678"
HOUSING = "150100-housing"  # 呼和浩特市住房和城乡建设局
URBAN = "150100-urban"  # 呼和浩特市城市管理综合执法局
XC_HOUSING = "150102-housing"  # 新城区住房和城乡建设局, one level below HOUSING
ECOLOGY = "150200-ecology"  # 包头市生态环境局
REGION_HOUSING = "150000-housing"  # 内蒙古自治区住房和城乡建设厅, two levels above XC_HOUSING
TZ = ZoneInfo("Asia/Shanghai")

Login = Callable[[str], Awaitable[Any]]


@pytest.fixture
async def login(api: Any) -> Login:
    """login("housing") → that user's API client, logged in once per test."""
    clients: dict[str, Any] = {}

    async def get(username: str) -> Any:
        if username not in clients:
            clients[username] = await api(username)
        return clients[username]

    return get


async def new_order(login: Login, **fields: Any) -> dict[str, Any]:
    agent = await login("agent")
    body = {"content": "小区楼道灯坏了一个月没人修", "phone": PHONE, **fields}
    return await agent.post("/tickets", body, 201)  # type: ignore[no-any-return]


async def events(client: Any, t: dict[str, Any]) -> list[dict[str, Any]]:
    return (await client.get(f"/tickets/{t['id']}/events"))["items"]  # type: ignore[no-any-return]


async def trail(client: Any, t: dict[str, Any]) -> list[tuple[str, str | None, str | None, str]]:
    """(action, from_status, to_status, actor name) of every audit event, oldest first."""
    return [
        (e["action"], e["from_status"], e["to_status"], e["actor"]["name"])
        for e in await events(client, t)
    ]


def states(t: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(a["department"], a["role"], a["state"]) for a in t["assignments"]]


async def user_id(client: Any) -> int:
    return int((await client.get("/session"))["user"]["id"])


async def dispatched(
    login: Login, lead: str = HOUSING, assists: tuple[str, ...] = (), **fields: Any
) -> dict[str, Any]:
    t = await new_order(login, **fields)
    dispatcher = await login("dispatcher")
    return await dispatcher.act(t, "dispatch", lead=lead, assists=list(assists))  # type: ignore[no-any-return]


async def replied(login: Login, text: str = "已维修更换灯具。", **fields: Any) -> dict[str, Any]:
    t = await dispatched(login, **fields)
    housing = await login("housing")
    t = await housing.act(t, "sign")
    return await housing.act(t, "reply", text=text)  # type: ignore[no-any-return]


ACTIVE = {"pending", "accepted"}


async def act_status(client: Any, t: dict[str, Any], action: str, **body: Any) -> tuple[int, Any]:
    """Like Api.act, but hands back the HTTP status instead of asserting one."""
    async with client.session.post(
        f"{client.base}/api/v1/tickets/{t['id']}/{action}",
        json={"version": t["version"], **body},
        headers=client._headers(),
    ) as resp:
        return resp.status, await resp.json()


def local(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def shown(value: datetime) -> str:
    """A time as the API shows it: local time, whole seconds."""
    return value.astimezone(TZ).isoformat(timespec="seconds")


# -- 直接答复 → 回访 → 办结 -----------------------------------------------------------------------
async def test_direct_answer_revisit_close(login: Login) -> None:
    agent = await login("agent")
    t = await new_order(login, kind="consult", content="公积金提取需要什么材料？")
    assert (t["status"], t["version"]) == ("new", 1)
    assert [a["action"] for a in t["actions"]] == ["answer", "dispatch", "merge", "edit"]

    t = await agent.act(t, "answer", text="携带身份证和购房合同到公积金中心办理。")
    assert (t["status"], t["version"]) == ("answered", 2)
    assert t["answer"] == "携带身份证和购房合同到公积金中心办理。"
    assert t["answered_at"] is not None
    assert t["assignments"] == []

    t = await agent.act(t, "revisit", satisfaction="satisfied", note="市民表示清楚了")
    assert (t["status"], t["satisfaction"]) == ("revisited", "satisfied")
    t = await agent.act(t, "close")
    assert (t["status"], t["version"]) == ("closed", 4)
    assert t["closed_at"] is not None
    assert [a["action"] for a in t["actions"]] == ["reopen"]

    me = "测试-agent"
    assert await trail(agent, t) == [
        ("create", None, "new", me),
        ("answer", "new", "answered", me),
        ("revisit", "answered", "revisited", me),
        ("close", "revisited", "closed", me),
    ]
    evs = await events(agent, t)
    agent_id = await user_id(agent)
    assert {(e["actor"]["role"], e["actor"]["id"]) for e in evs} == {("agent", agent_id)}
    assert evs[0]["new"] == {"channel": "phone", "number": t["number"]}
    assert evs[1]["new"] == {"answer": "携带身份证和购房合同到公积金中心办理。"}
    assert evs[2]["reason"] == "市民表示清楚了"
    assert (evs[2]["old"], evs[2]["new"]) == ({"satisfaction": None}, {"satisfaction": "satisfied"})
    assert [e["reason"] for e in evs] == [None, None, "市民表示清楚了", None]


# -- 派单 主办 + 协办 → 各自签收 → 反馈 → 审核 → 市民评价 → 办结 ------------------------
async def test_dispatch_lead_and_assist_through_rating_and_close(login: Login, api: Any) -> None:
    citizen = await api()
    created = await citizen.post(
        "/requests", {"content": "小区供暖温度不达标", "phone": PHONE, "kind": "complaint"}, 201
    )
    number = created["number"]
    dispatcher, housing, urban = (
        await login("dispatcher"),
        await login("housing"),
        await login("urban"),
    )
    t = await dispatcher.get(f"/tickets/by-number/{number}")

    t = await dispatcher.act(t, "dispatch", lead=HOUSING, assists=[URBAN], note="请协同处理")
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "pending"), (URBAN, "assist", "pending")]
    for a in t["assignments"]:
        assert a["sign_due"] is not None
        assert a["reply_due"] == t["reply_due"] is not None
        assert a["signed_at"] is None
    lead_id, assist_id = (a["id"] for a in t["assignments"])
    # a unit the order was not sent to neither sees it nor acts on it
    ecology = await login("ecology")
    for err in (
        await ecology.get(f"/tickets/{t['id']}", 404),
        await ecology.get(f"/tickets/{t['id']}/events", 404),
        await ecology.act(t, "sign", 404),
    ):
        assert err["error"]["code"] == "not_found"
    assert [a["action"] for a in (await urban.get(f"/tickets/{t['id']}"))["actions"]] == [
        "sign",
        "return",
    ]

    # the assisting unit signs first: only its own assignment moves
    t = await urban.act(t, "sign")
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "pending"), (URBAN, "assist", "accepted")]
    # the lead signs: the order is being handled
    t = await housing.act(t, "sign")
    assert t["status"] == "accepted"
    assert states(t) == [(HOUSING, "lead", "accepted"), (URBAN, "assist", "accepted")]
    assert all(a["signed_at"] is not None for a in t["assignments"])

    t = await urban.act(t, "reply", text="已配合检查管网。")
    assert t["status"] == "accepted"
    assert states(t) == [(HOUSING, "lead", "accepted"), (URBAN, "assist", "replied")]
    t = await housing.act(t, "reply", text="已协调供热公司整改，温度已达标。")
    assert t["status"] == "replied"
    assert states(t) == [(HOUSING, "lead", "replied"), (URBAN, "assist", "replied")]
    err = await housing.act(t, "approve", 403)  # a unit does not review its own reply
    assert err["error"]["code"] == "role_forbidden"

    t = await dispatcher.act(t, "approve")
    assert t["status"] == "reviewed"
    assert t["answer"] == "已协调供热公司整改，温度已达标。"

    tracked = await citizen.get(f"/requests/{number}", phone=PHONE)
    assert tracked["status"] == "reviewed"
    assert tracked["can_rate"] is True
    assert tracked["answer"] == "已协调供热公司整改，温度已达标。"
    assert tracked["department_name"] == "呼和浩特市住房和城乡建设局"
    rated = await citizen.post(
        f"/requests/{number}/rating", {"phone": PHONE, "satisfaction": "satisfied"}
    )
    assert (rated["status"], rated["satisfaction"], rated["can_rate"]) == (
        "revisited",
        "satisfied",
        False,
    )
    t = await dispatcher.get(f"/tickets/{t['id']}")
    t = await dispatcher.act(t, "close")
    assert t["status"] == "closed"
    assert states(t) == [(HOUSING, "lead", "replied"), (URBAN, "assist", "replied")]

    d, h, u = "测试-dispatcher", "测试-housing", "测试-urban"
    assert await trail(dispatcher, t) == [
        ("create", None, "new", "市民"),
        ("dispatch", "new", "dispatched", d),
        ("sign", "dispatched", "dispatched", u),
        ("sign", "dispatched", "accepted", h),
        ("reply", "accepted", "accepted", u),
        ("reply", "accepted", "replied", h),
        ("approve", "replied", "reviewed", d),
        ("revisit", "reviewed", "revisited", "市民"),
        ("close", "revisited", "closed", d),
    ]
    evs = await events(dispatcher, t)
    assert (evs[0]["actor"]["role"], evs[0]["actor"]["id"]) == ("citizen", None)
    assert evs[1]["reason"] == "请协同处理"
    assert (evs[1]["old"], evs[1]["new"]) == (
        {"departments": []},
        {"lead": HOUSING, "assists": [URBAN]},
    )
    assert [e["assignment_id"] for e in evs] == [
        None,
        None,
        assist_id,
        lead_id,
        assist_id,
        lead_id,
        None,
        None,
        None,
    ]
    assert evs[2]["new"] == {"assignment_state": "accepted", "role": "assist"}
    assert evs[3]["old"] == {"assignment_state": "pending"}
    assert evs[6]["new"] == {"answer": "已协调供热公司整改，温度已达标。"}
    assert (evs[7]["actor"]["role"], evs[7]["new"]) == ("citizen", {"satisfaction": "satisfied"})


# -- 退单 → 重新派单 -----------------------------------------------------------------------------
async def test_return_with_reason_then_redispatch_to_another_department(login: Login) -> None:
    t = await dispatched(login)
    housing, dispatcher = await login("housing"), await login("dispatcher")
    first_due = t["reply_due"]
    lead_id = t["assignments"][0]["id"]

    err = await housing.act(t, "return", 422)
    assert err["error"]["code"] == "missing_field"
    err = await housing.act(t, "return", 422, reason="   ")
    assert err["error"]["code"] == "invalid_input"
    assert (await dispatcher.get(f"/tickets/{t['id']}"))["version"] == t["version"]

    t = await housing.act(t, "return", reason="路灯归城管部门管理，非本单位职责")
    assert t["status"] == "returned"
    assert states(t) == [(HOUSING, "lead", "returned")]
    assert t["assignments"][0]["return_reason"] == "路灯归城管部门管理，非本单位职责"

    t = await dispatcher.act(t, "dispatch", lead=URBAN)
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "returned"), (URBAN, "lead", "pending")]
    # the statutory clock runs from receipt: re-dispatch does not restart it
    assert t["reply_due"] == first_due == t["assignments"][1]["reply_due"]

    evs = await events(dispatcher, t)
    assert [(e["action"], e["from_status"], e["to_status"]) for e in evs] == [
        ("create", None, "new"),
        ("dispatch", "new", "dispatched"),
        ("return", "dispatched", "returned"),
        ("dispatch", "returned", "dispatched"),
    ]
    ret = evs[2]
    assert ret["reason"] == "路灯归城管部门管理，非本单位职责"
    assert ret["assignment_id"] == lead_id
    assert ret["actor"]["name"] == "测试-housing"
    assert (ret["old"], ret["new"]) == (
        {"assignment_state": "pending"},
        {"assignment_state": "returned", "role": "lead"},
    )
    assert (evs[3]["old"], evs[3]["new"]) == ({"departments": []}, {"lead": URBAN, "assists": []})

    urban = await login("urban")
    t = await urban.act(t, "sign")
    assert t["status"] == "accepted"


# -- 改派 before signing --------------------------------------------------------------------------
async def test_redispatch_before_signing_cancels_pending_assignments(login: Login) -> None:
    t = await dispatched(login, assists=(URBAN,))
    dispatcher, housing = await login("dispatcher"), await login("housing")
    err = await dispatcher.act(t, "dispatch", 422, lead="999999-nothing")
    assert err["error"]["details"] == {"field": "department", "department": "999999-nothing"}
    err = await dispatcher.act(t, "dispatch", 422, lead=ECOLOGY, assists=[ECOLOGY])
    assert err["error"]["details"] == {"field": "assists"}
    stale = t
    t = await dispatcher.act(t, "dispatch", lead=ECOLOGY, note="改派")
    assert t["status"] == "dispatched"
    assert states(t) == [
        (HOUSING, "lead", "cancelled"),
        (URBAN, "assist", "cancelled"),
        (ECOLOGY, "lead", "pending"),
    ]
    evs = await events(dispatcher, t)
    assert (evs[-1]["action"], evs[-1]["from_status"], evs[-1]["to_status"]) == (
        "dispatch",
        "dispatched",
        "dispatched",
    )
    assert (evs[-1]["old"], evs[-1]["new"], evs[-1]["reason"]) == (
        {"departments": [HOUSING, URBAN]},
        {"lead": ECOLOGY, "assists": []},
        "改派",
    )
    # the withdrawn unit has nothing left to sign, at any version
    err = await housing.act(t, "sign", 409)
    assert err["error"]["code"] == "illegal_transition"
    err = await housing.act(stale, "sign", 409)
    assert err["error"]["code"] == "version_conflict"


async def test_assist_may_return_but_not_forward(login: Login) -> None:
    t = await dispatched(login, assists=(URBAN,))
    urban = await login("urban")
    t = await urban.act(t, "sign")
    err = await urban.act(t, "forward", 409, department="150102-urban")  # one level down
    assert err["error"]["code"] == "illegal_transition"
    t = await urban.act(t, "return", reason="不涉及城管职责")
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "pending"), (URBAN, "assist", "returned")]


# -- 二级派单 (forward one level down) -----------------------------------------------------------
async def test_forward_one_level_down_then_handled_below(login: Login) -> None:
    t = await dispatched(login)
    housing, xc, dispatcher = (
        await login("housing"),
        await login("xc_housing"),
        await login("dispatcher"),
    )
    t = await housing.act(t, "sign")
    old = t["assignments"][0]
    # once the lead signed, the centre can no longer 改派
    err = await dispatcher.act(t, "dispatch", 409, lead=URBAN)
    assert err["error"]["code"] == "illegal_transition"

    # same level, and upwards, are refused
    for target in (URBAN, REGION_HOUSING, ECOLOGY):
        err = await housing.act(t, "forward", 422, department=target)
        assert err["error"]["details"] == {"field": "department"}

    t = await housing.act(t, "forward", department=XC_HOUSING, note="请新城区落实")
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "forwarded"), (XC_HOUSING, "lead", "pending")]
    new = t["assignments"][1]
    assert new["forwarded_from"] == old["id"]
    assert new["reply_due"] == old["reply_due"]
    assert new["sign_due"] is not None

    t = await xc.act(t, "sign")
    assert t["status"] == "accepted"
    t = await xc.act(t, "reply", text="新城区已修复楼道灯。")
    t = await dispatcher.act(t, "approve")
    assert (t["status"], t["answer"]) == ("reviewed", "新城区已修复楼道灯。")

    evs = await events(dispatcher, t)
    fwd = next(e for e in evs if e["action"] == "forward")
    assert (fwd["from_status"], fwd["to_status"], fwd["reason"]) == (
        "accepted",
        "dispatched",
        "请新城区落实",
    )
    assert (fwd["old"], fwd["new"]) == ({"department": HOUSING}, {"department": XC_HOUSING})
    assert fwd["assignment_id"] == old["id"]
    assert [e["action"] for e in evs] == [
        "create",
        "dispatch",
        "sign",
        "forward",
        "sign",
        "reply",
        "approve",
    ]


async def test_forward_two_levels_down_is_refused(
    login: Login, api: Any, settings: Settings, database: Database
) -> None:
    Accounts(database, load_routing(settings)).create_user_sync(
        "region_housing", PASSWORD, Role.DEPARTMENT, REGION_HOUSING, "测试-region_housing"
    )
    t = await dispatched(login, lead=REGION_HOUSING)
    region = await api("region_housing")
    t = await region.act(t, "sign")
    err = await region.act(t, "forward", 422, department=XC_HOUSING)
    assert err["error"]["details"] == {"field": "department"}
    t = await region.act(t, "forward", department=HOUSING)
    assert states(t) == [(REGION_HOUSING, "lead", "forwarded"), (HOUSING, "lead", "pending")]


async def test_forward_to_a_unit_already_assisting_leaves_it_one_live_task(login: Login) -> None:
    """Dispatch refuses a unit as both lead and assist; forwarding must not create that state.

    Either the forward is refused, or the unit ends up with exactly one live assignment: a
    second, pending one could never be signed (the unit's actions always pick its newest task)
    and would run into its sign deadline for nothing.
    """
    t = await dispatched(login, assists=(XC_HOUSING,))
    housing = await login("housing")
    status, body = await act_status(housing, t, "forward", department=XC_HOUSING)
    if status == 200:
        live = [a["department"] for a in body["assignments"] if a["state"] in ACTIVE]
        assert sorted(live) == [XC_HOUSING], states(body)
    else:
        assert (status, body["error"]["details"]) == (422, {"field": "department"})
        dispatcher = await login("dispatcher")
        assert states(await dispatcher.get(f"/tickets/{t['id']}")) == states(t)


# -- 延期 ---------------------------------------------------------------------------------------
async def test_extension_approved_moves_assignment_and_order_deadline(login: Login) -> None:
    t = await dispatched(login)
    housing, dispatcher = await login("housing"), await login("dispatcher")
    t = await housing.act(t, "sign")
    due = t["reply_due"]
    until = shown(local(due) + timedelta(days=5))

    t = await housing.act(t, "request_extension", until=until, reason="需协调多个部门")
    assert t["status"] == "accepted"
    ext = t["assignments"][0]["extension"]
    assert ext == {"state": "requested", "until": until, "reason": "需协调多个部门"}
    assert t["reply_due"] == t["assignments"][0]["reply_due"] == due

    err = await housing.act(t, "request_extension", 409, until=until, reason="再申请一次")
    assert err["error"]["code"] == "conflict"
    err = await housing.act(t, "approve_extension", 403)
    assert err["error"]["code"] == "role_forbidden"

    t = await dispatcher.act(t, "approve_extension", reason="同意")
    assert t["status"] == "accepted"
    assert t["assignments"][0]["extension"]["state"] == "approved"
    assert t["assignments"][0]["reply_due"] == until
    assert t["reply_due"] == until

    evs = await events(dispatcher, t)
    req, ok = evs[-2], evs[-1]
    lead_id = t["assignments"][0]["id"]
    assert (req["action"], req["from_status"], req["to_status"], req["reason"]) == (
        "request_extension",
        "accepted",
        "accepted",
        "需协调多个部门",
    )
    assert req["assignment_id"] == ok["assignment_id"] == lead_id
    assert local(req["old"]["reply_due"]) == local(due)
    assert local(req["new"]["requested_until"]) == local(until)
    assert (ok["action"], ok["reason"]) == ("approve_extension", "同意")
    assert local(ok["old"]["reply_due"]) == local(due)
    assert local(ok["new"]["reply_due"]) == local(until)


async def test_extension_denied_keeps_deadline(login: Login) -> None:
    t = await dispatched(login)
    housing, supervisor = await login("housing"), await login("supervisor")
    due = t["reply_due"]
    until = shown(local(due) + timedelta(days=3))
    err = await housing.act(t, "request_extension", 409, until=until, reason="还没签收")
    assert err["error"]["code"] == "illegal_transition"
    t = await housing.act(t, "sign")
    for bad in (due, shown(local(due) - timedelta(days=1))):  # not later than the limit
        err = await housing.act(t, "request_extension", 422, until=bad, reason="太早")
        assert err["error"]["details"] == {"field": "until"}
    err = await housing.act(t, "request_extension", 422, until=until[:19], reason="没有时区")
    assert err["error"]["details"] == {"field": "until"}
    err = await housing.act(t, "request_extension", 422, until=until, reason=" ")
    assert err["error"]["details"] == {"field": "reason"}
    assert [e["action"] for e in await events(housing, t)] == ["create", "dispatch", "sign"]

    t = await housing.act(t, "request_extension", until=until, reason="需要更多时间")
    t = await supervisor.act(t, "deny_extension", reason="诉求简单，应按期办结")
    assert t["assignments"][0]["extension"]["state"] == "denied"
    assert t["assignments"][0]["reply_due"] == t["reply_due"] == due
    last = (await events(supervisor, t))[-1]
    assert (last["action"], last["reason"]) == ("deny_extension", "诉求简单，应按期办结")
    assert local(last["old"]["reply_due"]) == local(last["new"]["reply_due"]) == local(due)
    # with nothing pending, there is nothing to decide
    err = await supervisor.act(t, "approve_extension", 409)
    assert err["error"]["code"] == "illegal_transition"
    # after a denial the unit may ask again
    t = await housing.act(t, "request_extension", until=until, reason="补充说明理由")
    assert t["assignments"][0]["extension"]["state"] == "requested"


async def test_extension_of_a_returned_assignment_is_not_pending_after_redispatch(
    login: Login,
) -> None:
    """A unit asks for more time, then returns the order; the new unit must not inherit it."""
    t = await dispatched(login)
    housing, urban, dispatcher = (
        await login("housing"),
        await login("urban"),
        await login("dispatcher"),
    )
    t = await housing.act(t, "sign")
    due = t["reply_due"]
    until = shown(local(due) + timedelta(days=10))
    t = await housing.act(t, "request_extension", until=until, reason="需要更多时间")
    t = await housing.act(t, "return", reason="非本单位职责")
    t = await dispatcher.act(t, "dispatch", lead=URBAN)
    t = await urban.act(t, "sign")
    assert t["reply_due"] == due
    # the only request on file belongs to an assignment that was returned: nothing to approve
    err = await dispatcher.act(t, "approve_extension", 409)
    assert err["error"]["code"] == "illegal_transition"
    t = await dispatcher.get(f"/tickets/{t['id']}")
    assert t["reply_due"] == due
    assert [a["reply_due"] for a in t["assignments"]] == [due, due]


# -- 审核不通过 → 重办 -------------------------------------------------------------------------
async def test_review_reject_rework_reply_again_approve(login: Login) -> None:
    t = await replied(login, text="已处理。")
    dispatcher, housing = await login("dispatcher"), await login("housing")
    lead_id = t["assignments"][0]["id"]

    err = await dispatcher.act(t, "reject", 422)
    assert err["error"]["code"] == "missing_field"
    err = await dispatcher.act(t, "reject", 422, reason="  ")
    assert err["error"]["details"] == {"field": "reason"}

    t = await dispatcher.act(t, "reject", reason="答复过于简单，请说明处理过程")
    assert (t["status"], t["rework_count"]) == ("rework", 1)
    assert states(t) == [(HOUSING, "lead", "accepted")]
    t = await housing.act(t, "reply", text="已更换灯具并检查线路。")
    assert t["status"] == "replied"
    t = await dispatcher.act(t, "reject", reason="请附上维修时间")
    assert (t["status"], t["rework_count"]) == ("rework", 2)
    t = await housing.act(t, "reply", text="3月2日已更换灯具并检查线路。")
    t = await dispatcher.act(t, "approve")
    assert (t["status"], t["rework_count"]) == ("reviewed", 2)
    assert t["answer"] == "3月2日已更换灯具并检查线路。"
    assert states(t) == [(HOUSING, "lead", "replied")]

    evs = await events(dispatcher, t)
    assert [(e["action"], e["from_status"], e["to_status"]) for e in evs] == [
        ("create", None, "new"),
        ("dispatch", "new", "dispatched"),
        ("sign", "dispatched", "accepted"),
        ("reply", "accepted", "replied"),
        ("reject", "replied", "rework"),
        ("reply", "rework", "replied"),
        ("reject", "replied", "rework"),
        ("reply", "rework", "replied"),
        ("approve", "replied", "reviewed"),
    ]
    rejects = [e for e in evs if e["action"] == "reject"]
    assert [e["reason"] for e in rejects] == ["答复过于简单，请说明处理过程", "请附上维修时间"]
    assert {e["assignment_id"] for e in rejects} == {lead_id}


# -- 回访不满意 → 重启 → 重新派单 ----------------------------------------------------------------
async def test_revisit_unsatisfied_reopens_then_redispatch_restarts_the_clock(
    login: Login, app_client: Any
) -> None:
    t = await replied(login)
    dispatcher, housing = await login("dispatcher"), await login("housing")
    t = await dispatcher.act(t, "approve")
    t = await dispatcher.act(t, "revisit", satisfaction="unsatisfied", note="灯又坏了")
    assert (t["status"], t["satisfaction"]) == ("reopened", "unsatisfied")
    assert [a["action"] for a in t["actions"]] == ["answer", "dispatch", "merge", "edit"]

    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    assert t["status"] == "dispatched"
    assert states(t) == [(HOUSING, "lead", "replied"), (HOUSING, "lead", "pending")]
    evs = await events(dispatcher, t)
    reopen, redispatch = evs[-2], evs[-1]
    assert (reopen["action"], reopen["from_status"], reopen["to_status"]) == (
        "reopen",
        "reviewed",
        "reopened",
    )
    assert reopen["reason"] == "灯又坏了"
    assert (reopen["old"], reopen["new"]) == (
        {"satisfaction": None},
        {"satisfaction": "unsatisfied"},
    )
    # a reopened order is handled anew: the reply limit runs from the re-dispatch
    policy = app_client.app[SERVICES].tickets.deadlines
    expected = policy.reply_due(Kind.OTHER, Urgency.NORMAL, local(redispatch["at"]))
    assert t["reply_due"] == shown(expected) == t["assignments"][1]["reply_due"]
    t = await housing.act(t, "sign")
    assert t["status"] == "accepted"


async def test_citizen_unsatisfied_rating_reopens(login: Login, api: Any) -> None:
    agent, citizen = await login("agent"), await api()
    t = await new_order(login, kind="consult")
    rating = {"phone": PHONE, "satisfaction": "unsatisfied", "note": "物业不接电话"}
    err = await citizen.post(f"/requests/{t['number']}/rating", rating, 409)  # nothing to rate
    assert err["error"]["code"] == "illegal_transition"
    t = await agent.act(t, "answer", text="请拨打物业电话。")

    err = await citizen.post(
        f"/requests/{t['number']}/rating", {**rating, "phone": "13900000000"}, 404
    )
    assert err["error"]["code"] == "not_found"
    rated = await citizen.post(f"/requests/{t['number']}/rating", rating)
    assert (rated["status"], rated["satisfaction"], rated["can_rate"]) == (
        "reopened",
        "unsatisfied",
        False,
    )
    assert rated["answer"] is None  # a reopened order shows no answer to the citizen
    err = await citizen.post(f"/requests/{t['number']}/rating", rating, 409)
    assert err["error"]["code"] == "illegal_transition"

    last = (await events(agent, t))[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "reopen",
        "answered",
        "reopened",
    )
    assert last["actor"] == {"role": "citizen", "id": None, "name": "市民"}
    assert last["reason"] == "物业不接电话"


# -- 合并 (多人同诉) -----------------------------------------------------------------------------
async def test_merge_duplicate_into_master(login: Login) -> None:
    agent = await login("agent")
    master = await new_order(login, content="幸福小区停水")
    dup = await dispatched(login, content="幸福小区一直停水")
    dup_lead = dup["assignments"][0]["id"]

    err = await agent.act(dup, "merge", 422, master=dup["number"])
    assert err["error"]["details"] == {"field": "master"}
    err = await agent.act(dup, "merge", 422, master="20000101999999")
    assert err["error"]["details"] == {"field": "master"}

    dup = await agent.act(dup, "merge", master=master["number"])
    assert (dup["status"], dup["master_id"]) == ("merged", master["id"])
    assert states(dup) == [(HOUSING, "lead", "cancelled")]
    assert dup["actions"] == []
    last = (await events(agent, dup))[-1]
    assert (last["action"], last["from_status"], last["to_status"], last["new"]) == (
        "merge",
        "dispatched",
        "merged",
        {"master": master["number"]},
    )
    master_events = await events(agent, master)
    assert [(e["action"], e["from_status"], e["to_status"]) for e in master_events] == [
        ("create", None, "new"),
        ("merged_in", "new", "new"),
    ]
    assert master_events[1]["new"] == {"duplicate": dup["number"]}
    assert master_events[1]["actor"]["name"] == "测试-agent"
    assert dup_lead not in [e["assignment_id"] for e in master_events]

    err = await agent.act(dup, "merge", 409, master=master["number"])
    assert err["error"]["code"] == "illegal_transition"


async def test_merge_into_closed_or_merged_master_fails(login: Login) -> None:
    agent = await login("agent")
    closed = await new_order(login)
    closed = await agent.act(closed, "answer", text="已答复。")
    closed = await agent.act(closed, "close")
    merged = await new_order(login)
    master = await new_order(login)
    merged = await agent.act(merged, "merge", master=master["number"])
    dup = await new_order(login)

    for target in (closed, merged):
        err = await agent.act(dup, "merge", 409, master=target["number"])
        assert err["error"]["code"] == "conflict"
    assert await trail(agent, dup) == [("create", None, "new", "测试-agent")]
    assert [e["action"] for e in await events(agent, closed)] == ["create", "answer", "close"]


# -- 督办 / 催办 --------------------------------------------------------------------------------
async def test_supervise_and_urge_marks(login: Login) -> None:
    t = await new_order(login)
    dispatcher = await login("dispatcher")
    err = await dispatcher.act(t, "urge", 409)  # nothing to urge before dispatch
    assert err["error"]["code"] == "illegal_transition"
    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    supervisor, dispatcher, manager = (
        await login("supervisor"),
        await login("dispatcher"),
        await login("manager"),
    )
    err = await dispatcher.act(t, "supervise", 403)
    assert err["error"]["code"] == "role_forbidden"
    t = await supervisor.act(t, "supervise", note="已超期，请尽快办理")
    assert (t["status"], t["supervised"]) == ("dispatched", True)
    t = await dispatcher.act(t, "urge", note="请今天签收")
    t = await dispatcher.act(t, "urge")
    assert (t["status"], t["urge_count"]) == ("dispatched", 2)
    t = await manager.act(t, "supervise")
    assert t["supervised"] is True
    err = await manager.act(t, "urge", 403)
    assert err["error"]["code"] == "role_forbidden"

    evs = (await events(supervisor, t))[2:]
    assert [
        (e["action"], e["from_status"], e["to_status"], e["reason"], e["old"], e["new"])
        for e in evs
    ] == [
        (
            "supervise",
            "dispatched",
            "dispatched",
            "已超期，请尽快办理",
            {"supervised": False},
            {"supervised": True},
        ),
        ("urge", "dispatched", "dispatched", "请今天签收", {}, {"urge_count": 1}),
        ("urge", "dispatched", "dispatched", None, {}, {"urge_count": 2}),
        ("supervise", "dispatched", "dispatched", None, {"supervised": True}, {"supervised": True}),
    ]
    assert [e["actor"]["name"] for e in evs] == [
        "测试-supervisor",
        "测试-dispatcher",
        "测试-dispatcher",
        "测试-manager",
    ]


# -- 修改受理信息 -------------------------------------------------------------------------------
async def test_edit_records_old_and_new_values(login: Login) -> None:
    agent = await login("agent")
    t = await new_order(login)
    t = await agent.act(
        t,
        "edit",
        summary="市民反映楼道灯损坏一个月",
        kind="complaint",
        region="150102",
        category=["城乡建设", "物业管理"],
    )
    assert (t["summary"], t["kind"], t["region"]) == (
        "市民反映楼道灯损坏一个月",
        "complaint",
        "150102",
    )
    assert (t["status"], t["region_name"], t["category"]) == (
        "new",
        "新城区",
        ["城乡建设", "物业管理"],
    )
    last = (await events(agent, t))[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == ("edit", "new", "new")
    assert last["old"] == {"summary": None, "kind": "other", "region": None, "category": []}
    assert last["new"] == {
        "summary": "市民反映楼道灯损坏一个月",
        "kind": "complaint",
        "region": "150102",
        "category": ["城乡建设", "物业管理"],
    }
    t = await agent.act(t, "edit", kind="consult")
    last = (await events(agent, t))[-1]
    assert (last["old"], last["new"]) == ({"kind": "complaint"}, {"kind": "consult"})

    err = await agent.act(t, "edit", 422, region="999999")
    assert err["error"]["details"] == {"field": "region"}
    err = await agent.act(t, "edit", 422)
    assert err["error"]["details"] == {"field": "changes"}
    assert len(await events(agent, t)) == 3


# -- 重启已办结工单 ------------------------------------------------------------------------------
async def test_closed_order_reopened_by_staff_with_reason(login: Login) -> None:
    agent, dispatcher = await login("agent"), await login("dispatcher")
    t = await new_order(login)
    t = await agent.act(t, "answer", text="已答复。")
    t = await agent.act(t, "close")
    err = await agent.act(t, "edit", 409, summary="改")
    assert err["error"]["code"] == "illegal_transition"
    err = await dispatcher.act(t, "reopen", 422)
    assert err["error"]["code"] == "missing_field"
    err = await dispatcher.act(t, "reopen", 422, reason=" ")
    assert err["error"]["details"] == {"field": "reason"}
    t = await dispatcher.act(t, "reopen", reason="市民再次来电反映问题未解决")
    assert t["status"] == "reopened"
    last = (await events(dispatcher, t))[-1]
    assert (last["action"], last["from_status"], last["to_status"], last["reason"]) == (
        "reopen",
        "closed",
        "reopened",
        "市民再次来电反映问题未解决",
    )
    assert last["actor"]["name"] == "测试-dispatcher"
    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    assert states(t) == [(HOUSING, "lead", "pending")]


async def test_reopened_order_is_no_longer_closed(login: Login) -> None:
    agent = await login("agent")
    t = await new_order(login)
    t = await agent.act(t, "answer", text="已答复。")
    t = await agent.act(t, "close")
    first_close = t["closed_at"]
    assert first_close is not None
    t = await agent.act(t, "reopen", reason="问题复发")
    assert (t["status"], t["closed_at"]) == ("reopened", None)


async def test_revisit_of_a_closed_order_is_refused(login: Login) -> None:
    """回访 happens before closing; 不满意 on a closed order must not reopen it without a reason."""
    agent = await login("agent")
    t = await new_order(login)
    t = await agent.act(t, "answer", text="已答复。")
    t = await agent.act(t, "close")
    for satisfaction in ("satisfied", "unsatisfied"):
        err = await agent.act(t, "revisit", 409, satisfaction=satisfaction)
        assert err["error"]["code"] == "illegal_transition"
    assert (await agent.get(f"/tickets/{t['id']}"))["status"] == "closed"


async def test_answer_after_return_withdraws_the_remaining_assignments(login: Login) -> None:
    """Once the centre answers directly, no unit may be left with a live task on the order."""
    t = await dispatched(login, assists=(URBAN,))
    housing, agent = await login("housing"), await login("agent")
    t = await housing.act(t, "return", reason="非本单位职责")
    t = await agent.act(t, "answer", text="已由热线直接答复。")
    assert t["status"] == "answered"
    assert states(t) == [(HOUSING, "lead", "returned"), (URBAN, "assist", "cancelled")]


# -- 时限 ---------------------------------------------------------------------------------------
async def test_every_assignment_has_deadlines_and_complaint_outlasts_consultation(
    login: Login, app_client: Any
) -> None:
    policy = app_client.app[SERVICES].tickets.deadlines
    orders = {}
    for kind, urgency in [
        ("consult", "normal"),
        ("complaint", "normal"),
        ("help", "normal"),
        ("complaint", "urgent"),
        ("complaint", "emergency"),
    ]:
        t = await dispatched(login, assists=(URBAN,), kind=kind, urgency=urgency)
        created = local(t["created_at"])
        expected = policy.reply_due(Kind(kind), Urgency(urgency), created)
        assert t["reply_due"] == shown(expected), (kind, urgency)
        for a in t["assignments"]:
            assert a["reply_due"] == t["reply_due"]
            assert a["sign_due"] is not None
            assert local(a["created_at"]) < local(a["sign_due"])
        orders[kind, urgency] = t
    consult = local(orders["consult", "normal"]["reply_due"])
    complaint = local(orders["complaint", "normal"]["reply_due"])
    assert complaint > consult
    # calendar-time limits: urgent 24 h, emergency 2 h from receipt
    for urgency, hours in (("urgent", 24), ("emergency", 2)):
        t = orders["complaint", urgency]
        assert local(t["reply_due"]) == local(t["created_at"]) + timedelta(hours=hours)
    for urgency, minutes in (("urgent", 60), ("emergency", 15)):
        a = orders["complaint", urgency]["assignments"][0]
        assert local(a["sign_due"]) == local(a["created_at"]) + timedelta(minutes=minutes)


# -- 工单编号 -----------------------------------------------------------------------------------
async def test_number_is_local_date_and_daily_sequence(api: Any, login: Login) -> None:
    citizen = await api()
    created = [
        await citizen.post("/requests", {"content": f"诉求{i}", "phone": PHONE}, 201)
        for i in range(3)
    ]
    agent_made = await new_order(login)
    numbers = [c["number"] for c in created] + [agent_made["number"]]
    times = [c["created_at"] for c in created] + [agent_made["created_at"]]
    for number, at in zip(numbers, times, strict=True):
        assert re.fullmatch(r"\d{14}", number)
        assert at.endswith("+08:00")
        assert number[:8] == local(at).strftime("%Y%m%d")
    assert [int(n[8:]) for n in numbers] == [1, 2, 3, 4]
    assert numbers == sorted(numbers)
