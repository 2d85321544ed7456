"""Staff single sign-on in Chromium against a real Keycloak (tests/kcserver.py) and a real
`hotline serve` with [sso] on and local_login = "admins": the provider's login page, the role and
department from the ID token's claims, a department's isolation, refusals (no role, unknown
department, forged state, a stolen code with another login's PKCE verifier), logout at both
ends, break-glass admins with a password, logout everywhere and password change."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.browser import *  # noqa: F403
from tests.browser import WebServer, expect_console_error, start_web_server
from tests.conftest import FAST_HASHER, PASSWORD, make_settings
from tests.kcserver import CLIENT_ID, CLIENT_SECRET
from tests.kcserver import PASSWORD as SSO_PASSWORD
from tickets.model import Role

STAFF_URL = re.compile(r".*/staff/(?!login|sso).*")
PAGE_TIMEOUT_MS = 90_000  # two servers (one a JVM) on a busy 2-core machine: a generous bound


def fresh(new_page: Callable[..., Any]) -> Any:
    """A page of the harness (own cookies), waiting longer for navigations through Keycloak."""
    page = new_page()
    page.context.set_default_timeout(PAGE_TIMEOUT_MS)
    return page


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, keycloak: Any) -> Iterator[WebServer]:
    """The platform with single sign-on at the test Keycloak; local passwords for admins only."""
    ws = start_web_server(
        tmp_path_factory.mktemp("sso"),
        {
            "HOTLINE__SERVER__PUBLIC_URL": "http://127.0.0.1:{http_port}",
            "HOTLINE__SSO__ISSUER": keycloak.issuer,
            "HOTLINE__SSO__CLIENT_ID": CLIENT_ID,
            "HOTLINE__SSO__CLIENT_SECRET": CLIENT_SECRET,
            "HOTLINE__SSO__LOCAL_LOGIN": "admins",
        },
    )
    try:
        yield ws
    finally:
        ws.server.kill()


def add_local_admin(ws: WebServer, username: str) -> None:
    """Another break-glass admin (tests that change a password keep to their own account)."""
    from agent_ui.accounts import Accounts
    from hotline.app import load_routing
    from hotline.db import open_database

    settings = make_settings(ws.db_url)
    db = open_database(settings)
    try:
        Accounts(db, load_routing(settings), hasher=FAST_HASHER).create_user_sync(
            username, PASSWORD, Role.ADMIN
        )
    finally:
        db.close()


def sso_login(page: Any, keycloak: Any, username: str, *, wait_for_staff: bool = True) -> Any:
    """统一身份认证登录 from the platform's login page, through Keycloak's own login form."""
    page.goto("/staff/login")
    page.click("#sso-login")
    page.wait_for_url(keycloak.base + "/realms/hotline/protocol/openid-connect/auth*")
    page.fill("#username", username)
    page.fill("#password", SSO_PASSWORD)
    page.click("#kc-login")
    if wait_for_staff:
        page.wait_for_url(STAFF_URL)
    return page


def api(page: Any, method: str, path: str, body: Any = None) -> Any:
    """The page's own session calling the JSON API (cookie and CSRF token of the login)."""
    who = page.request.get("/api/v1/session")
    assert who.status == 200, who.text()
    headers = {"X-CSRF-Token": who.json()["user"]["csrf_token"]}
    resp = page.request.fetch(
        "/api/v1" + path, method=method, data=body, headers=headers, fail_on_status_code=False
    )
    return resp


def test_sso_department_user_gets_role_department_and_only_its_orders(
    new_page: Callable[..., Any], keycloak: Any
) -> None:
    dispatcher = sso_login(fresh(new_page), keycloak, "sso.dispatcher")
    assert "派单员" in dispatcher.inner_text(".who")
    ids = {}
    for lead, text in (("150100-housing", "小区供暖不热"), ("150200-ecology", "工厂夜间排污")):
        made = api(dispatcher, "POST", "/tickets", {"content": text, "phone": "13900000001"})
        assert made.status == 201, made.text()
        t = made.json()
        done = api(
            dispatcher,
            "POST",
            f"/tickets/{t['id']}/dispatch",
            {"version": t["version"], "lead": lead},
        )
        assert done.status == 200, done.text()
        ids[lead] = t["id"]

    page = sso_login(fresh(new_page), keycloak, "sso.housing")
    assert "/staff/tickets" in page.url
    who = page.inner_text(".who")
    assert "承办单位" in who and "呼和浩特市住房和城乡建设局" in who
    listed = page.inner_text("main")
    assert "小区供暖不热" in listed and "工厂夜间排污" not in listed
    items = api(page, "GET", "/tickets").json()["items"]
    assert {t["id"] for t in items} == {ids["150100-housing"]}
    expect_console_error(page, "404")
    assert page.goto(f"/staff/tickets/{ids['150200-ecology']}").status == 404
    page.goto("/staff/account")
    assert "统一身份认证" in page.inner_text("#account-kind")
    assert page.inner_text("#account-department") == "呼和浩特市住房和城乡建设局"
    assert page.locator("#password-sso").is_visible()


@pytest.mark.parametrize(
    ("username", "message"),
    [("sso.norole", "没有分配热线平台角色"), ("sso.baddept", "没有分配本平台已有的承办单位")],
)
def test_sso_user_whose_claims_name_no_role_or_department_is_refused(
    new_page: Callable[..., Any], keycloak: Any, username: str, message: str
) -> None:
    page = fresh(new_page)
    expect_console_error(page, "403")
    sso_login(page, keycloak, username, wait_for_staff=False)
    page.wait_for_url(re.compile(r".*/staff/sso/callback.*"))
    assert message in page.inner_text("#form-error")
    assert not any(c["name"] == "hotline_session" for c in page.context.cookies())
    page.goto("/staff/tickets")
    assert "/staff/login" in page.url


def test_sso_callback_with_a_forged_state_is_refused(new_page: Callable[..., Any]) -> None:
    page = fresh(new_page)
    expect_console_error(page, "400")
    resp = page.goto("/staff/sso/callback?code=anything&state=forged")
    assert resp.status == 400
    assert "登录请求无效" in page.inner_text("#form-error")
    assert not any(c["name"] == "hotline_session" for c in page.context.cookies())


def victims_callback(page: Any, username: str) -> str:
    """A login at Keycloak up to its redirect back, not followed: the callback URL with the
    code, as someone reading the victim's address bar or proxy log would have it. (Playwright
    cannot intercept a redirect hop, so the victim's side is the context's own HTTP client,
    with the same cookies as its pages.)"""
    start = page.request.get("/staff/sso/login", max_redirects=0)
    assert start.status == 303, start.text()
    form = page.request.get(start.headers["location"])
    assert form.status == 200
    action = re.search(r'id="kc-form-login"[^>]*action="([^"]+)"', form.text())
    if action is None:
        action = re.search(r'action="([^"]+)"[^>]*id="kc-form-login"', form.text())
    assert action is not None, form.text()[:2000]
    sent = page.request.post(
        html.unescape(action.group(1)),
        form={"username": username, "password": SSO_PASSWORD, "credentialId": ""},
        max_redirects=0,
    )
    assert sent.status == 302, sent.text()[:2000]
    return str(sent.headers["location"])


def test_sso_stolen_code_does_not_log_in_another_browser(
    new_page: Callable[..., Any], keycloak: Any
) -> None:
    """A code taken from the victim's redirect is useless elsewhere: with the victim's state the
    attacker's browser lacks the state cookie (400); slipped into the attacker's own login the
    provider refuses it, as the attacker's PKCE verifier is not the victim's (401)."""
    stolen = victims_callback(fresh(new_page), "sso.agent")
    code = re.search(r"[?&]code=([^&]+)", stolen)
    assert "/staff/sso/callback?" in stolen and code is not None

    attacker = fresh(new_page)
    expect_console_error(attacker, "40")
    assert attacker.goto(stolen).status == 400
    attacker.goto("/staff/sso/login")  # the attacker's own login: its state and verifier
    attacker.wait_for_url(keycloak.base + "/**")
    state = next(c["value"] for c in attacker.context.cookies() if c["name"] == "hotline_sso_state")
    resp = attacker.goto(f"/staff/sso/callback?state={state}&code={code.group(1)}")
    assert resp.status == 401
    assert "登录未完成" in attacker.inner_text("#form-error")
    assert not any(c["name"] == "hotline_session" for c in attacker.context.cookies())


def test_logout_ends_the_platform_session_and_the_providers(
    new_page: Callable[..., Any], keycloak: Any
) -> None:
    page = sso_login(fresh(new_page), keycloak, "sso.agent")
    assert "话务员" in page.inner_text(".who")
    page.click("form.logout button")
    page.wait_for_url(re.compile(r".*/staff/login\?out=1$"))
    assert "您已退出登录" in page.inner_text("main")
    assert page.request.get("/api/v1/session").status == 401
    # the provider's session ended too: it asks for the password again
    page.click("#sso-login")
    page.wait_for_url(keycloak.base + "/realms/hotline/protocol/openid-connect/auth*")
    assert page.locator("#password").is_visible()


def test_break_glass_admin_logs_in_with_a_password_and_others_may_not(
    new_page: Callable[..., Any],
) -> None:
    page = fresh(new_page)
    page.goto("/staff/login")
    assert "管理员应急登录" in page.inner_text("main")
    expect_console_error(page, "401")
    page.fill("#username", "agent")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#form-error")
    assert "用户名或密码错误" in page.inner_text("#form-error")
    login(page, "admin")  # noqa: F405
    assert "管理员" in page.inner_text(".who")


def test_logout_everywhere_and_password_change_of_a_local_admin(
    new_page: Callable[..., Any], web_server: WebServer
) -> None:
    add_local_admin(web_server, "keeper")
    desk, phone = login(fresh(new_page), "keeper"), login(fresh(new_page), "keeper")  # noqa: F405
    desk.goto("/staff/account")
    assert desk.inner_text("#session-count") == "2"
    # a wrong old password changes nothing
    expect_console_error(desk, "422")
    desk.fill("#old_password", "not-the-password")
    desk.fill("#new_password", "Harbor-lantern-passphrase-7")
    desk.fill("#new_password2", "Harbor-lantern-passphrase-7")
    desk.click("#password-form button[type=submit]")
    assert "原密码不正确" in desk.inner_text("#form-error")
    desk.fill("#old_password", PASSWORD)
    desk.fill("#new_password", "Harbor-lantern-passphrase-7")
    desk.fill("#new_password2", "Harbor-lantern-passphrase-7")
    desk.click("#password-form button[type=submit]")
    desk.wait_for_url(re.compile(r".*/staff/account\?done=password$"))
    assert desk.inner_text("#session-count") == "1"
    phone.goto("/staff/tickets")
    assert "/staff/login" in phone.url  # the other device was logged out
    login(phone, "keeper", "Harbor-lantern-passphrase-7")  # noqa: F405
    desk.goto("/staff/account")
    assert desk.inner_text("#session-count") == "2"
    desk.click("#logout-all")
    desk.wait_for_url(re.compile(r".*/staff/login\?out=all$"))
    assert "已退出所有设备上的登录" in desk.inner_text("main")
    phone.goto("/staff/tickets")
    assert "/staff/login" in phone.url
