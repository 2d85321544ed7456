"""Defects an outside probe found (issue 10), each shown first: dates that broke orders for
good, a former department still reading later work, NUL on PostgreSQL, inputs that crashed
with 500, the login form's CSRF, roles, the Secure cookie, and web intake's idempotency."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from hotline.config import Settings
from tests.conftest import PASSWORD, Api, make_settings
from tests.test_bad_input import (
    Snapshot,
    assert_error,
    dispatched_order,
    send,
    snapshot,  # noqa: F401  (fixture)
)
from tickets.db import Database
from tickets.tables import assignments

PHONE = "13812345678"


# -- 2. far dates are refused, and a stored one no longer breaks reads -----------------------------
async def test_extension_to_year_9999_is_refused(api: Any, snapshot: Snapshot) -> None:  # noqa: F811
    t = await dispatched_order(api)
    housing: Api = await api("housing")
    t = await housing.act(t, "sign")
    before = await snapshot()
    for until in ("9999-12-31T23:59:59Z", "0001-01-01T00:00:00+08:00", "2000-01-01T00:00:00Z"):
        reply = await send(
            housing,
            "POST",
            f"/tickets/{t['id']}/request_extension",
            {"version": t["version"], "until": until, "reason": "需要时间"},
        )
        assert_error(reply, 422, "invalid_input", field="until")
    assert await snapshot() == before
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    await housing.act(t, "request_extension", until=later, reason="需要时间")


async def test_an_extreme_stored_date_does_not_break_reads(api: Any, database: Database) -> None:
    """Rows written before the bound (or by hand) still read: lists, details, events."""
    t = await dispatched_order(api)
    t = await (await api("housing")).act(t, "sign")
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    database.run_write(
        lambda c: c.execute(
            assignments.update()
            .where(assignments.c.ticket_id == t["id"])
            .values(extension_state="requested", extension_until=far, reply_due=far)
        )
    )
    supervisor: Api = await api("supervisor")
    got = await supervisor.get(f"/tickets/{t['id']}")
    assert got["assignments"][0]["extension"]["until"].startswith("9999-12-31")
    await supervisor.get("/tickets")
    await supervisor.get(f"/tickets/{t['id']}/events")
    # granting it is refused cleanly (out of range), not a hang or a 500; denying works
    reply = await send(
        supervisor, "POST", f"/tickets/{t['id']}/approve_extension", {"version": got["version"]}
    )
    assert_error(reply, 422, "invalid_input", field="until")
    reply = await send(
        supervisor, "POST", f"/tickets/{t['id']}/deny_extension", {"version": got["version"]}
    )
    assert reply.status == 200, reply.body


# -- 6. a former department sees its own part only -------------------------------------------------
async def test_returned_department_does_not_read_later_work(api: Any) -> None:
    t = await dispatched_order(api)  # to 150100-housing
    housing: Api = await api("housing")
    t = await housing.act(t, "return", reason="不属于住建职责")
    dispatcher: Api = await api("dispatcher")
    t = await dispatcher.act(t, "dispatch", lead="150100-urban")
    urban: Api = await api("urban")
    t = await urban.act(t, "sign")
    t = await urban.act(t, "reply", text="城管已拆除违建")
    supervisor: Api = await api("supervisor")
    t = await supervisor.act(t, "approve")

    seen = await housing.get(f"/tickets/{t['id']}")
    assert seen["answer"] is None  # the later answer is not its business
    assert [a["department"] for a in seen["assignments"]] == ["150100-housing"]
    assert "城管已拆除违建" not in json.dumps(seen, ensure_ascii=False)
    trail = await housing.get(f"/tickets/{t['id']}/events")
    assert [e["action"] for e in trail["items"]][-1] == "return"
    assert "城管已拆除违建" not in json.dumps(trail, ensure_ascii=False)
    clocks = await housing.get(f"/tickets/{t['id']}/clocks")
    own = {a["id"] for a in seen["assignments"]}
    assert all(c["assignment_id"] in own for c in clocks["items"])
    # the current department reads it all
    assert (await urban.get(f"/tickets/{t['id']}"))["answer"] == "城管已拆除违建"


async def test_replied_department_of_an_earlier_round_does_not_read_the_next(api: Any) -> None:
    t = await dispatched_order(api)
    housing: Api = await api("housing")
    t = await housing.act(t, "sign")
    t = await housing.act(t, "reply", text="第一轮答复")
    supervisor: Api = await api("supervisor")
    t = await supervisor.act(t, "approve")
    t = await supervisor.act(t, "revisit", satisfaction="unsatisfied", note="没解决")
    t = await supervisor.act(t, "dispatch", lead="150100-urban")
    urban: Api = await api("urban")
    t = await urban.act(t, "sign")
    await urban.act(t, "reply", text="第二轮答复")
    seen = json.dumps(await housing.get(f"/tickets/{t['id']}"), ensure_ascii=False)
    assert "第一轮答复" in seen and "第二轮答复" not in seen


# -- 7. control characters, the same on both stores ---------------------------------------------
@pytest.mark.parametrize(
    "text", ["路灯\x00不亮", "路灯\x07不亮", "路灯\ud800不亮"], ids=["nul", "bel", "surrogate"]
)
async def test_control_characters_are_refused_in_json(api: Any, text: str) -> None:
    citizen: Api = await api()
    reply = await send(
        citizen,
        "POST",
        "/requests",
        data=json.dumps({"content": text, "phone": PHONE}),
        content_type="application/json",
    )
    assert_error(reply, 422, "invalid_input", field="content")
    reply = await send(citizen, "POST", "/session", {"username": "a\x00b", "password": "x"})
    assert reply.status == 422


async def test_control_characters_are_refused_in_query_and_forms(
    api: Any, http_session: Any
) -> None:
    dispatcher: Api = await api("dispatcher")
    reply = await send(dispatcher, "GET", "/tickets", params={"q": "路灯\x00"})
    assert_error(reply, 422, "invalid_input", field="q")
    session, base = http_session()
    async with session.post(base + "/", data={"content": "路灯\x00不亮", "phone": PHONE}) as resp:
        assert resp.status == 422
    async with session.post(
        base + "/staff/login", data={"username": "a\x00", "password": "b"}
    ) as resp:
        assert resp.status == 422


async def test_kannel_message_with_nul_is_kept_without_it(api: Any, http_session: Any) -> None:
    session, base = http_session()
    params = {"from": "13812340000", "to": "12345", "text": "路灯\x00不亮了", "id": "nul-1"}
    async with session.get(base + "/api/v1/sms/kannel", params=params) as resp:
        assert resp.status == 200, await resp.text()
    agent: Api = await api("agent")
    listing = await agent.get("/tickets", channel="sms")
    assert [t["content"] for t in listing["items"]] == ["路灯不亮了"]


# -- 8. inputs that crashed with 500 ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[" * 5000 + "]" * 5000, "malformed_json"),
        ('{"content": ' + "[" * 100 + "1" + "]" * 100 + "}", "malformed_json"),
        ('{"content": "x", "phone": ' + "9" * 5000 + "}", "malformed_json"),
    ],
    ids=["deep-array", "deep-object", "huge-integer"],
)
async def test_pathological_json_is_400(api: Any, raw: str, code: str) -> None:
    citizen: Api = await api()
    reply = await send(citizen, "POST", "/requests", data=raw, content_type="application/json")
    assert_error(reply, 400, code)


async def test_ids_past_bigint_are_404(api: Any) -> None:
    admin: Api = await api("admin")
    for tid in (2**63, 2**64 + 5, 10**30):
        assert_error(await send(admin, "GET", f"/tickets/{tid}"), 404, "not_found")
        assert_error(await send(admin, "GET", f"/tickets/{tid}/events"), 404, "not_found")


async def test_page_ids_past_bigint_or_not_numbers_are_404(api: Any) -> None:
    """The pages' ids (knowledge base, public guides) as the API's: 404, never a 500 from the
    store's integer overflow."""
    admin: Api = await api("admin")  # its session carries the login cookie to the pages
    for raw in (str(2**63), str(10**30), "0", "abc", "１２"):
        for path in (f"/staff/kb/{raw}", f"/staff/kb/{raw}/edit", f"/guides/{raw}"):
            async with admin.session.get(admin.base + path) as resp:
                assert resp.status == 404, (path, resp.status, await resp.text())


async def test_huge_page_number_on_the_staff_list_is_422(http_session: Any, api: Any) -> None:
    await api("dispatcher")
    session, base = http_session()
    async with session.post(
        base + "/api/v1/session", json={"username": "dispatcher", "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
    async with session.get(
        base + "/staff/tickets", params={"view": "all", "page": str(10**30)}
    ) as resp:
        assert resp.status == 422


async def test_edit_with_null_kind_is_422_and_other_departments_get_404_first(api: Any) -> None:
    t = await dispatched_order(api)
    dispatcher: Api = await api("dispatcher")
    reply = await send(
        dispatcher, "POST", f"/tickets/{t['id']}/edit", {"version": t["version"], "kind": None}
    )
    assert reply.status == 422, reply.body
    ecology: Api = await api("ecology")  # not assigned: access is decided before the body
    for body in ({"version": t["version"], "kind": None}, {"nonsense": [1, 2]}):
        reply = await send(ecology, "POST", f"/tickets/{t['id']}/edit", body)
        assert_error(reply, 404, "not_found")


async def test_login_redirect_with_crlf_falls_back_to_the_list(http_session: Any, api: Any) -> None:
    await api()
    session, base = http_session()
    async with session.get(base + "/staff/login") as resp:
        token = (await resp.text()).split('name="login_csrf" value="', 1)[1].split('"', 1)[0]
    form = {
        "username": "dispatcher",
        "password": PASSWORD,
        "login_csrf": token,
        "next": "/staff/tickets\r\nSet-Cookie: x=1",
    }
    async with session.post(base + "/staff/login", data=form, allow_redirects=False) as resp:
        # the CR/LF in the form itself is refused before anything else
        assert resp.status in (303, 422)
        if resp.status == 303:
            assert resp.headers["Location"] == "/staff/tickets"


async def test_405_names_the_allowed_methods(api: Any) -> None:
    citizen: Api = await api()
    reply = await send(citizen, "PUT", "/requests")
    assert_error(reply, 405, "method_not_allowed")
    assert "POST" in reply.headers["Allow"]


async def test_a_very_long_url_gets_the_json_error(app_client: Any) -> None:
    host, port = app_client.server.host, app_client.server.port

    def raw() -> bytes:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /api/v1/requests?" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    answer = await asyncio.to_thread(raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), head
    assert b"application/json" in head
    assert json.loads(body)["error"]["code"] == "line_too_long"


# -- 9. the login form carries its own CSRF token ----------------------------------------------
async def test_login_form_without_its_token_is_refused(http_session: Any, api: Any) -> None:
    await api()
    session, base = http_session()  # a foreign page posting a login form: no token, no cookie
    form = {"username": "dispatcher", "password": PASSWORD}
    async with session.post(base + "/staff/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 403
        assert "hotline_session" not in {c.key for c in session.cookie_jar}


# -- 12, 13. roles as documented; the Secure cookie ----------------------------------------------
async def test_admins_do_not_take_calls_and_managers_may_supervise(api: Any) -> None:
    admin: Api = await api("admin")
    reply = await send(admin, "POST", "/agent/session", {"uri": "sip:desk@127.0.0.1"})
    assert_error(reply, 403, "role_forbidden")
    t = await dispatched_order(api)
    manager: Api = await api("manager")
    t = await manager.act(t, "supervise", note="领导督办")
    assert t["supervised"] is True


async def test_session_cookie_is_secure_when_the_public_url_is_https(
    db_url: str, aiohttp_client: Any
) -> None:
    from hotline.app import make_app
    from hotline.db import open_database
    from tests.conftest import create_users

    settings: Settings = make_settings(
        db_url, HOTLINE__SERVER__PUBLIC_URL="https://12345.nmg.gov.cn"
    )
    db = open_database(settings)
    try:
        create_users(settings, db)
        client = await aiohttp_client(make_app(settings, db))
        resp = await client.post(
            "/api/v1/session", json={"username": "agent", "password": PASSWORD}
        )
        assert resp.status == 200
        assert "Secure" in resp.headers["Set-Cookie"]
    finally:
        db.close()


# -- 19. web intake with an Idempotency-Key ---------------------------------------------------
async def test_idempotency_key_makes_a_retry_the_same_order(api: Any, database: Database) -> None:
    citizen: Api = await api()
    body = {"content": "小区门口路灯坏了", "phone": PHONE}
    headers = {"Idempotency-Key": "7f3c2a9e-retry-1", "Content-Type": "application/json"}

    async def post(payload: dict[str, Any], key: dict[str, str] = headers) -> tuple[int, Any]:
        async with citizen.session.post(
            citizen.base + "/api/v1/requests", data=json.dumps(payload), headers=key
        ) as resp:
            return resp.status, await resp.json()

    first, again = await asyncio.gather(post(body), post(body))
    assert (first[0], again[0]) == (201, 201)
    assert first[1]["number"] == again[1]["number"]
    assert (await post(body))[1]["number"] == first[1]["number"]
    count = database.run_read(lambda c: c.execute(sa.text("SELECT count(*) FROM tickets")).scalar())
    assert count == 1
    status, reply = await post({"content": "另一件事", "phone": PHONE})
    assert (status, reply["error"]["code"]) == (409, "conflict")
    status, reply = await post(
        body, {"Idempotency-Key": "bad key!", "Content-Type": "application/json"}
    )
    assert (status, reply["error"]["code"]) == (422, "invalid_input")
