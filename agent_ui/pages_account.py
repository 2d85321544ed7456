"""Staff's own account: single sign-on (start at the provider, its callback), the account page
with password change and logout everywhere."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent_ui.api import set_session_cookie
from agent_ui.context import (
    SESSION_COOKIE,
    CsrfFailed,
    client_address,
    current_session,
    require_staff,
    services,
)
from agent_ui.errors import status_for
from agent_ui.limits import Throttled
from agent_ui.pages_staff import (
    LOGIN_CSRF_COOKIE,
    end_session,
    login_page,
    redirect,
    render,
    safe_next,
    staff_context,
)
from agent_ui.sso import SingleSignOn
from tickets.errors import DomainError, InvalidInput, NotFound
from tickets.model import LABELS

SSO_STATE_COOKIE = "hotline_sso_state"
SSO_PATH = "/staff/sso"


def _sso(request: web.Request) -> SingleSignOn:
    sso = services(request).sso
    if sso is None:
        raise NotFound("本平台未启用统一身份认证，请使用本地账号登录")
    return sso


# -- single sign-on -----------------------------------------------------------------------------
async def sso_login(request: web.Request) -> web.Response:
    """GET /staff/sso/login?next=…: off to the provider, with this browser's state in a cookie
    (the callback must bring the same state back, in this browser)."""
    sso = _sso(request)
    svc = services(request)
    next_path = safe_next(request.query.get("next"))
    if await current_session(request) is not None:
        return redirect(next_path)
    state, url = await sso.begin(next_path, client_address(request))
    resp = redirect(url)
    # Lax, not Strict: the provider's redirect back is a cross-site top-level GET
    resp.set_cookie(
        SSO_STATE_COOKIE,
        state,
        httponly=True,
        samesite="Lax",
        secure=svc.web.cookie_secure,
        path=SSO_PATH,
        max_age=int(sso.login_timeout.total_seconds()),
    )
    return resp


async def sso_callback(request: web.Request) -> web.Response:
    """GET /staff/sso/callback?code=…&state=…: the provider's answer. A session only for a
    state this browser holds, a code the provider accepts with this login's PKCE verifier,
    an ID token that passes every check, and claims that name a role (and department)."""
    sso = _sso(request)
    svc = services(request)
    q = request.query
    try:
        done = await sso.finish(
            q.get("state", ""),
            request.cookies.get(SSO_STATE_COOKIE, ""),
            q.get("code", ""),
            q.get("error", ""),
        )
    except DomainError as exc:
        ctx = {
            **await staff_context(request),
            "error": exc.message,
            "notice": None,
            "username": "",
            "next": "/staff/tickets",
        }
        resp = login_page(request, ctx, status=status_for(exc))
        if isinstance(exc, Throttled):
            resp.headers["Retry-After"] = str(exc.retry_after)
        resp.del_cookie(SSO_STATE_COOKIE, path=SSO_PATH)
        return resp
    resp = redirect(done.next_path)
    resp.del_cookie(SSO_STATE_COOKIE, path=SSO_PATH)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/staff/login")
    max_age = int(svc.accounts.session_ttl.total_seconds())
    set_session_cookie(resp, done.token, svc.web.cookie_secure, max_age)
    return resp


# -- the account page ---------------------------------------------------------------------------
async def account_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    actor = await require_staff(request)
    svc = services(request)
    session = await current_session(request)
    assert session is not None
    notices = {"password": "密码已修改；您在其他设备上的登录已全部退出"}
    ctx: dict[str, Any] = {
        **await staff_context(request),
        "account": session.user,
        "role_name": LABELS[actor.role.value],
        "sessions": await svc.accounts.session_count(session.user.id),
        "expires_at": session.expires_at,
        "idle_minutes": int(svc.accounts.session_idle.total_seconds() // 60),
        "min_length": svc.accounts.password_min_length,
        "error": error,
        "notice": notices.get(request.query.get("done", "")),
    }
    return render(request, "staff/account.html", ctx, status=status)


async def account_get(request: web.Request) -> web.Response:
    return await account_page(request)


async def change_password(request: web.Request) -> web.Response:
    try:
        await require_staff(request, write=True)
    except CsrfFailed as exc:
        return await account_page(request, error=exc.message, status=403)
    form = await request.post()
    svc = services(request)
    session = await current_session(request)
    assert session is not None
    old, new = str(form.get("old_password", "")), str(form.get("new_password", ""))
    try:
        if new != str(form.get("new_password2", "")):
            raise InvalidInput("两次输入的新密码不一致", field="new_password2")
        await svc.accounts.change_password(
            request.cookies.get(SESSION_COOKIE, ""),
            session.user,
            old,
            new,
            client_address(request),
        )
    except DomainError as exc:
        resp = await account_page(request, error=exc.message, status=status_for(exc))
        if isinstance(exc, Throttled):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp
    return redirect("/staff/account?done=password")


async def logout_everywhere(request: web.Request) -> web.Response:
    """End every session of this account: other browsers and devices are logged out on their
    next request (their cookies name sessions that no longer exist)."""
    await require_staff(request, write=True)
    return await end_session(request, everywhere=True)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(SSO_PATH + "/login", sso_login)
    r.add_get(SSO_PATH + "/callback", sso_callback)
    r.add_get("/staff/account", account_get)
    r.add_post("/staff/account/password", change_password)
    r.add_post("/staff/account/logout-all", logout_everywhere)
