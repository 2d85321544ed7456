"""The authorisation matrix: every route of the app × every kind of caller (anonymous, each
centre role, a department that has the order, one that had it and returned it, one that never
had it), on a confidential order. The expected access of each route is written down here, in
one place; a route added without an entry fails the walk.

Writes are sent with a stale version, so an allowed caller gets past the access and role checks
to the version check (409) and nothing changes; refusals are 401 (no session), 403 (role) or
404 (a department's view of an order that is not its own, like an id that does not exist)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent_ui.context import SERVICES
from hotline.config import Settings
from tests.conftest import PASSWORD, Api, make_settings
from tickets.model import Action, Role
from tickets.workflow import ROLES

PHONE, NAME = "13912345678", "保密来电人甲"
A, D, S, M, ADM = Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN
DEPT = Role.DEPARTMENT
CENTRE = frozenset({A, D, S, M, ADM})
STAFF = CENTRE | {DEPT}
INTAKE = frozenset({A, D, S})
CALLS = frozenset({A, D, S})
WATCH = frozenset({A, D, S, M, ADM})
# a knowledge-base article of the walk (an FAQ of the housing department): the centre, agents
# (FAQ) and its own department may edit it; a manager and other departments may not
KB_EDIT = "kb_edit"
STATS = frozenset({S, M, ADM, DEPT})  # a department sees its own figures
STATS_READS = ("overview", "departments", "breakdown", "series", "hot-topics")
STATS_READS += ("definitions",)
PUBLIC = "public"  # anybody; the route guards itself otherwise (gateway address, signature)
STATIC = "static"

# (method, path pattern) → who may: PUBLIC, STATIC, or the roles allowed
EXPECT: dict[tuple[str, str], Any] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("POST", "/api/v1/session"): PUBLIC,
    ("GET", "/api/v1/session"): STAFF,
    ("DELETE", "/api/v1/session"): STAFF,
    ("POST", "/api/v1/requests"): PUBLIC,
    ("GET", "/api/v1/requests/{number}"): PUBLIC,
    ("POST", "/api/v1/requests/{number}/rating"): PUBLIC,
    ("GET", "/api/v1/tickets"): STAFF,
    ("POST", "/api/v1/tickets"): INTAKE,
    ("GET", "/api/v1/tickets/{id}"): STAFF,
    ("GET", "/api/v1/tickets/by-number/{number}"): STAFF,
    ("GET", "/api/v1/tickets/{id}/events"): STAFF,
    ("GET", "/api/v1/tickets/{id}/clocks"): STAFF,
    **{
        ("POST", f"/api/v1/tickets/{{id}}/{a.value}"): frozenset(ROLES[a]) - {Role.SYSTEM}
        for a in Action
        if a not in (Action.SUPPLEMENT, Action.ATTACH)  # not routes: SMS intake; their own form
    },
    ("GET", "/api/v1/regions"): PUBLIC,
    ("GET", "/api/v1/live"): "live",  # a WebSocket: staff, from this site's pages
    ("POST", "/api/v1/assist"): INTAKE,
    ("GET", "/api/v1/wallboard"): WATCH,
    ("GET", "/api/v1/presence"): frozenset({S, M, ADM}),
    ("POST", "/api/v1/tickets/{id}/attachments"): frozenset({A, D, S, DEPT}),
    ("GET", "/api/v1/tickets/{id}/attachments/{n}"): STAFF,
    ("POST", "/staff/tickets/{id}/attachments"): frozenset({A, D, S, DEPT}),
    ("GET", "/staff/admin/users"): frozenset({ADM}),
    ("POST", "/staff/admin/users"): frozenset({ADM}),
    ("GET", "/staff/admin/departments"): frozenset({ADM}),
    ("GET", "/staff/wallboard"): WATCH,
    ("GET", "/api/v1/departments"): STAFF,
    ("POST", "/api/v1/agent/session"): CALLS,
    ("DELETE", "/api/v1/agent/session"): CALLS,
    ("GET", "/api/v1/agent/state"): CALLS,
    ("PUT", "/api/v1/agent/state"): CALLS,
    ("GET", "/api/v1/callcenter"): WATCH,
    ("GET", "/api/v1/calls"): WATCH,
    ("GET", "/api/v1/calls/stats"): frozenset({S, M, ADM}),
    ("GET", "/api/v1/calls/{id}/recording"): WATCH,
    ("POST", "/api/v1/tickets/{id}/call"): CALLS,
    ("GET", "/api/v1/softphone/ws"): CALLS,  # also Origin and a CSRF hello: test_softphone_*
    ("GET", "/api/v1/softphone/stats"): frozenset({S, M, ADM}),
    ("GET", "/api/v1/sms/kannel"): PUBLIC,
    ("POST", "/api/v1/sms/kannel"): PUBLIC,
    ("GET", "/api/v1/sms/dlr"): PUBLIC,
    ("POST", "/api/v1/sms/webhook"): PUBLIC,
    ("GET", "/api/v1/sms/outbox"): WATCH,
    ("GET", "/api/v1/sms/blocklist"): frozenset({S, ADM}),
    ("POST", "/api/v1/sms/blocklist"): frozenset({S, ADM}),
    ("DELETE", "/api/v1/sms/blocklist/{phone}"): frozenset({S, ADM}),
    ("GET", "/"): PUBLIC,
    ("POST", "/"): PUBLIC,
    ("GET", "/track"): PUBLIC,
    ("POST", "/track"): PUBLIC,
    ("POST", "/track/rate"): PUBLIC,
    ("GET", "/staff"): STAFF,
    ("GET", "/staff/login"): PUBLIC,
    ("POST", "/staff/login"): "login",  # anyone, with the login form's own token
    ("POST", "/staff/logout"): STAFF,
    ("GET", "/staff/tickets/new"): INTAKE,
    ("POST", "/staff/tickets/new"): INTAKE,
    ("GET", "/staff/tickets/{id}"): STAFF,
    ("POST", "/staff/tickets/{id}/{action}"): STAFF,  # the action's own roles: below
    ("GET", "/staff/tickets"): STAFF,
    ("GET", "/staff/tickets/find"): STAFF,
    ("GET", "/staff/sms"): WATCH,
    ("GET", "/staff/softphone"): CALLS,
    ("GET", "/staff/account"): STAFF,
    ("POST", "/staff/account/password"): STAFF,  # one's own password: the old one is required
    ("POST", "/staff/account/logout-all"): STAFF,  # ends all of one's own sessions
    ("GET", "/staff/sso/login"): PUBLIC,  # off to the identity provider (404 when [sso] is off)
    ("GET", "/staff/sso/callback"): PUBLIC,  # guarded by state, PKCE and the ID token's checks
    # personal data: reveal a masked caller (audited), the access log
    ("POST", "/api/v1/tickets/{id}/caller"): CENTRE,
    ("POST", "/staff/tickets/{id}/caller"): CENTRE,
    ("GET", "/api/v1/audit/access"): frozenset({S, M, ADM}),
    ("GET", "/api/v1/exports/tickets"): STAFF,  # callers masked by role, each export logged
    ("GET", "/staff/audit"): frozenset({S, M, ADM}),
    ("GET", "/static/vendor/echarts"): STATIC,
    ("GET", "/static/vendor/fonts/noto-sans-mongolian"): STATIC,
    ("GET", "/static"): STATIC,
    ("GET", "/favicon.ico"): STATIC,
    # search, knowledge base, 多人同诉, hot spots (issue 12)
    ("GET", "/api/v1/search/tickets"): STAFF,
    ("GET", "/api/v1/search/status"): STAFF,
    ("POST", "/api/v1/suggestions"): STAFF,
    ("GET", "/api/v1/tickets/{id}/suggestions"): STAFF,
    ("GET", "/api/v1/tickets/{id}/similar"): STAFF,
    ("POST", "/api/v1/tickets/{id}/group"): frozenset({A, D, S, ADM}),
    ("POST", "/api/v1/tickets/{id}/ungroup"): frozenset({A, D, S, ADM}),
    ("POST", "/api/v1/tickets/{id}/similar/{other}/dismiss"): frozenset({A, D, S, ADM}),
    ("GET", "/api/v1/hotspots"): frozenset({D, S, M, ADM}),
    ("POST", "/api/v1/tickets/{id}/reply-library"): frozenset({D, S, ADM}),
    ("GET", "/api/v1/kb/articles"): STAFF,
    ("POST", "/api/v1/kb/articles"): STAFF - {M},
    ("GET", "/api/v1/kb/articles/{id}"): STAFF,
    ("PUT", "/api/v1/kb/articles/{id}"): KB_EDIT,
    ("GET", "/api/v1/kb/articles/{id}/history"): STAFF,
    ("POST", "/api/v1/kb/articles/{id}/submit"): KB_EDIT,
    ("POST", "/api/v1/kb/articles/{id}/publish"): frozenset({D, S, ADM}),
    ("POST", "/api/v1/kb/articles/{id}/reject"): frozenset({D, S, ADM}),
    ("POST", "/api/v1/kb/articles/{id}/withdraw"): frozenset({D, S, ADM}),
    ("GET", "/api/v1/guides"): PUBLIC,
    ("GET", "/api/v1/guides/{id}"): PUBLIC,
    ("GET", "/guides"): PUBLIC,
    ("GET", "/guides/{id}"): PUBLIC,
    ("GET", "/staff/kb"): STAFF,
    ("GET", "/staff/kb/new"): STAFF,
    ("POST", "/staff/kb/new"): STAFF - {M},
    ("GET", "/staff/kb/{id}"): STAFF,
    ("GET", "/staff/kb/{id}/edit"): STAFF,
    ("POST", "/staff/kb/{id}/edit"): KB_EDIT,
    ("POST", "/staff/kb/{id}/{step}"): KB_EDIT,  # step "submit" in the walk
    ("GET", "/staff/search"): STAFF,
    # statistics, the public 曝光纠错 column, Open311 (issue 13)
    **{("GET", f"/api/v1/stats/{k}"): STATS for k in STATS_READS},
    ("GET", "/api/v1/stats/calls"): frozenset({S, M, ADM}),
    ("GET", "/api/v1/stats/regions"): frozenset({S, M, ADM}),
    ("GET", "/staff/stats"): STATS,
    ("GET", "/staff/stats/report"): STATS,
    ("GET", "/staff/cases"): frozenset({S, M, ADM}),
    ("POST", "/staff/cases"): frozenset({S}),
    ("GET", "/staff/cases/{id}"): frozenset({S, M, ADM}),
    ("POST", "/staff/cases/{id}"): frozenset({S}),
    ("GET", "/public"): PUBLIC,
    ("GET", "/public/departments"): PUBLIC,
    ("GET", "/public/cases.atom"): PUBLIC,
    ("GET", "/public/cases/{id}"): PUBLIC,
    ("GET", "/open311/v2/discovery.json"): PUBLIC,
    ("GET", "/open311/v2/services.json"): PUBLIC,
    ("GET", "/open311/v2/services/{code}.json"): PUBLIC,
    ("GET", "/open311/v2/requests.json"): PUBLIC,
    ("GET", "/open311/v2/requests/{id}.json"): PUBLIC,
    ("POST", "/open311/v2/requests.json"): "api_key",  # a client's key, never a session
}
# routes about an item the walk does not name (a public case; a new case's order number): an
# allowed caller gets past the role check to 404, a refused one gets 403 before the lookup
NO_ITEM = {"/staff/cases/{id}", "/staff/cases"}
LOGOUT_ALL = ("POST", "/staff/account/logout-all")
LOGOUTS = {("DELETE", "/api/v1/session"), ("POST", "/staff/logout"), LOGOUT_ALL}
# routes about one order, where a department's own / past / other relation decides
ORDER_ROUTES = re.compile(r"/(api/v1|staff)/tickets/(\{id\}|by-number|find)")


@dataclass(frozen=True)
class Caller:
    label: str
    username: str | None
    role: Role | None
    relation: str = ""  # own | past | other (departments)


CALLERS = [
    Caller("anonymous", None, None),
    Caller("agent", "agent", A),
    Caller("dispatcher", "dispatcher", D),
    Caller("supervisor", "supervisor", S),
    Caller("manager", "manager", M),
    Caller("admin", "admin", ADM),
    Caller("dept-own", "housing", DEPT, "own"),
    Caller("dept-past", "urban", DEPT, "past"),
    Caller("dept-other", "ecology", DEPT, "other"),
]


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    # access rules do not depend on the store: one pass, on SQLite
    return f"sqlite:///{tmp_path / 'hotline.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


def app_routes(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for r in app.router.routes():
        if r.method == "HEAD":
            continue
        info = r.resource.get_info() if r.resource else {}
        out.append((r.method, str(info.get("formatter") or info.get("path") or info.get("prefix"))))
    return out


def fill(path: str, t: dict[str, Any], action: str = "sign") -> str:
    if "/kb/" in path or "/guides/" in path:
        return path.replace("{id}", str(t["article_id"])).replace("{step}", "submit")
    if path == "/staff/tickets/find":
        return f"{path}?number={t['number']}"
    return (
        path.replace("{id}", str(t["id"]))
        .replace("{number}", t["number"])
        .replace("{action}", action)
        .replace("{phone}", "13800000000")
        .replace("{n}", "0")
        .replace("{other}", str(t["id"]))
    )


async def call(
    session: aiohttp.ClientSession, base: str, csrf: str | None, method: str, path: str
) -> tuple[int, str]:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if method in ("POST", "PUT", "DELETE"):
        if path.startswith("/api/"):
            kwargs["json"] = {"version": 0}  # stale: past the checks, nothing changes
        else:
            kwargs["data"] = {"version": "0", "csrf_token": csrf or ""}
    async with session.request(method, base + path, **kwargs) as resp:
        return resp.status, await resp.text()


async def test_every_route_is_in_the_matrix(app_client: Any) -> None:
    routes = set(app_routes(app_client.app))
    assert routes - set(EXPECT) == set(), "routes without an access rule in EXPECT"
    assert set(EXPECT) - routes == set(), "rules for routes that no longer exist"


async def test_authorisation_matrix(app_client: Any, api: Any, http_session: Any) -> None:
    agent: Api = await api("agent")
    dispatcher: Api = await api("dispatcher")
    t = await agent.post(
        "/tickets",
        {"content": "举报某单位违规排污", "phone": PHONE, "name": NAME, "confidential": True},
        201,
    )
    t = await dispatcher.act(t, "dispatch", lead="150100-urban")
    t = await (await api("urban")).act(t, "return", reason="不属于城管职责")
    t = await dispatcher.act(t, "dispatch", lead="150100-housing")
    form = aiohttp.FormData()
    form.add_field("file", b"%PDF-1.4\n%%EOF\n", filename="材料.pdf")
    async with agent.session.post(
        f"{agent.base}/api/v1/tickets/{t['id']}/attachments",
        data=form,
        headers={"X-CSRF-Token": agent.csrf or ""},
    ) as resp:
        assert resp.status == 201
        t = await resp.json()
    faq = {
        "kind": "faq",
        "department": "150100-housing",
        "fields": {"question": "停车费怎么收？", "answer": "按物价部门核定的标准。"},
    }
    t["article_id"] = (await dispatcher.post("/kb/articles", faq, 201))["id"]
    sessions: dict[str, tuple[aiohttp.ClientSession, str, str | None]] = {}
    for c in CALLERS:
        session, base = http_session()
        csrf = None
        if c.username:
            async with session.post(
                base + "/api/v1/session", json={"username": c.username, "password": PASSWORD}
            ) as resp:
                assert resp.status == 200
                csrf = (await resp.json())["user"]["csrf_token"]
        sessions[c.label] = (session, base, csrf)

    failures: list[str] = []
    cells = 0
    # logging out last (and out everywhere at the very end): it ends the session the rest of
    # the walk uses
    walk = sorted(app_routes(app_client.app), key=lambda r: (r in LOGOUTS, r == LOGOUT_ALL))
    for method, pattern in walk:
        rule = EXPECT[(method, pattern)]
        if rule == STATIC or pattern in ("/api/v1/sms/kannel", "/api/v1/sms/dlr"):
            continue  # files; gateway endpoints (their address/token checks: tests/test_sms*)
        for c in CALLERS:
            actions = ["sign", "dispatch"] if pattern.endswith("{action}") else ["sign"]
            for action in actions:
                session, base, csrf = sessions[c.label]
                status, body = await call(session, base, csrf, method, fill(pattern, t, action))
                cells += 1
                want = expected(rule, c, pattern, action)
                if not want(status):
                    failures.append(f"{c.label:<10} {method} {pattern} [{action}] → {status}")
                if c.relation == "other" and ORDER_ROUTES.search(pattern):
                    # another department's order answers exactly like an id that is not there
                    ghost = {**t, "id": 999_999, "number": "20990101000001"}
                    status2, _ = await call(
                        session, base, csrf, method, fill(pattern, ghost, action)
                    )
                    if status2 != status or status not in (403, 404):
                        failures.append(
                            f"{c.label:<10} {method} {pattern} [{action}]: {status} for the order,"
                            f" {status2} for no order"
                        )
                if c.role is DEPT and (PHONE in body or NAME in body):
                    failures.append(f"{c.label} {method} {pattern}: confidential caller shown")
    assert not failures, f"{len(failures)} of {cells} cells wrong:\n" + "\n".join(failures)
    # nothing was changed by the walk: every write was refused or stale
    after = await dispatcher.get(f"/tickets/{t['id']}")
    assert after["version"] == t["version"], json.dumps(after, ensure_ascii=False)[:500]
    article = await dispatcher.get(f"/kb/articles/{t['article_id']}")
    assert (article["version"], article["status"]) == (1, "draft")


def expected(rule: Any, c: Caller, pattern: str, action: str) -> Any:
    denied = {401, 403}
    is_page = not pattern.startswith("/api/")
    if rule == PUBLIC:
        return lambda s: s not in denied
    if rule == "login":  # a form posted without the login page's token: refused, for anyone
        return lambda s: s == 403
    if rule == "api_key":  # Open311 filing without a client's key: refused, for anyone
        return lambda s: s == 403
    if rule == KB_EDIT:
        if c.role is None:
            return (lambda s: s in (303, 401)) if is_page else (lambda s: s == 401)
        if c.role in (M,) or (c.role is DEPT and c.relation != "own"):
            return lambda s: s == 403
        return lambda s: s not in denied and s != 404
    if rule == "live":  # staff; a plain GET is no WebSocket handshake (400), never 5xx
        return (lambda s: s == 401) if c.role is None else (lambda s: s in (400, 403))
    if c.role is None:  # no session: 401, or the login page for a page
        return (lambda s: s in (303, 401)) if is_page else (lambda s: s == 401)
    allowed = set(rule)
    if pattern.endswith("{action}"):
        allowed &= set(ROLES[Action(action)])
    order = ORDER_ROUTES.search(pattern) is not None
    if c.role is DEPT and order and c.relation == "other":
        return lambda s: s in (403, 404)  # and the same as for no order: checked by the walk
    if c.role not in allowed:
        return lambda s: s == 403
    if pattern in NO_ITEM:
        return lambda s: s not in denied
    return lambda s: s not in denied and s != 404


async def test_matrix_settings_are_the_running_app(app_client: Any) -> None:
    """The walk runs against the app the tests build (telephony off, triage off)."""
    assert app_client.app[SERVICES].calls is None
