"""Bad input gets a precise 4xx (machine-readable error.code, Chinese error.message) and changes
nothing: the orders, their assignments and their audit events read the same before and after."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from agent_ui import accounts
from hotline.config import Settings
from tests.conftest import PASSWORD, Api
from tickets.db import Database
from tickets.tables import assignments, events, tickets

CJK = re.compile(r"[\u4e00-\u9fff]")
PHONE = "13812345678"
UNSET: Any = object()


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with its production cost takes ~0.1 s a hash and each test creates nine users;
    still real Argon2, just cheap parameters."""
    cheap = functools.partial(PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "PasswordHasher", cheap, raising=False)


# -- helpers ----------------------------------------------------------------------------------
class Reply:
    def __init__(self, status: int, body: Any, headers: Any) -> None:
        self.status = status
        self.body = body
        self.headers = headers


async def send(
    client: Api,
    method: str,
    path: str,
    body: Any = UNSET,
    *,
    data: bytes | str | None = None,
    content_type: str | None = None,
    csrf: str | Any | None = UNSET,
    params: dict[str, str] | None = None,
) -> Reply:
    """One raw request under /api/v1, with full control over body, Content-Type and CSRF."""
    headers: dict[str, str] = {}
    token = client.csrf if csrf is UNSET else csrf
    if token is not None:
        headers["X-CSRF-Token"] = token
    if body is not UNSET:
        data = json.dumps(body, ensure_ascii=False)
        content_type = content_type or "application/json"
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with client.session.request(
        method, client.base + "/api/v1" + path, data=data, headers=headers, params=params
    ) as resp:
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return Reply(resp.status, await resp.json(), resp.headers)


def error_fields(body: dict[str, Any]) -> set[str]:
    """The fields an error names: `details.field` (domain rules) or `details.fields[].field`
    (request schema)."""
    details = body["error"].get("details") or {}
    found = {str(f["field"]) for f in details.get("fields", [])}
    if "field" in details:
        found.add(str(details["field"]))
    return found


def assert_error(reply: Reply, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    err = reply.body["error"]
    assert err["code"] == code, reply.body
    assert CJK.search(err["message"]), f"message not in Chinese: {err['message']!r}"
    if field is not None:
        assert field in error_fields(reply.body), reply.body
    return err


async def _counts(db: Database) -> dict[str, int]:
    def q(conn: Any) -> dict[str, int]:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in (tickets, assignments, events)
        }

    return await db.read(q)


Snapshot = Callable[[], Awaitable[dict[str, Any]]]


@pytest.fixture
async def snapshot(api: Any, database: Database) -> Snapshot:
    """Everything a bad request could have touched: row counts, every order and its events."""
    admin: Api = await api("admin")

    async def take() -> dict[str, Any]:
        listing = await admin.get("/tickets", limit=200)
        trail = {t["id"]: await admin.get(f"/tickets/{t['id']}/events") for t in listing["items"]}
        return {"counts": await _counts(database), "tickets": listing, "events": trail}

    return take


async def new_order(api: Any, **fields: Any) -> dict[str, Any]:
    """A work order registered by an agent (status new), as the agent sees it."""
    agent: Api = await api("agent")
    body = {"content": "小区供暖温度不达标，室内只有十四度", "phone": PHONE, **fields}
    return await agent.post("/tickets", body, 201)  # type: ignore[no-any-return]


async def dispatched_order(api: Any, **fields: Any) -> dict[str, Any]:
    t = await new_order(api, **fields)
    dispatcher: Api = await api("dispatcher")
    return await dispatcher.act(t, "dispatch", lead="150100-housing")  # type: ignore[no-any-return]


# -- body format --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code"),
    [
        pytest.param(b'{"content": "x"', "application/json", 400, "malformed_json", id="truncated"),
        pytest.param(b"content=x", "application/json", 400, "malformed_json", id="not-json"),
        pytest.param(b"", "application/json", 400, "malformed_json", id="empty"),
        pytest.param(b"\xff\xfe{}", "application/json", 400, "malformed_json", id="not-utf8"),
        pytest.param(b'["content"]', "application/json", 400, "malformed_json", id="array"),
        pytest.param(b'"content"', "application/json", 400, "malformed_json", id="string"),
        pytest.param(b"null", "application/json", 400, "malformed_json", id="null"),
        pytest.param(b"42", "application/json", 400, "malformed_json", id="number"),
        pytest.param(
            b'{"content": "x"}', "text/plain", 415, "unsupported_media_type", id="text-plain"
        ),
        pytest.param(
            b"content=x",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
            id="form",
        ),
        pytest.param(
            b'{"content": "x"}',
            "application/octet-stream",
            415,
            "unsupported_media_type",
            id="octet-stream",
        ),
    ],
)
async def test_intake_body_format_wrong_rejected_without_change(
    api: Any, snapshot: Snapshot, raw: bytes, content_type: str, status: int, code: str
) -> None:
    citizen: Api = await api()
    before = await snapshot()
    reply = await send(citizen, "POST", "/requests", data=raw, content_type=content_type)
    assert_error(reply, status, code)
    assert await snapshot() == before


async def test_action_body_format_wrong_rejected_without_change(
    api: Any, snapshot: Snapshot
) -> None:
    t = await new_order(api)
    dispatcher: Api = await api("dispatcher")
    path = f"/tickets/{t['id']}/dispatch"
    before = await snapshot()
    assert_error(
        await send(dispatcher, "POST", path, data=b"{version: 1", content_type="application/json"),
        400,
        "malformed_json",
    )
    assert_error(
        await send(dispatcher, "POST", path, data=b"[1]", content_type="application/json"),
        400,
        "malformed_json",
    )
    payload = json.dumps({"version": t["version"], "lead": "150100-housing"})
    assert_error(
        await send(dispatcher, "POST", path, data=payload, content_type="text/plain"),
        415,
        "unsupported_media_type",
    )
    assert await snapshot() == before


async def test_intake_body_over_max_body_bytes_is_413(
    api: Any, snapshot: Snapshot, settings: Settings
) -> None:
    limit = settings.server.max_body_bytes
    assert limit == 64 * 1024
    citizen: Api = await api()
    before = await snapshot()
    body = {"content": "x" * 10, "address": "a" * (limit + 1024)}
    raw = json.dumps(body).encode()
    assert len(raw) > limit
    reply = await send(citizen, "POST", "/requests", data=raw, content_type="application/json")
    assert_error(reply, 413, "body_too_large")
    assert await snapshot() == before


async def test_body_too_large_error_names_the_limit(api: Any, settings: Settings) -> None:
    citizen: Api = await api()
    raw = b'{"content": "' + b"x" * (settings.server.max_body_bytes + 1) + b'"}'
    reply = await send(citizen, "POST", "/requests", data=raw, content_type="application/json")
    err = assert_error(reply, 413, "body_too_large")
    assert err["details"]["max_bytes"] == settings.server.max_body_bytes, err


async def test_staff_action_body_over_max_body_bytes_is_413(
    api: Any, snapshot: Snapshot, settings: Settings
) -> None:
    t = await new_order(api)
    agent: Api = await api("agent")
    before = await snapshot()
    body = {"version": t["version"], "text": "答" * settings.server.max_body_bytes}
    assert_error(
        await send(agent, "POST", f"/tickets/{t['id']}/answer", body), 413, "body_too_large"
    )
    assert await snapshot() == before


# -- citizen intake: fields -----------------------------------------------------------------------
INTAKE_CASES = [
    pytest.param({"content": "x", "colour": "red"}, "unknown_field", "colour", id="unknown-field"),
    pytest.param({"content": "x", "Phone": PHONE}, "unknown_field", "Phone", id="field-case"),
    pytest.param({"phone": PHONE}, "missing_field", "content", id="missing-content"),
    pytest.param({}, "missing_field", "content", id="empty-object"),
    pytest.param({"content": ""}, "invalid_input", "content", id="empty-content"),
    pytest.param({"content": " \t\n\u3000 "}, "invalid_input", "content", id="blank-content"),
    pytest.param({"content": None}, "invalid_field", "content", id="null-content"),
    pytest.param({"content": 12345}, "invalid_field", "content", id="number-content"),
    pytest.param({"content": ["a"]}, "invalid_field", "content", id="list-content"),
    pytest.param({"content": "x", "phone": "12345"}, "invalid_input", "phone", id="phone-short"),
    pytest.param(
        {"content": "x", "phone": "23812345678"}, "invalid_input", "phone", id="phone-bad-prefix"
    ),
    pytest.param(
        {"content": "x", "phone": "138123456789"}, "invalid_input", "phone", id="phone-long"
    ),
    pytest.param(
        {"content": "x", "phone": "138-abcd-5678"}, "invalid_input", "phone", id="phone-letters"
    ),
    pytest.param(
        {"content": "x", "phone": "4711234567"}, "invalid_input", "phone", id="landline-no-0"
    ),
    pytest.param({"content": "x", "phone": 13812345678}, "invalid_field", "phone", id="phone-int"),
    pytest.param({"content": "x", "region": "1501"}, "invalid_field", "region", id="region-short"),
    pytest.param(
        {"content": "x", "region": "hohhot"}, "invalid_field", "region", id="region-letters"
    ),
    pytest.param(
        {"content": "x", "region": "999999"}, "invalid_input", "region", id="region-unknown"
    ),
    pytest.param({"content": "x", "kind": "bogus"}, "invalid_field", "kind", id="kind"),
    pytest.param({"content": "x", "language": "en"}, "invalid_field", "language", id="language"),
    pytest.param(
        {"content": "x", "confidential": "maybe"}, "invalid_field", "confidential", id="bool"
    ),
    pytest.param(
        {"content": "x", "confidential": True}, "invalid_input", "phone", id="confidential-no-phone"
    ),
    pytest.param({"content": "x", "name": "名" * 51}, "invalid_input", "name", id="name-too-long"),
    pytest.param(
        {"content": "x", "address": "址" * 201}, "invalid_input", "address", id="address-too-long"
    ),
]


@pytest.mark.parametrize(("body", "code", "field"), INTAKE_CASES)
async def test_intake_bad_field_is_422_without_change(
    api: Any, snapshot: Snapshot, body: dict[str, Any], code: str, field: str
) -> None:
    citizen: Api = await api()
    before = await snapshot()
    assert_error(await send(citizen, "POST", "/requests", body), 422, code, field)
    assert await snapshot() == before


async def test_intake_several_bad_fields_are_all_named(api: Any, snapshot: Snapshot) -> None:
    citizen: Api = await api()
    before = await snapshot()
    reply = await send(citizen, "POST", "/requests", {"colour": "red", "kind": "bogus"})
    assert_error(reply, 422, "validation_error")
    assert error_fields(reply.body) == {"colour", "kind", "content"}
    codes = {f["field"]: f["code"] for f in reply.body["error"]["details"]["fields"]}
    assert codes == {"colour": "unknown_field", "kind": "invalid_field", "content": "missing_field"}
    assert await snapshot() == before


async def test_intake_content_over_limit_names_the_limit(
    api: Any, snapshot: Snapshot, settings: Settings
) -> None:
    limit = settings.intake.max_content_chars
    citizen: Api = await api()
    before = await snapshot()
    reply = await send(citizen, "POST", "/requests", {"content": "诉" * (limit + 1)})
    err = assert_error(reply, 422, "invalid_input", "content")
    assert str(limit) in err["message"], err
    assert err["details"]["limit"] == limit
    assert await snapshot() == before
    # exactly at the limit is accepted
    await citizen.post("/requests", {"content": "诉" * limit}, 201)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("+8613812345678", "13812345678"),
        ("0086 138 1234 5678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("0471-1234567", "04711234567"),
        ("(0471) 12345678", "047112345678"),
        ("010-12345678", "01012345678"),
    ],
)
async def test_intake_phone_valid_forms_accepted_and_normalised(
    api: Any, raw: str, normalised: str
) -> None:
    citizen: Api = await api()
    created = await citizen.post("/requests", {"content": "路灯不亮", "phone": raw}, 201)
    dispatcher: Api = await api("dispatcher")
    t = await dispatcher.get(f"/tickets/by-number/{created['number']}")
    assert t["caller"]["phone"] == normalised
    # tracking works with the canonical form and with the form the citizen typed
    for phone in (normalised, raw):
        tracked = await citizen.get(f"/requests/{created['number']}", phone=phone)
        assert tracked["number"] == created["number"]


# -- staff bodies ---------------------------------------------------------------------------------
STAFF_TICKET_CASES = [
    pytest.param({"content": "x", "channel": "fax"}, "channel", id="channel"),
    pytest.param({"content": "x", "urgency": "asap"}, "urgency", id="urgency"),
    pytest.param({"content": "x", "kind": "rant"}, "kind", id="kind"),
    pytest.param({"content": "x", "category": "供暖"}, "category", id="category-not-list"),
    pytest.param({"content": "x", "category": ["类" * 51]}, "category.0", id="category-long"),
]


@pytest.mark.parametrize(("body", "field"), STAFF_TICKET_CASES)
async def test_staff_ticket_bad_enum_is_422_without_change(
    api: Any, snapshot: Snapshot, body: dict[str, Any], field: str
) -> None:
    agent: Api = await api("agent")
    before = await snapshot()
    assert_error(await send(agent, "POST", "/tickets", body), 422, "invalid_field", field)
    assert await snapshot() == before


ACTION_BODY_CASES = [
    pytest.param("dispatch", {"lead": "150100-housing"}, "missing_field", "version", id="no-ver"),
    pytest.param(
        "dispatch", {"version": 0, "lead": "150100-housing"}, "invalid_field", "version", id="ver-0"
    ),
    pytest.param(
        "dispatch",
        {"version": "one", "lead": "150100-housing"},
        "invalid_field",
        "version",
        id="ver-str",
    ),
    pytest.param("dispatch", {"version": 1}, "missing_field", "lead", id="no-lead"),
    pytest.param(
        "dispatch",
        {"version": 1, "lead": "150100-housing", "urgent": True},
        "unknown_field",
        "urgent",
        id="dispatch-unknown",
    ),
    pytest.param(
        "dispatch",
        {"version": 1, "lead": "999999-nowhere"},
        "invalid_input",
        "department",
        id="lead-unknown",
    ),
    pytest.param(
        "dispatch",
        {"version": 1, "lead": "150100-housing", "assists": ["150100-nothing"]},
        "invalid_input",
        "department",
        id="assist-unknown",
    ),
    pytest.param(
        "dispatch",
        {"version": 1, "lead": "150100-housing", "assists": ["150100-housing"]},
        "invalid_input",
        "assists",
        id="lead-is-assist",
    ),
    pytest.param(
        "answer", {"version": 1, "text": "   "}, "invalid_input", "answer", id="answer-blank"
    ),
    pytest.param("edit", {"version": 1, "kind": "rant"}, "invalid_field", "kind", id="edit-kind"),
    pytest.param(
        "edit", {"version": 1, "urgency": "asap"}, "invalid_field", "urgency", id="edit-urgency"
    ),
    pytest.param(
        "edit", {"version": 1, "region": "999999"}, "invalid_input", "region", id="edit-region"
    ),
    pytest.param("edit", {"version": 1}, "invalid_input", "changes", id="edit-nothing"),
    pytest.param(
        "edit", {"version": 1, "content": "改"}, "unknown_field", "content", id="edit-content"
    ),
    pytest.param(
        "merge", {"version": 1, "master": "abc"}, "invalid_field", "master", id="merge-number"
    ),
    pytest.param(
        "merge",
        {"version": 1, "master": "20990101000001"},
        "invalid_input",
        "master",
        id="merge-unknown",
    ),
    pytest.param(
        "revisit",
        {"version": 1, "satisfaction": "great"},
        "invalid_field",
        "satisfaction",
        id="revisit-enum",
    ),
]


@pytest.mark.parametrize(("action", "body", "code", "field"), ACTION_BODY_CASES)
async def test_action_bad_body_is_422_without_change(
    api: Any, snapshot: Snapshot, action: str, body: dict[str, Any], code: str, field: str
) -> None:
    t = await new_order(api)
    assert t["version"] == 1
    dispatcher: Api = await api("dispatcher")
    before = await snapshot()
    reply = await send(dispatcher, "POST", f"/tickets/{t['id']}/{action}", body)
    assert_error(reply, 422, code, field)
    assert await snapshot() == before


async def test_merge_into_itself_is_422(api: Any, snapshot: Snapshot) -> None:
    t = await new_order(api)
    agent: Api = await api("agent")
    before = await snapshot()
    reply = await send(
        agent, "POST", f"/tickets/{t['id']}/merge", {"version": 1, "master": t["number"]}
    )
    assert_error(reply, 422, "invalid_input", "master")
    assert await snapshot() == before


# -- workflow: state, role, department, version ------------------------------------------------
async def _returned(api: Any) -> tuple[dict[str, Any], Api]:
    t = await dispatched_order(api)
    housing: Api = await api("housing")
    t = await housing.act(t, "return", reason="不属于本单位职责")
    return t, housing


async def _accepted(api: Any) -> tuple[dict[str, Any], Api]:
    t = await dispatched_order(api)
    housing: Api = await api("housing")
    return await housing.act(t, "sign"), housing


ILLEGAL = [
    # (how to get there, who, action, body)
    pytest.param("new", "dispatcher", "approve", {}, id="approve-new"),
    pytest.param("new", "dispatcher", "reject", {"reason": "答复不完整"}, id="reject-new"),
    pytest.param("new", "agent", "close", {}, id="close-new"),
    pytest.param("new", "agent", "revisit", {"satisfaction": "satisfied"}, id="revisit-new"),
    pytest.param("new", "supervisor", "urge", {}, id="urge-new"),
    pytest.param("new", "dispatcher", "approve_extension", {}, id="approve-ext-new"),
    pytest.param("dispatched", "agent", "answer", {"text": "答复"}, id="answer-dispatched"),
    pytest.param("dispatched", "housing", "reply", {"text": "已办理"}, id="reply-unsigned"),
    pytest.param("accepted", "housing", "sign", {}, id="sign-twice"),
    pytest.param("returned", "housing", "sign", {}, id="sign-returned"),
    pytest.param("answered", "dispatcher", "dispatch", {"lead": "150100-housing"}, id="dispatch"),
    pytest.param("answered", "agent", "answer", {"text": "再答一次"}, id="answer-twice"),
]


@pytest.mark.parametrize(("state", "who", "action", "body"), ILLEGAL)
async def test_action_in_wrong_state_is_409_illegal_transition(
    api: Any, snapshot: Snapshot, state: str, who: str, action: str, body: dict[str, Any]
) -> None:
    if state == "new":
        t = await new_order(api)
    elif state == "dispatched":
        t = await dispatched_order(api)
    elif state == "accepted":
        t, _ = await _accepted(api)
    elif state == "returned":
        t, _ = await _returned(api)
    else:
        agent: Api = await api("agent")
        t = await agent.act(await new_order(api), "answer", text="请携带身份证到政务大厅办理。")
    assert t["status"] == state
    actor: Api = await api(who)
    before = await snapshot()
    reply = await send(
        actor, "POST", f"/tickets/{t['id']}/{action}", {"version": t["version"], **body}
    )
    assert_error(reply, 409, "illegal_transition")
    assert await snapshot() == before


async def test_citizen_rating_an_unanswered_order_is_409(api: Any, snapshot: Snapshot) -> None:
    citizen: Api = await api()
    created = await citizen.post("/requests", {"content": "路灯不亮", "phone": PHONE}, 201)
    before = await snapshot()
    reply = await send(
        citizen,
        "POST",
        f"/requests/{created['number']}/rating",
        {"phone": PHONE, "satisfaction": "satisfied"},
    )
    assert_error(reply, 409, "illegal_transition")
    assert await snapshot() == before


ROLE_FORBIDDEN = [
    pytest.param("replied", "agent", "approve", {}, id="agent-approves-review"),
    pytest.param("replied", "agent", "reject", {"reason": "不完整"}, id="agent-rejects-review"),
    pytest.param("new", "manager", "dispatch", {"lead": "150100-housing"}, id="manager-dispatch"),
    pytest.param("new", "manager", "answer", {"text": "答复"}, id="manager-answers"),
    pytest.param("new", "admin", "dispatch", {"lead": "150100-housing"}, id="admin-dispatch"),
    pytest.param("dispatched", "agent", "supervise", {}, id="agent-supervises"),
    pytest.param("dispatched", "agent", "urge", {}, id="agent-urges"),
    pytest.param("dispatched", "dispatcher", "sign", {}, id="dispatcher-signs"),
    pytest.param(
        "dispatched", "housing", "dispatch", {"lead": "150100-urban"}, id="department-dispatch"
    ),
    pytest.param("dispatched", "housing", "close", {}, id="department-closes"),
]


@pytest.mark.parametrize(("state", "who", "action", "body"), ROLE_FORBIDDEN)
async def test_action_by_wrong_role_is_403_role_forbidden(
    api: Any, snapshot: Snapshot, state: str, who: str, action: str, body: dict[str, Any]
) -> None:
    if state == "new":
        t = await new_order(api)
    elif state == "dispatched":
        t = await dispatched_order(api)
    else:
        t, housing = await _accepted(api)
        t = await housing.act(t, "reply", text="已协调供热公司整改。")
    assert t["status"] == state
    actor: Api = await api(who)
    before = await snapshot()
    reply = await send(
        actor, "POST", f"/tickets/{t['id']}/{action}", {"version": t["version"], **body}
    )
    assert_error(reply, 403, "role_forbidden")
    assert await snapshot() == before


@pytest.mark.parametrize("who", ["manager", "housing", "admin"])
async def test_create_ticket_by_wrong_role_is_403(api: Any, snapshot: Snapshot, who: str) -> None:
    actor: Api = await api(who)
    before = await snapshot()
    reply = await send(actor, "POST", "/tickets", {"content": "登记一张工单"})
    assert_error(reply, 403, "role_forbidden")
    assert await snapshot() == before


async def test_other_departments_order_is_404_and_not_listed(api: Any, snapshot: Snapshot) -> None:
    t = await dispatched_order(api)  # to 150100-housing
    ecology: Api = await api("ecology")
    before = await snapshot()
    for path in (f"/tickets/{t['id']}", f"/tickets/by-number/{t['number']}"):
        assert_error(await send(ecology, "GET", path), 404, "not_found")
    assert_error(await send(ecology, "GET", f"/tickets/{t['id']}/events"), 404, "not_found")
    for action, body in [
        ("sign", {}),
        ("return", {"reason": "不是我们的"}),
        ("reply", {"text": "已办理"}),
        ("request_extension", {"until": "2099-01-01T00:00:00+08:00", "reason": "需要时间"}),
    ]:
        reply = await send(
            ecology, "POST", f"/tickets/{t['id']}/{action}", {"version": t["version"], **body}
        )
        assert_error(reply, 404, "not_found")
    listing = await ecology.get("/tickets")
    assert listing["total"] == 0
    assert listing["items"] == []
    assert await snapshot() == before
    # an order not dispatched yet belongs to no department: signing it is not "wrong state"
    # but "not yours", so it reveals nothing about the order
    fresh = await new_order(api)
    before = await snapshot()
    housing: Api = await api("housing")
    reply = await send(housing, "POST", f"/tickets/{fresh['id']}/sign", {"version": 1})
    assert_error(reply, 404, "not_found")
    assert await snapshot() == before


async def test_stale_version_is_409_version_conflict(api: Any, snapshot: Snapshot) -> None:
    t = await new_order(api)
    dispatcher: Api = await api("dispatcher")
    edited = await dispatcher.act(t, "edit", summary="市民反映供暖不达标")
    assert edited["version"] == t["version"] + 1
    before = await snapshot()
    for version in (t["version"], edited["version"] + 1):
        reply = await send(
            dispatcher,
            "POST",
            f"/tickets/{t['id']}/dispatch",
            {"version": version, "lead": "150100-housing"},
        )
        err = assert_error(reply, 409, "version_conflict")
        assert err["details"]["current_version"] == edited["version"]
    assert await snapshot() == before


# -- authentication and CSRF ------------------------------------------------------------------
@pytest.mark.parametrize("token", [None, "", "not-the-token"], ids=["missing", "empty", "wrong"])
async def test_cookie_write_without_valid_csrf_is_403(
    api: Any, snapshot: Snapshot, token: str | None
) -> None:
    t = await new_order(api)
    dispatcher: Api = await api("dispatcher")
    before = await snapshot()
    body = {"version": t["version"], "lead": "150100-housing"}
    reply = await send(dispatcher, "POST", f"/tickets/{t['id']}/dispatch", body, csrf=token)
    assert_error(reply, 403, "csrf_failed")
    reply = await send(dispatcher, "POST", "/tickets", {"content": "登记"}, csrf=token)
    assert_error(reply, 403, "csrf_failed")
    # another user's token does not do either
    other: Api = await api("supervisor")
    reply = await send(dispatcher, "POST", f"/tickets/{t['id']}/dispatch", body, csrf=other.csrf)
    assert_error(reply, 403, "csrf_failed")
    assert await snapshot() == before
    # reads need no token
    assert (await send(dispatcher, "GET", f"/tickets/{t['id']}", csrf=None)).status == 200


async def test_form_post_without_csrf_is_403(api: Any, snapshot: Snapshot) -> None:
    t = await new_order(api)
    dispatcher: Api = await api("dispatcher")
    before = await snapshot()
    reply = await send(
        dispatcher,
        "POST",
        f"/tickets/{t['id']}/dispatch",
        data="version=1&lead=150100-housing",
        content_type="application/x-www-form-urlencoded",
        csrf=None,
    )
    assert_error(reply, 403, "csrf_failed")
    assert await snapshot() == before


async def test_logout_needs_csrf(api: Any) -> None:
    dispatcher: Api = await api("dispatcher")
    assert_error(await send(dispatcher, "DELETE", "/session", csrf=None), 403, "csrf_failed")
    assert (await send(dispatcher, "GET", "/session")).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tickets", UNSET),
        ("GET", "/tickets/1", UNSET),
        ("GET", "/tickets/1/events", UNSET),
        ("GET", "/session", UNSET),
        ("GET", "/departments", UNSET),
        ("DELETE", "/session", UNSET),
        ("POST", "/tickets", {"content": "登记"}),
        ("POST", "/tickets/1/dispatch", {"version": 1, "lead": "150100-housing"}),
        ("POST", "/tickets/1/answer", {"version": 1, "text": "答复"}),
    ],
)
async def test_no_session_is_401(
    api: Any, snapshot: Snapshot, method: str, path: str, body: Any
) -> None:
    await new_order(api)
    citizen: Api = await api()
    before = await snapshot()
    assert_error(await send(citizen, method, path, body), 401, "not_authenticated")
    assert await snapshot() == before


async def test_forged_session_cookie_is_401(api: Any) -> None:
    citizen: Api = await api()
    citizen.session.cookie_jar.update_cookies({"hotline_session": "forged-token"})
    assert_error(await send(citizen, "GET", "/tickets"), 401, "not_authenticated")


async def test_logged_out_session_is_401(api: Any) -> None:
    dispatcher: Api = await api("dispatcher")
    token = next(c.value for c in dispatcher.session.cookie_jar if c.key == "hotline_session")
    assert (await send(dispatcher, "DELETE", "/session")).status == 200
    dispatcher.session.cookie_jar.update_cookies({"hotline_session": token})
    assert_error(await send(dispatcher, "GET", "/tickets"), 401, "not_authenticated")


# -- query parameters and paths ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"channel": "fax"}, "channel"),
        ({"kind": "rant"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "page_size_max+1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
async def test_tickets_bad_query_is_422(
    api: Any, settings: Settings, params: dict[str, str], field: str
) -> None:
    if params.get("limit") == "page_size_max+1":
        params = {"limit": str(settings.intake.page_size_max + 1)}
    dispatcher: Api = await api("dispatcher")
    reply = await send(dispatcher, "GET", "/tickets", params=params)
    assert_error(reply, 422, "invalid_input", field)


async def test_tickets_limit_at_bounds_is_accepted(api: Any, settings: Settings) -> None:
    dispatcher: Api = await api("dispatcher")
    await new_order(api)
    await new_order(api)
    one = await dispatcher.get("/tickets", limit=1)
    assert (one["total"], len(one["items"])) == (2, 1)
    page = await dispatcher.get("/tickets", limit=settings.intake.page_size_max, offset=1)
    assert (page["total"], len(page["items"])) == (2, 1)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("GET", "/tickets/1/nope", 404, "not_found"),
        ("POST", "/tickets/1/teleport", 404, "not_found"),
        ("GET", "/tickets/999999", 404, "not_found"),
        ("GET", "/tickets/by-number/20990101000001", 404, "not_found"),
        ("GET", "/tickets/abc", 422, "invalid_input"),
        ("PUT", "/tickets", 405, "method_not_allowed"),
        ("DELETE", "/requests", 405, "method_not_allowed"),
    ],
)
async def test_unknown_path_or_method_is_json_error(
    api: Any, method: str, path: str, status: int, code: str
) -> None:
    dispatcher: Api = await api("dispatcher")
    assert_error(await send(dispatcher, method, path), status, code)


async def test_action_on_missing_order_is_404(api: Any, snapshot: Snapshot) -> None:
    dispatcher: Api = await api("dispatcher")
    before = await snapshot()
    reply = await send(
        dispatcher, "POST", "/tickets/999999/dispatch", {"version": 1, "lead": "150100-housing"}
    )
    assert_error(reply, 404, "not_found")
    assert await snapshot() == before


# -- login ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("username", "password"),
    [("dispatcher", "wrong-password"), ("nobody", PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
async def test_login_wrong_credentials_is_401_without_cookie(
    api: Any, username: str, password: str
) -> None:
    client: Api = await api()
    reply = await send(client, "POST", "/session", {"username": username, "password": password})
    err = assert_error(reply, 401, "not_authenticated")
    assert err["message"] == "用户名或密码错误"  # the same for unknown users: no enumeration
    assert "Set-Cookie" not in reply.headers
    assert_error(await send(client, "GET", "/session"), 401, "not_authenticated")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"username": "dispatcher"}, "missing_field"),
        ({"password": PASSWORD}, "missing_field"),
        ({"username": "", "password": PASSWORD}, "invalid_field"),
        ({"username": "dispatcher", "password": PASSWORD, "remember": True}, "unknown_field"),
    ],
)
async def test_login_bad_body_is_422(api: Any, body: dict[str, Any], code: str) -> None:
    client: Api = await api()
    assert_error(await send(client, "POST", "/session", body), 422, code)


async def test_login_throttled_after_max_failures(api: Any, settings: Settings) -> None:
    already: Api = await api("dispatcher")  # logged in before the lockout
    client: Api = await api()
    wrong = {"username": "supervisor", "password": "wrong-password"}
    for _ in range(settings.security.login_max_failures):
        assert_error(await send(client, "POST", "/session", wrong), 401, "not_authenticated")
    reply = await send(client, "POST", "/session", wrong)
    assert_error(reply, 429, "login_throttled")
    retry_after = int(reply.headers["Retry-After"])
    assert 0 < retry_after <= settings.security.login_lockout_s + 1
    # while locked the right password is refused too, and no session is made
    right = {"username": "supervisor", "password": PASSWORD}
    reply = await send(client, "POST", "/session", right)
    assert_error(reply, 429, "login_throttled")
    assert "Set-Cookie" not in reply.headers
    assert_error(await send(client, "GET", "/session"), 401, "not_authenticated")
    # sessions made before the lockout keep working
    assert (await already.get("/session"))["user"]["username"] == "dispatcher"


async def test_login_success_resets_failure_count(api: Any, settings: Settings) -> None:
    client: Api = await api()
    wrong = {"username": "supervisor", "password": "wrong-password"}
    for _ in range(settings.security.login_max_failures - 1):
        assert_error(await send(client, "POST", "/session", wrong), 401, "not_authenticated")
    await client.login("supervisor")
    for _ in range(settings.security.login_max_failures - 1):
        assert_error(await send(client, "POST", "/session", wrong), 401, "not_authenticated")
    await client.login("supervisor")


# -- citizen tracking -------------------------------------------------------------------------
async def test_tracking_with_wrong_phone_is_404_without_leak(api: Any) -> None:
    citizen: Api = await api()
    created = await citizen.post("/requests", {"content": "路灯不亮", "phone": PHONE}, 201)
    number = created["number"]
    other = await citizen.post("/requests", {"content": "噪音扰民", "phone": "13900000000"}, 201)
    replies = [
        await send(citizen, "GET", f"/requests/{number}", params={"phone": "13912345678"}),
        await send(citizen, "GET", f"/requests/{number}", params={"phone": "not-a-phone"}),
        await send(citizen, "GET", f"/requests/{number}", params={"phone": ""}),
        await send(citizen, "GET", f"/requests/{number}"),
        await send(citizen, "GET", "/requests/20990101000001", params={"phone": PHONE}),
        await send(citizen, "GET", f"/requests/{other['number']}", params={"phone": PHONE}),
    ]
    bodies = []
    for reply in replies:
        assert_error(reply, 404, "not_found")
        bodies.append(reply.body)
    # a wrong phone reads exactly like a number that does not exist
    assert all(b == bodies[0] for b in bodies), bodies
    assert number not in json.dumps(bodies, ensure_ascii=False)


async def test_rating_with_wrong_phone_is_404_without_change(api: Any, snapshot: Snapshot) -> None:
    t = await new_order(api)
    agent: Api = await api("agent")
    await agent.act(t, "answer", text="请携带身份证到政务大厅办理。")
    citizen: Api = await api()
    before = await snapshot()
    reply = await send(
        citizen,
        "POST",
        f"/requests/{t['number']}/rating",
        {"phone": "13900000000", "satisfaction": "unsatisfied"},
    )
    assert_error(reply, 404, "not_found")
    assert await snapshot() == before
