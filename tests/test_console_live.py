"""The live console in Chromium (async Playwright against the in-process app, so a test can
put a call event on the bus): changes pushed over the WebSocket to the pages that may see them,
the screen pop with the caller's earlier orders, the order form's live suggestions and the
one-step register-and-dispatch; and the WebSocket's own rules (session, Origin, isolation,
catch-up) with a plain client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from hotline.app import BUS
from hotline.config import Settings
from telephony.model import CtiEvent
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.conftest import PASSWORD, Api, make_settings

PHONE = "13812345678"
WAIT = 30_000  # ms: generous on a loaded machine; never a speed assertion


@pytest.fixture
def db_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'hotline.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    # the order form's suggestions need the shipped classifier; triage itself stays off
    return make_settings(db_url)


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} missing: make test installs Debian's chromium"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def base(app_client: Any) -> str:
    return str(app_client.make_url("")).rstrip("/")


async def logged_in(chromium: Any, base: str, username: str) -> Any:
    ctx = await chromium.new_context(base_url=base, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.errors = errors
    await page.goto("/staff/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r".*/staff/(?!login).*"))
    return page


async def live(page: Any) -> None:
    await page.wait_for_selector("body[data-live='on']", state="attached", timeout=WAIT)


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_open_order_says_when_someone_else_changes_it(
    chromium: Any, base: str, api: Any
) -> None:
    agent: Api = await api("agent")
    t = await agent.post("/tickets", {"content": "小区垃圾无人清运", "phone": PHONE}, 201)
    page = await logged_in(chromium, base, "dispatcher")
    await page.goto(f"/staff/tickets/{t['id']}")
    await live(page)
    supervisor: Api = await api("supervisor")
    await supervisor.act(t, "edit", summary="垃圾清运不及时（班长核实）")
    banner = page.locator("#live-ticket")
    await banner.wait_for(timeout=WAIT)
    text = await banner.inner_text()
    assert "修改" in text and "测试-supervisor" in text
    await shot(page, "live-open-order")
    assert not page.errors, page.errors


async def test_a_list_hears_of_new_orders(chromium: Any, base: str, api: Any) -> None:
    page = await logged_in(chromium, base, "supervisor")
    await page.goto("/staff/tickets?view=all")
    await live(page)
    citizen: Api = await api()
    created = await citizen.post("/requests", {"content": "路灯不亮", "phone": PHONE}, 201)
    banner = page.locator("#live-list")
    await banner.wait_for(timeout=WAIT)
    assert created["number"] in await banner.inner_text()
    assert not page.errors, page.errors


async def test_screen_pop_then_register_and_dispatch_in_one_step(
    chromium: Any, base: str, api: Any, app_client: Any
) -> None:
    agent: Api = await api("agent")
    earlier = await agent.post(
        "/tickets", {"content": "上月反映的暖气不热问题", "phone": PHONE}, 201
    )
    page = await logged_in(chromium, base, "agent")
    await live(page)
    ring = CtiEvent(
        "call.ringing",
        datetime.now(UTC),
        call="call-1",
        caller=PHONE,
        agent="agent",
        data={"kind": "complaint", "language": "cmn", "waited_s": 12.5},
    )
    await app_client.app[BUS].publish([ring], topic="cti")
    pop = page.locator("#screen-pop")
    await pop.wait_for(timeout=WAIT)
    assert PHONE in await pop.inner_text()
    assert "投诉举报" in await pop.inner_text() and "12.5 秒" in await pop.inner_text()
    await page.locator(f"#pop-orders a:has-text('{earlier['number']}')").wait_for(timeout=WAIT)
    await shot(page, "live-screen-pop")

    await page.click("#pop-register")
    await page.wait_for_url(re.compile(r".*/staff/tickets/new\?.*"))
    assert await page.input_value("#phone") == PHONE
    await page.fill("#address", "呼和浩特市新城区海东路某小区")
    await page.fill("#content", "新城区某小区冬季供暖温度一直不达标，室内只有十四度，物业不处理")
    await page.locator("#assist-department").wait_for(timeout=WAIT)  # the live suggestion
    assert "%" in await page.inner_text("#assist-top3")
    assert earlier["number"] in await page.inner_text("#assist-mine")
    await shot(page, "live-order-form")
    await page.click("#assist-department button")
    assert await page.is_checked("#then-dispatch")
    lead = await page.input_value("#lead")
    assert lead
    await page.click("#register")
    await page.wait_for_url(re.compile(r".*done=dispatch"))
    assert await page.inner_text("#status-label") == "已派单"
    assert not page.errors, page.errors


# -- the WebSocket's own rules ------------------------------------------------------------------
async def ws_session(base: str, username: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post(
        base + "/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as r:
        assert r.status == 200
    return s


async def received(ws: Any, within: float = 3.0) -> list[dict[str, Any]]:
    """What arrives within a short quiet period (the absence check; presence is waited for)."""
    out = []
    while True:
        try:
            msg = await asyncio.wait_for(ws.receive_json(), within)
        except TimeoutError:
            return out
        out.append(msg)


async def test_websocket_needs_a_session_and_our_origin(base: str) -> None:
    async with aiohttp.ClientSession() as anon:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await anon.ws_connect(base + "/api/v1/live", headers={"Origin": base})
        assert err.value.status == 401
    s = await ws_session(base, "dispatcher")
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect(base + "/api/v1/live", headers={"Origin": "https://evil.example"})
        assert err.value.status == 403
    finally:
        await s.close()


async def test_departments_hear_only_their_own_orders_and_catch_up(base: str, api: Any) -> None:
    dispatcher: Api = await api("dispatcher")
    agent: Api = await api("agent")
    housing_s, ecology_s = await ws_session(base, "housing"), await ws_session(base, "ecology")
    try:
        housing = await housing_s.ws_connect(base + "/api/v1/live", headers={"Origin": base})
        ecology = await ecology_s.ws_connect(base + "/api/v1/live", headers={"Origin": base})
        assert (await housing.receive_json())["type"] == "hello"
        assert (await ecology.receive_json())["type"] == "hello"
        t = await agent.post("/tickets", {"content": "楼道灯坏", "phone": PHONE}, 201)
        t = await dispatcher.act(t, "dispatch", lead="150100-housing")
        got = await asyncio.wait_for(housing.receive_json(), 30)
        assert (got["type"], got["number"], got["action"]) == ("ticket", t["number"], "dispatch")
        assert PHONE not in str(got)
        assert await received(ecology) == []  # another department's order: nothing
        last = got["id"]
        await housing.close()
        # while away: the order is edited; on reconnecting with since=, the page catches up
        await dispatcher.act(t, "edit", summary="楼道灯不亮")
        again = await housing_s.ws_connect(
            base + f"/api/v1/live?since={last}", headers={"Origin": base}
        )
        assert (await again.receive_json())["type"] == "hello"
        missed = await asyncio.wait_for(again.receive_json(), 30)
        assert (missed["action"], missed["ticket"]) == ("edit", t["id"])
        await again.close()
        await ecology.close()
    finally:
        await housing_s.close()
        await ecology_s.close()


async def test_shutdown_tells_consoles_to_reconnect(base: str, app_client: Any) -> None:
    """A stopping process closes its consoles' sockets with 1001 at once (their pages
    reconnect, with since=, to whichever process answers) instead of holding the stop."""
    s = await ws_session(base, "dispatcher")
    try:
        ws = await s.ws_connect(base + "/api/v1/live", headers={"Origin": base})
        assert (await ws.receive_json())["type"] == "hello"
        await app_client.app.shutdown()
        msg = await asyncio.wait_for(ws.receive(), 30)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001
    finally:
        await s.close()
