"""Staff sessions: the idle and absolute limits (an injected clock), logout everywhere, a local
account's own password change, which local accounts may log in with a password under single
sign-on, and accounts made by single sign-on (linked by the provider's subject, no password)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_ui.accounts import Accounts
from agent_ui.context import SERVICES
from agent_ui.oidc import SsoIdentity, SsoRefused
from hotline.app import make_app
from hotline.config import Settings
from tests.conftest import PASSWORD, Api, create_users, make_settings
from tickets.db import Database
from tickets.errors import InvalidInput
from tickets.model import Role

NEW_PASSWORD = "a-fresh-Passphrase-42"
ISSUER = "http://127.0.0.1:9/realms/hotline"  # never contacted by these tests


class Clock:
    """The accounts' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock(app_client: Any) -> Clock:
    c = Clock()
    app_client.app[SERVICES].accounts.clock = c
    return c


async def whoami(client: Api) -> int:
    async with client.session.get(client.base + "/api/v1/session") as resp:
        return resp.status


# -- idle and absolute limits -------------------------------------------------------------------
async def test_session_idle_limit_ends_a_session_left_alone(api: Any, clock: Clock) -> None:
    agent: Api = await api("agent")  # idle limit: 60 minutes (config.toml)
    for _ in range(4):  # activity keeps it alive well past one idle period
        clock.advance(minutes=50)
        assert await whoami(agent) == 200
    clock.advance(minutes=60)
    assert await whoami(agent) == 401
    clock.advance(seconds=-3600)  # the session is gone, not just out of time
    assert await whoami(agent) == 401


async def test_session_absolute_limit_holds_despite_activity(api: Any, clock: Clock) -> None:
    agent: Api = await api("agent")  # absolute limit: 12 hours
    for _ in range(23):
        clock.advance(minutes=30)
        assert await whoami(agent) == 200
    clock.advance(minutes=31)
    assert await whoami(agent) == 401


async def test_idle_sessions_are_purged(api: Any, clock: Clock, app_client: Any) -> None:
    await api("agent")
    await api("dispatcher")
    accounts: Accounts = app_client.app[SERVICES].accounts
    assert await accounts.purge_expired() == 0
    clock.advance(minutes=61)
    assert await accounts.purge_expired() == 2


# -- logout everywhere --------------------------------------------------------------------------
async def _page_post(client: Api, path: str, data: dict[str, str]) -> tuple[int, str]:
    async with client.session.post(client.base + path, data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", "")


async def test_logout_everywhere_ends_every_session_of_the_account_only(api: Any) -> None:
    phone, desk, other = await api("agent"), await api("agent"), await api("dispatcher")
    assert phone.csrf is not None
    # without the session's CSRF token: refused, nothing ends
    status, _ = await _page_post(phone, "/staff/account/logout-all", {"csrf_token": "x"})
    assert status == 403
    assert await whoami(desk) == 200
    status, location = await _page_post(
        phone, "/staff/account/logout-all", {"csrf_token": phone.csrf}
    )
    assert (status, location) == (303, "/staff/login?out=all")
    assert await whoami(phone) == 401
    assert await whoami(desk) == 401
    assert await whoami(other) == 200


# -- password change ----------------------------------------------------------------------------
def _form(client: Api, old: str, new: str, again: str | None = None) -> dict[str, str]:
    return {
        "csrf_token": client.csrf or "",
        "old_password": old,
        "new_password": new,
        "new_password2": new if again is None else again,
    }


async def _page(client: Api, path: str) -> str:
    async with client.session.get(client.base + path) as resp:
        assert resp.status == 200
        return await resp.text()


async def test_password_change_needs_the_old_password_and_ends_other_sessions(api: Any) -> None:
    me, elsewhere = await api("dispatcher"), await api("dispatcher")
    url = "/staff/account/password"
    assert (await _page_post(me, url, _form(me, "wrong-old-password", NEW_PASSWORD)))[0] == 422
    assert (await _page_post(me, url, _form(me, PASSWORD, NEW_PASSWORD, "typo")))[0] == 422
    assert (await _page_post(me, url, _form(me, PASSWORD, "1234567890")))[0] == 422  # guessable
    assert (await _page_post(me, url, _form(me, PASSWORD, "dispatcher-x9Q!")))[0] == 422  # name
    assert (await _page_post(me, url, _form(me, PASSWORD, PASSWORD)))[0] == 422  # unchanged
    assert await whoami(elsewhere) == 200  # nothing changed so far
    status, location = await _page_post(me, url, _form(me, PASSWORD, NEW_PASSWORD))
    assert (status, location) == (303, "/staff/account?done=password")
    assert "密码已修改" in await _page(me, location)
    assert await whoami(me) == 200  # this session stays …
    assert await whoami(elsewhere) == 401  # … the others end
    await (await api()).post(
        "/session", {"username": "dispatcher", "password": PASSWORD}, status=401
    )
    fresh = await (await api()).login("dispatcher", NEW_PASSWORD)
    assert fresh.csrf


async def test_guessing_the_old_password_is_throttled(api: Any) -> None:
    me = await api("agent")
    url = "/staff/account/password"
    statuses = [
        (await _page_post(me, url, _form(me, f"guess-number-{i}", NEW_PASSWORD)))[0]
        for i in range(7)
    ]
    assert statuses[:5] == [422] * 5
    assert statuses[-1] == 429
    # the right old password waits out the back-off too
    assert (await _page_post(me, url, _form(me, PASSWORD, NEW_PASSWORD)))[0] == 429


async def test_account_page_shows_role_and_sessions(api: Any) -> None:
    await api("housing")
    me = await api("housing")
    text = await _page(me, "/staff/account")
    assert "承办单位" in text and "呼和浩特市住房和城乡建设局" in text
    assert re.search(r'id="session-count">2<', text)
    assert 'id="password-form"' in text


# -- local password logins under single sign-on ---------------------------------------------------
@pytest.fixture
def sso_app(
    db_url: str, aiohttp_client: Any
) -> Callable[..., Any]:  # an app with [sso] on (the provider is never contacted here)
    async def make(local_login: str) -> tuple[Any, Settings, Database]:
        from hotline.db import open_database

        settings = make_settings(
            db_url,
            HOTLINE__SSO__ISSUER=ISSUER,
            HOTLINE__SSO__CLIENT_ID="hotline",
            HOTLINE__SSO__LOCAL_LOGIN=local_login,
        )
        db = open_database(settings)
        create_users(settings, db)
        client = await aiohttp_client(make_app(settings, db))
        return client, settings, db

    return make


async def _api_login(client: Any, username: str, password: str = PASSWORD) -> tuple[int, Any]:
    resp = await client.post("/api/v1/session", json={"username": username, "password": password})
    return resp.status, await resp.json()


async def test_local_login_admins_lets_only_admins_use_a_password(sso_app: Any) -> None:
    client, _, db = await sso_app("admins")
    try:
        assert (await _api_login(client, "admin"))[0] == 200
        status, body = await _api_login(client, "agent")
        assert status == 401
        # the same answer as a wrong password: it tells nothing about the account
        assert body["error"]["message"] == "用户名或密码错误"
        assert (await _api_login(client, "agent", "wrong"))[1] == body
        client.session.cookie_jar.clear()  # logged out: the login page itself
        page = await (await client.get("/staff/login")).text()
        assert 'id="sso-login"' in page and "管理员应急登录" in page
    finally:
        db.close()


async def test_local_login_none_is_single_sign_on_only(sso_app: Any) -> None:
    client, _, db = await sso_app("none")
    try:
        assert (await _api_login(client, "admin"))[0] == 401
        page = await (await client.get("/staff/login")).text()
        assert 'id="sso-login"' in page and 'id="password"' not in page
    finally:
        db.close()


async def test_unreachable_provider_gives_a_503_page_and_passwords_still_work(
    sso_app: Any,
) -> None:
    client, _, db = await sso_app("admins")
    try:
        resp = await client.get("/staff/sso/login", allow_redirects=False)
        assert resp.status == 503
        assert "统一身份认证服务暂时无法访问" in await resp.text()
        assert (await _api_login(client, "admin"))[0] == 200  # break-glass
        resp = await client.get("/staff/admin/users")
        assert resp.status == 200
    finally:
        db.close()


async def test_sso_routes_answer_404_when_sso_is_off(app_client: Any) -> None:
    for path in ("/staff/sso/login", "/staff/sso/callback?state=x&code=y"):
        resp = await app_client.get(path, allow_redirects=False)
        assert resp.status == 404
        assert "未启用统一身份认证" in await resp.text()
    page = await (await app_client.get("/staff/login")).text()
    assert 'id="sso-login"' not in page


# -- accounts made by single sign-on --------------------------------------------------------------
def identity(subject: str, username: str, role: Role, department: str | None = None) -> Any:
    return SsoIdentity(ISSUER, subject, username, f"统一认证-{username}", role, department)


async def test_sso_accounts_are_linked_by_subject_never_by_user_name(
    app_client: Any, api: Any
) -> None:
    accounts: Accounts = app_client.app[SERVICES].accounts
    # a provider user called "admin" does not become the local admin
    _, session = await accounts.sso_login(identity("sub-1", "admin", Role.AGENT), "id-token-1")
    assert session.user.username.startswith("sso-")
    assert (session.user.role, session.user.sso, session.id_token) == (
        Role.AGENT,
        True,
        "id-token-1",
    )
    local = await accounts.user_by_name("admin")
    assert local is not None and local.role is Role.ADMIN and not local.sso
    await api("admin")  # still logs in with its password
    # the next login of the same subject updates role and department from the claims
    _, again = await accounts.sso_login(
        identity("sub-1", "renamed", Role.DEPARTMENT, "150100-housing"), "id-token-2"
    )
    assert again.user.id == session.user.id
    assert (again.user.role, again.user.department) == (Role.DEPARTMENT, "150100-housing")
    # a free, valid provider user name is kept
    _, other = await accounts.sso_login(identity("sub-2", "Wang.Xiaoming", Role.AGENT), "t")
    assert other.user.username == "wang.xiaoming"


async def test_sso_accounts_have_no_password_and_can_be_deactivated(
    app_client: Any, api: Any
) -> None:
    accounts: Accounts = app_client.app[SERVICES].accounts
    _, session = await accounts.sso_login(identity("sub-3", "sso.user", Role.AGENT), "t")
    for password in ("", "anything-at-all-1", PASSWORD):
        await (await api()).post(
            "/session", {"username": "sso.user", "password": password or "x"}, status=401
        )
    with pytest.raises(InvalidInput, match="统一身份认证账号"):
        await accounts.set_password("sso.user", NEW_PASSWORD)
    listing = await _page(await api("admin"), "/staff/admin/users")
    row = re.search(r'<tr data-username="sso.user".*?</tr>', listing, re.S)
    assert row is not None and "统一身份认证" in row.group(0) and "重设密码" not in row.group(0)
    admin = await accounts.user_by_name("admin")
    assert admin is not None
    await accounts.set_active(admin.actor, session.user.id, False)
    with pytest.raises(SsoRefused, match="停用"):
        await accounts.sso_login(identity("sub-3", "sso.user", Role.AGENT), "t")


async def test_sso_session_cannot_change_a_password(app_client: Any, http_session: Any) -> None:
    accounts: Accounts = app_client.app[SERVICES].accounts
    token, session = await accounts.sso_login(identity("sub-4", "sso.pw", Role.AGENT), "t")
    s, base = http_session()
    s.cookie_jar.update_cookies({"hotline_session": token})
    async with s.get(base + "/staff/account") as resp:
        assert "统一身份认证账号没有本平台密码" in await resp.text()
    data = {
        "csrf_token": session.csrf_token,
        "old_password": "x",
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
    }
    async with s.post(base + "/staff/account/password", data=data) as resp:
        assert resp.status == 422
