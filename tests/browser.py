"""Real-browser tests: Debian's Chromium driven by Playwright (sync API) against a real
`hotline serve` on ports and folders of the test's own. `make test` installs Chromium; a missing
browser fails the test, it never skips.

Use from a test module:

    from tests.browser import *  # noqa: F403  (fixtures: web_server, browser, page, staff_page)

    def test_something(staff_page):
        page = staff_page("dispatcher")
        page.goto("/staff/tickets")

Every page collects console errors and uncaught exceptions; a test fails if any appeared.
Screenshots go to `var/test-artifacts/` (or $HOTLINE_TEST_ARTIFACTS) via `screenshot(page, name)`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD, REPO, create_users, make_settings
from tests.hotline_server import Server

CHROMIUM = Path(os.environ.get("HOTLINE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS", REPO / "var" / "test-artifacts"))
# flags: headless on a closed network (no background fetches), loopback WebRTC, fake media
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
]
PHONE_VIEWPORT = {"width": 390, "height": 844}


@dataclass
class WebServer:
    """A running `hotline serve` with the test users of tests/conftest.py."""

    server: Server
    db_url: str
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base


def start_web_server(tmp: Path, env: dict[str, str] | None = None) -> WebServer:
    """Migrate a fresh SQLite database, add the test users, start `hotline serve` on it."""
    from hotline.db import open_database

    db_url = f"sqlite:///{tmp / 'hotline.db'}"
    env = {
        "HOTLINE__TELEPHONY__ENABLED": "false",
        "HOTLINE__TRIAGE__ENABLED": "false",  # tests that want the triage turn it on
        **(env or {}),
    }
    settings = make_settings(db_url, **env)
    db = open_database(settings)
    try:
        create_users(settings, db)
    finally:
        db.close()
    server = Server(tmp, db_url, env=env)
    server.wait_ready()
    return WebServer(server, db_url, tmp, env)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One server per test module (triage off, telephony off)."""
    ws = start_web_server(tmp_path_factory.mktemp("web"))
    try:
        yield ws
    finally:
        ws.server.kill()


# Module scope: every test module star-imports these fixtures, so pytest keeps one `browser`
# per module; a session-scoped one would start a second Playwright inside the first's loop
# as soon as two browser modules run together ("Sync API inside the asyncio loop").
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Per module, not per session: sync Playwright keeps an event loop running in this thread
    while it is started, and the async tests of other modules need the thread's loop free."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class PageErrors(list[str]):
    """Console errors and uncaught exceptions seen by one page."""

    def __init__(self) -> None:
        super().__init__()
        self.allowed: list[str] = []

    def unexpected(self) -> list[str]:
        return [e for e in self if not any(a in e for a in self.allowed)]


_WATCHED: dict[int, PageErrors] = {}


def expect_console_error(page: Any, substring: str) -> None:
    """The test provokes an error status on purpose (a 4xx page): do not fail on it."""
    _WATCHED[id(page)].allowed.append(substring)


def _watch(page: Any) -> PageErrors:
    errors = PageErrors()
    _WATCHED[id(page)] = errors

    def on_console(m: Any) -> None:
        if m.type == "error":
            errors.append(f"console: {m.text} ({m.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


@pytest.fixture
def new_page(browser: Any, web_server: WebServer) -> Iterator[Callable[..., Any]]:
    """new_page(viewport=None, locale="zh-CN") → a page in a fresh context (own cookies),
    with base_url set to the test server. Fails the test on any console error."""
    contexts: list[tuple[Any, PageErrors]] = []

    def make(viewport: dict[str, int] | None = None, **kwargs: Any) -> Any:
        ctx = browser.new_context(
            base_url=web_server.base,
            viewport=viewport or {"width": 1280, "height": 900},
            locale=kwargs.pop("locale", "zh-CN"),
            timezone_id=kwargs.pop("timezone_id", "Asia/Shanghai"),
            **kwargs,
        )
        ctx.set_default_timeout(15_000)
        page = ctx.new_page()
        contexts.append((ctx, _watch(page)))
        return page

    yield make
    errors = [e for _, errs in contexts for e in errs.unexpected()]
    for ctx, _ in contexts:
        ctx.close()
    _WATCHED.clear()
    assert not errors, "browser errors:\n" + "\n".join(errors)


@pytest.fixture
def page(new_page: Callable[..., Any]) -> Any:
    return new_page()


def login(page: Any, username: str, password: str = PASSWORD) -> Any:
    """Log in through the staff login form, as a person would."""
    page.goto("/staff/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/staff/(?!login).*"))
    return page


@pytest.fixture
def staff_page(new_page: Callable[..., Any]) -> Callable[..., Any]:
    """staff_page("dispatcher") → a page logged in as that test user (tests/conftest.py USERS)."""

    def make(username: str, **kwargs: Any) -> Any:
        return login(new_page(**kwargs), username)

    return make


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", name)
    path = ARTIFACTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


__all__ = [
    "PHONE_VIEWPORT",
    "WebServer",
    "browser",
    "expect_console_error",
    "login",
    "new_page",
    "page",
    "screenshot",
    "staff_page",
    "start_web_server",
    "web_server",
]
