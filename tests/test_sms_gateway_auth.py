"""Who may speak for a citizen's phone: with the Kannel backend every gateway call needs the
token (start-up refuses without one, the generated Kannel configuration carries it), the address
check judges the client behind a trusted proxy, and the signed webhook carries a timestamp so a
captured request can neither be replayed later nor twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_ui.context import SERVICES
from hotline.config import ConfigError
from hotline.db import open_database
from telephony.sms_webhook import refusal, sign
from tickets.model import Actor, Role, TicketFilter

from .conftest import make_settings
from .test_sms import PHONE, SECRET, Clock, signed
from .waiting import wait_until

TOKEN = "k4nnel-token-of-the-test"
AGENT = Actor(Role.AGENT, user_id=None, name="测试话务员")


# -- the token is required with Kannel ---------------------------------------------------------
def test_kannel_backend_without_a_gateway_token_refuses_to_start() -> None:
    with pytest.raises(ConfigError) as info:
        make_settings("sqlite:///:memory:", HOTLINE__SMS__BACKEND="kannel")
    assert "sms.gateway_token" in str(info.value)
    assert "HOTLINE__SMS__GATEWAY_TOKEN" in str(info.value)  # where to put it


def test_kannel_backend_refuses_a_guessable_token() -> None:
    with pytest.raises(ConfigError, match=r"sms\.gateway_token"):
        make_settings(
            "sqlite:///:memory:", HOTLINE__SMS__BACKEND="kannel", HOTLINE__SMS__GATEWAY_TOKEN="abc"
        )


def test_embedded_outbox_needs_no_token() -> None:
    settings = make_settings("sqlite:///:memory:")
    assert (settings.sms.backend, settings.sms.gateway_token) == ("outbox", "")


@dataclass
class KannelSite:
    client: TestClient[Any, Any]
    sendsms: list[dict[str, str]]

    async def mo(
        self, text: str, msg_id: str, token: str | None = TOKEN, **headers: str
    ) -> tuple[int, str]:
        params = {"from": PHONE, "to": "12345", "text": text, "charset": "UTF-8", "id": msg_id}
        if token is not None:
            params["token"] = token
        resp = await self.client.get("/api/v1/sms/kannel", params=params, headers=headers)
        return resp.status, resp.headers.get("X-Hotline-Result", "")

    async def orders(self) -> int:
        tickets = self.client.server.app[SERVICES].tickets
        _, total = await tickets.list_tickets(AGENT, TicketFilter(phone=PHONE))
        return total


async def kannel_site(db_url: str, aiohttp_client: Any, aiohttp_server: Any, **env: str) -> Any:
    """The platform with backend = "kannel"; its sendsms goes to a recorder on 127.0.0.1."""
    from hotline.app import make_app

    seen: list[dict[str, str]] = []

    async def sendsms(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(status=202, text="0: Accepted for delivery")

    gw = web.Application()
    gw.router.add_get("/cgi-bin/sendsms", sendsms)
    server = await aiohttp_server(gw)
    settings = make_settings(
        db_url,
        HOTLINE__SMS__BACKEND="kannel",
        HOTLINE__SMS__GATEWAY_TOKEN=TOKEN,
        HOTLINE__SMS__SENDSMS_URL=str(server.make_url("/cgi-bin/sendsms")),
        **env,
    )
    db = open_database(settings)
    return KannelSite(await aiohttp_client(make_app(settings, db)), seen), db


@pytest.fixture
async def site(db_url: str, aiohttp_client: Any, aiohttp_server: Any) -> AsyncIterator[KannelSite]:
    made, db = await kannel_site(db_url, aiohttp_client, aiohttp_server)
    try:
        yield made
    finally:
        db.close()


async def test_forged_mo_from_the_gateways_address_without_the_token_is_refused(
    site: KannelSite,
) -> None:
    """The report's case: another local process (or a proxy on the same host) posts as Kannel:
    a supplement and a survey opt-out in a citizen's name."""
    assert (await site.mo("冒充市民的补充", "f-1", token=None))[0] == 401
    assert (await site.mo("TD", "f-2", token=None))[0] == 401
    assert (await site.mo("TD", "f-3", token="k4nnel-token-of-the-tesT"))[0] == 401
    assert await site.orders() == 0
    sms = site.client.server.app[SERVICES].sms
    from telephony import sms_store

    assert not await sms.db.read(lambda c: sms_store.is_opted_out(c, PHONE))
    # Kannel with the token
    assert await site.mo("小区停水三天了", "k-1") == (200, "new")
    assert await site.orders() == 1


async def test_delivery_reports_need_the_token_too(site: KannelSite) -> None:
    resp = await site.client.get("/api/v1/sms/dlr", params={"id": "1", "type": "1"})
    assert resp.status == 401
    resp = await site.client.get("/api/v1/sms/dlr", params={"id": "1", "type": "1", "token": TOKEN})
    assert (resp.status, await resp.text()) == (200, "unknown")


async def test_sent_messages_ask_kannel_for_reports_with_the_token(site: KannelSite) -> None:
    assert await site.mo("路灯不亮", "k-2") == (200, "new")

    async def sent() -> list[dict[str, str]]:
        return site.sendsms

    (req,) = await wait_until(sent)  # the sender picks the acknowledgement up
    assert req["dlr-url"].endswith(f"&token={TOKEN}")


@pytest.fixture
async def proxied(
    db_url: str, aiohttp_client: Any, aiohttp_server: Any
) -> AsyncIterator[KannelSite]:
    """Behind a reverse proxy on the same host as Kannel (127.0.0.1 is both)."""
    made, db = await kannel_site(
        db_url, aiohttp_client, aiohttp_server, HOTLINE__SERVER__TRUSTED_PROXIES='["127.0.0.1"]'
    )
    try:
        yield made
    finally:
        db.close()


async def test_behind_a_trusted_proxy_the_proxy_does_not_count_as_the_gateway(
    proxied: KannelSite,
) -> None:
    # relayed by the proxy for someone on the internet, even with a leaked token: 403
    status, _ = await proxied.mo("冒充", "p-1", **{"X-Forwarded-For": "203.0.113.7"})
    assert status == 403
    # a forged first hop does not help: the proxy appends the address it saw
    forged = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7"}
    assert (await proxied.mo("冒充", "p-2", **forged))[0] == 403
    assert await proxied.orders() == 0
    # Kannel itself, straight to the platform
    assert await proxied.mo("小区停水", "p-3") == (200, "new")


# -- the webhook's signature covers a timestamp ------------------------------------------------
NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ts", "skew_s", "why"),
    [
        ("", 0, "缺少 X-Timestamp"),
        ("17x", 0, "Unix 秒"),
        ("１７", 0, "Unix 秒"),  # full-width digits are digits to Python, not to a provider
        (None, -301, "请求已过期"),
        (None, 301, "在未来"),
    ],
    ids=["missing", "garbage", "fullwidth", "old", "future"],
)
def test_webhook_timestamp_outside_the_window_is_refused(
    ts: str | None, skew_s: int, why: str
) -> None:
    body = b'{"from": "13800000201", "text": "x"}'
    stamp = ts if ts is not None else str(int(NOW.timestamp()) + skew_s)
    got = refusal(SECRET, stamp, sign(SECRET, stamp, body), body, NOW, 300)
    assert got is not None and why in got


@pytest.mark.parametrize("skew_s", [-300, 0, 300])
def test_webhook_timestamp_within_the_window_is_taken(skew_s: int) -> None:
    body = b"{}"
    stamp = str(int(NOW.timestamp()) + skew_s)
    assert refusal(SECRET, stamp, sign(SECRET, stamp, body), body, NOW, 300) is None


def test_webhook_signature_binds_the_timestamp() -> None:
    """A signature of the body alone (the old scheme), or moved to a fresh timestamp, fails."""
    import hashlib
    import hmac

    body = b'{"text": "x"}'
    stamp = str(int(NOW.timestamp()))
    body_only = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert refusal(SECRET, stamp, body_only, body, NOW, 300) == "签名校验失败"
    old = str(int(NOW.timestamp()) - 3600)
    assert refusal(SECRET, stamp, sign(SECRET, old, body), body, NOW, 300) == "签名校验失败"


@dataclass
class Hook:
    client: TestClient[Any, Any]
    clock: Clock

    async def post(self, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        resp = await self.client.post("/api/v1/sms/webhook", data=raw, headers=headers)
        return resp.status, await resp.json()

    async def orders(self) -> int:
        tickets = self.client.server.app[SERVICES].tickets
        _, total = await tickets.list_tickets(AGENT, TicketFilter(phone=PHONE))
        return total


@pytest.fixture
async def hook(db_url: str, aiohttp_client: Any) -> AsyncIterator[Hook]:
    from hotline.app import make_app

    settings = make_settings(db_url, HOTLINE__SMS__WEBHOOK_SECRET=SECRET)
    db = open_database(settings)
    try:
        client = await aiohttp_client(make_app(settings, db))
        clock = Clock()
        client.server.app[SERVICES].sms.now = clock  # the platform's clock, moved by the test
        yield Hook(client, clock)
    finally:
        db.close()


async def test_webhook_request_replayed_after_a_minute_is_refused(hook: Hook) -> None:
    """The report's case: a provider that sends no message id; the captured request is sent
    again after a minute (when the content digest no longer matches)."""
    raw, headers = signed({"from": PHONE, "to": "12345", "text": "噪音扰民"}, at=NOW.timestamp())
    status, body = await hook.post(raw, headers)
    assert (status, body["result"]) == (200, "new")
    hook.clock.at += timedelta(minutes=2)
    status, body = await hook.post(raw, headers)
    assert (status, body["error"]["code"]) == (401, "not_authenticated")
    assert "重放" in body["error"]["message"]
    hook.clock.at += timedelta(minutes=10)  # outside the window: refused by its timestamp
    status, body = await hook.post(raw, headers)
    assert status == 401 and "过期" in body["error"]["message"]
    assert await hook.orders() == 1


async def test_webhook_same_request_twice_at_once_is_taken_once(hook: Hook) -> None:
    import asyncio

    raw, headers = signed({"from": PHONE, "text": "路灯不亮"}, at=NOW.timestamp())
    outs = await asyncio.gather(hook.post(raw, headers), hook.post(raw, headers))
    assert sorted(s for s, _ in outs) == [200, 401]
    assert await hook.orders() == 1


async def test_webhook_fresh_signatures_are_taken(hook: Hook) -> None:
    for i in range(3):  # a provider re-signing each message: the signatures differ
        raw, headers = signed({"from": PHONE, "text": f"第{i}条"}, at=hook.clock.at.timestamp())
        assert (await hook.post(raw, headers))[0] == 200
        hook.clock.at += timedelta(seconds=1)


async def test_webhook_with_a_body_signed_without_timestamp_is_refused(hook: Hook) -> None:
    import hashlib
    import hmac
    import json

    raw = json.dumps({"from": PHONE, "text": "旧签名方式"}, ensure_ascii=False).encode()
    sig = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Signature": sig}
    status, body = await hook.post(raw, headers)
    assert status == 401 and "X-Timestamp" in body["error"]["message"]


async def test_webhook_seen_signatures_are_forgotten_after_two_windows(hook: Hook) -> None:
    from telephony import tables

    sms = hook.client.server.app[SERVICES].sms
    raw, headers = signed({"from": PHONE, "text": "第一条"}, at=hook.clock.at.timestamp())
    assert (await hook.post(raw, headers))[0] == 200
    hook.clock.at += timedelta(seconds=601)
    raw, headers = signed({"from": PHONE, "text": "第二条"}, at=hook.clock.at.timestamp())
    assert (await hook.post(raw, headers))[0] == 200
    rows = await sms.db.read(
        lambda c: c.execute(tables.sms_webhook_seen.select()).fetchall()  # bounded store
    )
    assert len(rows) == 1
