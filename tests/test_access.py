"""Who sees what: department isolation, confidential callers, the manager's read-only view,
citizen tracking, and the public documents (OpenAPI, /healthz)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from agent_ui import accounts
from agent_ui.api import ACTIONS, ROUTES
from tests.conftest import Api
from tickets.model import Action

NAME = "张三丰"
PHONE = "13812345678"
OTHER_PHONE = "13987654321"
LEAD, ASSIST = "150100-housing", "150100-urban"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with its production cost takes ~0.1 s a hash and each test creates nine users;
    still real Argon2, just cheap parameters."""
    cheap = functools.partial(PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "PasswordHasher", cheap, raising=False)


@dataclass
class World:
    """A: confidential web request, dispatched to housing (lead) and urban (assist).
    B: phone order dispatched to ecology.  C: order not dispatched yet."""

    a: dict[str, Any]
    b: dict[str, Any]
    c: dict[str, Any]
    dispatcher: Api


@pytest.fixture
async def world(api: Any) -> World:
    citizen: Api = await api()
    created = await citizen.post(
        "/requests",
        {
            "content": "单位拖欠工资三个月，要求依法处理。",
            "name": NAME,
            "phone": PHONE,
            "confidential": True,
            "region": "150102",
        },
        201,
    )
    dispatcher: Api = await api("dispatcher")
    a = await dispatcher.get(f"/tickets/by-number/{created['number']}")
    a = await dispatcher.act(a, "dispatch", lead=LEAD, assists=[ASSIST])
    agent: Api = await api("agent")
    b = await agent.post(
        "/tickets",
        {"content": "工厂夜间排放废气", "name": "李四", "phone": OTHER_PHONE, "kind": "report"},
        201,
    )
    b = await dispatcher.act(b, "dispatch", lead="150200-ecology")
    c = await agent.post("/tickets", {"content": "咨询养老保险缴纳", "phone": "15004710003"}, 201)
    return World(a, b, c, dispatcher)


async def numbers(client: Api, **params: Any) -> set[str]:
    # in the query string, since Api.get's own `status` argument would take status=...
    listing = await client.get("/tickets?" + urlencode(params))
    found = {t["number"] for t in listing["items"]}
    assert listing["total"] == len(found)
    return found


async def status_of(client: Api, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": client.csrf} if client.csrf else {}
    async with client.session.request(
        method, client.base + "/api/v1" + path, json=body, headers=headers
    ) as resp:
        return resp.status, await resp.json()


# -- department isolation ---------------------------------------------------------------------
async def test_department_lists_only_orders_assigned_to_it(api: Any, world: World) -> None:
    expected = {
        "housing": {world.a["number"]},  # lead
        "urban": {world.a["number"]},  # assist
        "ecology": {world.b["number"]},
        "xc_housing": set(),
    }
    for username, wanted in expected.items():
        client: Api = await api(username)
        assert await numbers(client) == wanted, username
        # a filter naming another department narrows, never widens
        assert await numbers(client, department="150200-ecology") <= wanted & {world.b["number"]}
        assert await numbers(client, status="new") == set()
    everything = {world.a["number"], world.b["number"], world.c["number"]}
    for username in ("agent", "dispatcher", "supervisor", "manager", "admin"):
        assert await numbers(await api(username)) == everything, username


async def test_department_still_sees_order_it_returned(api: Any, world: World) -> None:
    housing: Api = await api("housing")
    t = await housing.act(world.a, "return", reason="拖欠工资属于人社部门职责")
    assert t["status"] == "returned"
    assert world.a["number"] in await numbers(housing)
    assert (await housing.get(f"/tickets/{t['id']}"))["status"] == "returned"
    # re-dispatched elsewhere: still readable as part of its history, but nothing to do on it
    t = await world.dispatcher.act(t, "dispatch", lead="150100-hrss")
    mine = await housing.get(f"/tickets/{t['id']}")
    assert mine["actions"] == []
    assert world.a["number"] in await numbers(housing)
    status, body = await status_of(
        housing, "POST", f"/tickets/{t['id']}/sign", {"version": t["version"]}
    )
    assert (status, body["error"]["code"]) == (409, "illegal_transition")
    # the assisting department keeps it in its history too; uninvolved ones never see it
    assert world.a["number"] in await numbers(await api("urban"))
    assert world.a["number"] not in await numbers(await api("ecology"))


async def test_department_still_sees_order_it_forwarded(api: Any, world: World) -> None:
    housing: Api = await api("housing")
    t = await housing.act(world.a, "forward", department="150102-housing", note="请新城区办理")
    assert world.a["number"] in await numbers(housing)
    assert (await housing.get(f"/tickets/{t['id']}"))["actions"] == []
    xc: Api = await api("xc_housing")
    assert await numbers(xc) == {world.a["number"]}
    detail = await xc.get(f"/tickets/{t['id']}")
    assert "sign" in {a["action"] for a in detail["actions"]}
    assert world.a["number"] not in await numbers(await api("ecology"))


@pytest.mark.parametrize("username", ["ecology", "xc_housing"])
async def test_department_cannot_read_or_act_on_other_orders(
    api: Any, world: World, username: str
) -> None:
    client: Api = await api(username)
    t = world.a
    for path in (f"/tickets/{t['id']}", f"/tickets/by-number/{t['number']}"):
        status, body = await status_of(client, "GET", path)
        assert (status, body["error"]["code"]) == (404, "not_found"), path
    status, body = await status_of(client, "GET", f"/tickets/{t['id']}/events")
    assert (status, body["error"]["code"]) == (404, "not_found")
    # exactly what an id that does not exist gives: ids cannot be probed
    _, missing = await status_of(client, "GET", "/tickets/999999")
    _, other = await status_of(client, "GET", f"/tickets/{t['id']}")
    assert missing == other
    for action, extra in [
        ("sign", {}),
        ("return", {"reason": "不归我们"}),
        ("reply", {"text": "好"}),
    ]:
        status, body = await status_of(
            client, "POST", f"/tickets/{t['id']}/{action}", {"version": t["version"], **extra}
        )
        assert (status, body["error"]["code"]) == (404, "not_found"), action
    # the refusal does not describe the order
    assert NAME not in json.dumps(body, ensure_ascii=False)
    assert (await world.dispatcher.get(f"/tickets/{t['id']}"))["version"] == t["version"]


# -- confidential callers (工单保密) -----------------------------------------------------------
def assert_hidden(view: dict[str, Any]) -> None:
    hidden = {"name": None, "phone": None, "confidential": True, "masked": True}
    assert view["caller"] == hidden, view["caller"]
    text = json.dumps(view, ensure_ascii=False)
    assert PHONE not in text and NAME not in text


@pytest.mark.parametrize("username", ["housing", "urban"])
async def test_confidential_caller_hidden_from_departments(
    api: Any, world: World, username: str
) -> None:
    dept: Api = await api(username)
    t = world.a
    assert_hidden(await dept.get(f"/tickets/{t['id']}"))
    assert_hidden(await dept.get(f"/tickets/by-number/{t['number']}"))
    (item,) = (await dept.get("/tickets"))["items"]
    assert_hidden(item)
    for event in (await dept.get(f"/tickets/{t['id']}/events"))["items"]:
        assert PHONE not in json.dumps(event, ensure_ascii=False)
    # the responses to its own actions are masked too
    t = await dept.act(t, "sign")
    assert_hidden(t)
    t = await dept.act(t, "reply", text="已约谈用人单位，工资已补发。")
    assert_hidden(t)


@pytest.mark.parametrize("username", ["housing", "urban"])
async def test_department_cannot_confirm_confidential_phone_by_filter(
    api: Any, world: World, username: str
) -> None:
    """GET /tickets?phone= must not let a department test guesses of a hidden phone number."""
    assert await numbers(world.dispatcher, phone=PHONE) == {world.a["number"]}
    dept: Api = await api(username)
    assert await numbers(dept, phone=PHONE) == set()


async def test_confidential_caller_hidden_in_return_response(api: Any, world: World) -> None:
    housing: Api = await api("housing")
    assert_hidden(await housing.act(world.a, "return", reason="不属于本单位职责"))


# a confidential caller as the centre sees it by default (lists, pages, API): masked
MASKED = {"name": "张**", "phone": "138****5678", "confidential": True, "masked": True}
FULL = {"name": NAME, "phone": PHONE, "confidential": True, "masked": False}


@pytest.mark.parametrize("username", ["agent", "dispatcher", "supervisor", "manager", "admin"])
async def test_confidential_caller_masked_for_hotline_staff_until_revealed(
    api: Any, world: World, username: str
) -> None:
    """Changed (issue 15): the centre sees a confidential caller masked everywhere; 显示号码
    with a reason gives the full caller and is logged (tests/test_privacy.py: the log)."""
    client: Api = await api(username)
    assert (await client.get(f"/tickets/{world.a['id']}"))["caller"] == MASKED
    items = (await client.get("/tickets"))["items"]
    assert next(i for i in items if i["id"] == world.a["id"])["caller"] == MASKED
    revealed = await client.post(f"/tickets/{world.a['id']}/caller", {"reason": "回拨市民核实诉求"})
    assert revealed["caller"] == FULL


async def test_confidential_caller_masked_in_dispatcher_action_response(
    api: Any, world: World
) -> None:
    t = await world.dispatcher.act(world.a, "urge", note="请尽快办理")
    assert t["caller"] == MASKED


async def test_ordinary_caller_visible_to_assigned_department(api: Any, world: World) -> None:
    ecology: Api = await api("ecology")
    t = await ecology.get(f"/tickets/{world.b['id']}")
    assert t["caller"] == {
        "name": "李四",
        "phone": OTHER_PHONE,
        "confidential": False,
        "masked": False,
    }


# -- the manager reads, the workflow is for others --------------------------------------------
BODIES: dict[Action, dict[str, Any]] = {
    Action.ANSWER: {"text": "答复"},
    Action.DISPATCH: {"lead": LEAD},
    Action.SIGN: {},
    Action.RETURN: {"reason": "退单理由"},
    Action.FORWARD: {"department": "150102-housing"},
    Action.REQUEST_EXTENSION: {"until": "2099-01-01T00:00:00+08:00", "reason": "需要时间"},
    Action.APPROVE_EXTENSION: {},
    Action.DENY_EXTENSION: {},
    Action.REPLY: {"text": "已办理"},
    Action.APPROVE: {},
    Action.REJECT: {"reason": "不完整"},
    Action.REVISIT: {"satisfaction": "satisfied"},
    Action.REOPEN: {"reason": "市民不满意"},
    Action.CLOSE: {},
    Action.MERGE: {},  # master filled in below
    Action.URGE: {},
    Action.EDIT: {"summary": "领导修改"},
}


def test_manager_action_table_covers_every_action() -> None:
    # 督办 (supervise) is the one action a manager (领导) takes
    assert set(BODIES) | {Action.SUPERVISE} == set(ACTIONS)


async def test_manager_reads_everything(api: Any, world: World) -> None:
    manager: Api = await api("manager")
    for t in (world.a, world.b, world.c):
        detail = await manager.get(f"/tickets/{t['id']}")
        assert detail["number"] == t["number"]
        assert {a["action"] for a in detail["actions"]} <= {"supervise"}
        assert (await manager.get(f"/tickets/{t['id']}/events"))["items"]


@pytest.mark.parametrize("action", list(BODIES), ids=str)
async def test_manager_cannot_act(api: Any, world: World, action: Action) -> None:
    manager: Api = await api("manager")
    body = {"version": world.a["version"], **BODIES[action]}
    if action is Action.MERGE:
        body["master"] = world.b["number"]
    status, reply = await status_of(manager, "POST", f"/tickets/{world.a['id']}/{action}", body)
    assert (status, reply["error"]["code"]) == (403, "role_forbidden"), reply
    after = await world.dispatcher.get(f"/tickets/{world.a['id']}")
    assert (after["version"], after["status"]) == (world.a["version"], world.a["status"])


async def test_manager_cannot_register_orders(api: Any, world: World) -> None:
    manager: Api = await api("manager")
    status, reply = await status_of(manager, "POST", "/tickets", {"content": "领导登记"})
    assert (status, reply["error"]["code"]) == (403, "role_forbidden")
    assert (await manager.get("/tickets"))["total"] == 3


# -- citizen tracking -------------------------------------------------------------------------
async def test_citizen_tracking_needs_number_and_matching_phone(api: Any, world: World) -> None:
    citizen: Api = await api()
    number = world.a["number"]
    view = await citizen.get(f"/requests/{number}", phone=PHONE)
    assert view["number"] == number
    assert view["status"] == "dispatched"
    assert view["department_name"] == "呼和浩特市住房和城乡建设局"
    # the citizen view carries no identities, notes or internal fields
    assert not {"caller", "content", "assignments", "id", "version"} & set(view)
    text = json.dumps(view, ensure_ascii=False)
    assert PHONE not in text and NAME not in text
    for phone in (OTHER_PHONE, "", "138"):
        status, body = await status_of(citizen, "GET", f"/requests/{number}?phone={phone}")
        assert (status, body["error"]["code"]) == (404, "not_found")
    # the right phone with somebody else's number
    status, _ = await status_of(citizen, "GET", f"/requests/{world.b['number']}?phone={PHONE}")
    assert status == 404


async def test_citizen_cannot_use_staff_endpoints(api: Any, world: World) -> None:
    citizen: Api = await api()
    for path in (
        "/tickets",
        f"/tickets/{world.a['id']}",
        f"/tickets/by-number/{world.a['number']}",
    ):
        status, body = await status_of(citizen, "GET", path)
        assert (status, body["error"]["code"]) == (401, "not_authenticated"), path


# -- public documents -------------------------------------------------------------------------
async def test_openapi_is_valid_31_and_lists_every_route(api: Any) -> None:
    citizen: Api = await api()
    async with citizen.session.get(citizen.base + "/api/v1/openapi.json") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    validate(doc, cls=OpenAPIV31SpecValidator)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = {(r.method, "/api/v1" + r.path) for r in ROUTES}
    assert routes <= documented, routes - documented
    assert documented <= routes, documented - routes
    for r in ROUTES:
        op = doc["paths"]["/api/v1" + r.path][r.method.lower()]
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", r.path)), r.path
        assert (r.auth == "staff") == ("security" in op), r.path
        assert str(r.status) in op["responses"], r.path
        if r.body is not None:
            assert "requestBody" in op, r.path


async def test_healthz_is_200(app_client: TestClient[Any, Any]) -> None:
    resp = await app_client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
