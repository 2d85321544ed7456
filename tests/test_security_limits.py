"""Abuse limits at the edge, through the API with small limits, behind a trusted proxy so each
test client can have its own address: the citizens' status lookup cannot guess a phone, web
intake per address, login back-off that neither locks the owner out nor can be sprayed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from agent_ui.limits import (
    CitizenGuard,
    CitizenPolicy,
    LoginPolicy,
    LoginThrottle,
    MemoryWindows,
    RedisWindows,
    SlidingWindow,
    Throttled,
)
from hotline.config import Settings
from tests.conftest import PASSWORD, make_settings

PHONE = "13812345678"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(
        db_url,
        HOTLINE__SERVER__TRUSTED_PROXIES='["127.0.0.1"]',
        HOTLINE__SECURITY__LOOKUPS_PER_MINUTE="8",
        HOTLINE__SECURITY__LOOKUP_MISSES_PER_NUMBER="3",
        HOTLINE__SECURITY__INTAKE_PER_HOUR="4",
        HOTLINE__SECURITY__LOGIN_MAX_FAILURES="3",
        HOTLINE__SECURITY__LOGIN_ADDRESS_FAILURES="6",
    )


class Client:
    """Raw requests from one client address (X-Forwarded-For, added by the trusted proxy)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, address: str) -> None:
        self.session, self.base, self.address = session, base, address

    async def call(
        self, method: str, path: str, body: Any = None, **params: str
    ) -> tuple[int, Any, Any]:
        async with self.session.request(
            method,
            self.base + "/api/v1" + path,
            json=body,
            params=params or None,
            headers={"X-Forwarded-For": self.address},
        ) as resp:
            return resp.status, await resp.json(), resp.headers


@pytest.fixture
def client(
    http_session: Callable[[], tuple[aiohttp.ClientSession, str]],
) -> Callable[[str], Client]:
    def make(address: str) -> Client:
        return Client(*http_session(), address)

    return make


async def submit(c: Client, phone: str = PHONE) -> str:
    status, body, _ = await c.call("POST", "/requests", {"content": "小区路灯不亮", "phone": phone})
    assert status == 201, body
    return str(body["number"])


# -- 1. the status lookup cannot be used to guess a confidential caller's phone -----------------
async def test_lookup_misses_pause_the_number_even_for_the_right_phone(
    client: Callable[[str], Client],
) -> None:
    citizen = client("198.51.100.1")
    number = await submit(citizen)
    attacker = client("203.0.113.9")
    for guess in ("13900000001", "13900000002", "13900000003"):
        status, body, _ = await attacker.call("GET", f"/requests/{number}", phone=guess)
        assert (status, body["error"]["code"]) == (404, "not_found")
    # the number is paused for everyone, the right phone included: guessing stops here
    status, body, headers = await attacker.call("GET", f"/requests/{number}", phone=PHONE)
    assert (status, body["error"]["code"]) == (429, "too_many_requests")
    assert int(headers["Retry-After"]) > 0
    status, _, _ = await citizen.call("GET", f"/requests/{number}", phone=PHONE)
    assert status == 429
    # rating goes through the same door
    status, body, _ = await attacker.call(
        "POST", f"/requests/{number}/rating", {"phone": PHONE, "satisfaction": "unsatisfied"}
    )
    assert status == 429
    # other orders are not affected
    other = await submit(client("198.51.100.2"), "13700000000")
    status, _, _ = await citizen.call("GET", f"/requests/{other}", phone="13700000000")
    assert status == 200


async def test_lookups_are_limited_per_address(client: Callable[[str], Client]) -> None:
    citizen = client("198.51.100.3")
    number = await submit(citizen)
    for _ in range(8):
        status, _, _ = await citizen.call("GET", f"/requests/{number}", phone=PHONE)
        assert status == 200
    status, body, headers = await citizen.call("GET", f"/requests/{number}", phone=PHONE)
    assert (status, body["error"]["code"]) == (429, "too_many_requests")
    assert "Retry-After" in headers
    # another address is not slowed down by this one
    status, _, _ = await client("198.51.100.4").call("GET", f"/requests/{number}", phone=PHONE)
    assert status == 200


async def test_unknown_number_and_wrong_phone_answer_alike(client: Callable[[str], Client]) -> None:
    c = client("198.51.100.5")
    number = await submit(c)
    _, wrong_phone, _ = await c.call("GET", f"/requests/{number}", phone="13900000009")
    _, unknown, _ = await c.call("GET", "/requests/20990101000001", phone=PHONE)
    assert wrong_phone == unknown


# -- 3. web intake per address ----------------------------------------------------------------
async def test_web_intake_is_limited_per_address(client: Callable[[str], Client]) -> None:
    flooder = client("203.0.113.20")
    for _ in range(4):
        await submit(flooder, "13600000000")
    status, body, headers = await flooder.call(
        "POST", "/requests", {"content": "再来一条", "phone": "13600000000"}
    )
    assert (status, body["error"]["code"]) == (429, "too_many_requests")
    assert int(headers["Retry-After"]) > 0
    await submit(client("198.51.100.21"))  # a citizen elsewhere still gets through


# -- 5. login: back-off per (user, address) and per address; no lockout of the owner -------------
async def login(c: Client, username: str, password: str) -> int:
    status, _, _ = await c.call("POST", "/session", {"username": username, "password": password})
    return status


async def test_wrong_passwords_slow_that_address_not_the_owner(
    client: Callable[[str], Client],
) -> None:
    guesser = client("203.0.113.30")
    for _ in range(3):
        assert await login(guesser, "supervisor", "wrong-password") == 401
    assert await login(guesser, "supervisor", "wrong-password") == 429
    assert await login(guesser, "supervisor", PASSWORD) == 429  # the guesser waits
    # the owner, from their own desk, logs in as usual
    assert await login(client("198.51.100.31"), "supervisor", PASSWORD) == 200


async def test_password_spraying_from_one_address_backs_off_that_address(
    client: Callable[[str], Client],
) -> None:
    sprayer = client("203.0.113.40")
    names = [f"user{i}" for i in range(6)]
    for name in names:
        assert await login(sprayer, name, "Spring2026!") == 401
    assert await login(sprayer, "nobody-else", "Spring2026!") == 429
    # a valid user elsewhere is not locked out by the sprayer's random names
    assert await login(client("198.51.100.41"), "dispatcher", PASSWORD) == 200


async def test_own_logins_do_not_reset_the_address_count(client: Callable[[str], Client]) -> None:
    """A sprayer who owns an account cannot log into it between guesses to start over."""
    sprayer = client("203.0.113.50")
    for i in range(6):
        if i % 2:
            assert await login(sprayer, "agent", PASSWORD) == 200
        assert await login(sprayer, f"victim{i}", "Winter2026!") == 401
    assert await login(sprayer, "victim-next", "Winter2026!") == 429


async def test_login_throttle_memory_is_bounded() -> None:
    now = [0.0]
    windows = MemoryWindows(max_keys=1000)
    throttle = LoginThrottle(LoginPolicy(), windows=windows, clock=lambda: now[0])
    for i in range(20_000):
        await throttle.failure(f"name{i}", f"10.0.{i // 250}.{i % 250}")
    assert len(windows._events) <= 1000 and len(windows._blocks) <= 1000


@pytest.fixture(params=["memory", "redis"])
async def windows(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        yield MemoryWindows(max_keys=10)
        return
    import redis.asyncio as aioredis

    server = request.getfixturevalue("redis_server")
    client = aioredis.from_url(server.url)
    yield RedisWindows(client, prefix=f"t{id(request)}")
    await client.aclose()


async def test_sliding_window_contract_on_both_stores(windows: Any) -> None:
    """One contract over the in-process and the Redis store (real Redis)."""
    now = [1_000_000.0]
    w = SlidingWindow(2, 60, windows=windows, clock=lambda: now[0])
    assert await w.hit("a") == 0 and await w.hit("a") == 0
    assert await w.hit("a") > 0  # the third within a minute waits
    assert await w.count("a") == 2
    now[0] += 61
    assert await w.hit("a") == 0  # the window moved on
    await w.forget("a")
    assert await w.count("a") == 0
    await windows.block("b", now[0] + 30, now[0])
    assert await windows.blocked_until("b", now[0]) == pytest.approx(now[0] + 30, abs=0.01)


async def test_memory_windows_forget_the_least_recent_keys() -> None:
    w = MemoryWindows(max_keys=10)
    for i in range(100):
        await w.add(f"k{i}", 1.0, 60)
    assert len(w) == 10


async def test_limits_are_shared_between_processes_through_redis(redis_server: Any) -> None:
    """Two web processes (two clients) count the same address together."""
    import redis.asyncio as aioredis

    a, b = aioredis.from_url(redis_server.url), aioredis.from_url(redis_server.url)
    try:
        one = CitizenGuard(CitizenPolicy(intake_per_hour=3), windows=RedisWindows(a, "shared"))
        two = CitizenGuard(CitizenPolicy(intake_per_hour=3), windows=RedisWindows(b, "shared"))
        await one.before_intake("203.0.113.9")
        await two.before_intake("203.0.113.9")
        await one.before_intake("203.0.113.9")
        with pytest.raises(Throttled):
            await two.before_intake("203.0.113.9")
    finally:
        await a.aclose()
        await b.aclose()


async def test_limits_fail_open_when_redis_is_gone() -> None:
    """A Redis outage must not lock citizens out of the hotline."""
    import redis.asyncio as aioredis

    from tests.redisserver import RedisServer

    with RedisServer() as server:
        client = aioredis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1)
        guard = CitizenGuard(CitizenPolicy(intake_per_hour=1), windows=RedisWindows(client))
        await guard.before_intake("198.51.100.9")
        server.kill()
        await guard.before_intake("198.51.100.9")  # over the limit, but Redis is down: let in
        await client.aclose()


def test_throttled_carries_retry_after() -> None:
    assert Throttled("x", retry_after=7).retry_after == 7
