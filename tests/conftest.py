"""Shared fixtures: a fresh migrated database per test on SQLite and on a real PostgreSQL, the app,
and an API client that logs in as each role."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from hotline.app import load_routing, make_app
from hotline.config import Settings, load_settings
from hotline.db import open_database
from tests.search_fixtures import analyzer, es_node, search  # noqa: F401 - shared fixtures
from tickets.db import Database
from tickets.model import Role

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "test-password-1"
_db_counter = itertools.count()
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One real PostgreSQL for the whole run (make test installs it; never skipped)."""
    from tests.pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """One real Redis for the whole run (make test installs it; never skipped)."""
    from tests.redisserver import RedisServer

    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: Any) -> Iterator[Any]:
    """Two call centres on the run's Redis and their SIP workers (tests/callcentres.py), started
    by the test; stopped here, and their logs printed (pytest shows them when the test failed)."""
    from tests.callcentres import Cluster

    c = Cluster(tmp_path, redis_server.url)
    try:
        yield c
    finally:
        c.stop()
        print("-- workers --\n" + c.workers_output()[-6000:] if c.workers else "no workers")
        for i, server in enumerate(c.centres):
            print(f"-- centre {i} --\n{server.output()[-6000:]}")


@pytest.fixture(scope="session")
def keycloak(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One real Keycloak for the whole run, with the test realm (tests/kcserver.py: the
    distribution from Maven Central, built and seeded once into a cache; never skipped)."""
    from tests.kcserver import KeycloakServer

    server = KeycloakServer()
    try:
        server.start()
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"keycloak: ready at {server.base} (cache preparation {server.prepare_s:.0f} s, "
                f"start {server.start_s:.0f} s)"
            )
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL for each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hotline.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"t{next(_db_counter)}"
    server.create_database(name)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hotline.db'}"


# every test client is 127.0.0.1: per-address limits off unless a test is about them
UNLIMITED = {
    "HOTLINE__SECURITY__INTAKE_PER_HOUR": "100000",
    "HOTLINE__SECURITY__LOOKUPS_PER_MINUTE": "10000",
    "HOTLINE__SECURITY__LOGIN_ADDRESS_FAILURES": "10000",
}


# the tests' embedded search indexes, each in a folder of its own under one removed at exit
_SEARCH_DIRS = tempfile.TemporaryDirectory(prefix="hotline-search-")


def make_settings(db_url: str, **env: str) -> Settings:
    # background triage would race the lifecycle tests' own dispatching: on where tested
    # SIP workers only where a test asks for them (tests/test_telephony*.py)
    environ = {
        "HOTLINE__DATABASE__URL": db_url,
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__TELEPHONY__ENABLED": "false",
        # near-duplicate detection adds audit events of its own to orders: on where tested
        "HOTLINE__SIMILAR__ENABLED": "false",
        # the embedded search index of this test's own (never the repository's var/)
        "HOTLINE__SEARCH__PATH": str(Path(tempfile.mkdtemp(dir=_SEARCH_DIRS.name)) / "s.db"),
        **UNLIMITED,
        **env,
    }
    return load_settings(REPO / "config.toml", environ=environ)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(db_url)


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = open_database(settings)  # the migrations build the schema
    try:
        yield db
    finally:
        db.close()


# -- users of every role ----------------------------------------------------------------------
USERS: dict[str, tuple[Role, str | None]] = {
    "agent": (Role.AGENT, None),
    "dispatcher": (Role.DISPATCHER, None),
    "supervisor": (Role.SUPERVISOR, None),
    "manager": (Role.MANAGER, None),
    "admin": (Role.ADMIN, None),
    "housing": (Role.DEPARTMENT, "150100-housing"),  # 呼和浩特市住房和城乡建设局 (lead)
    "urban": (Role.DEPARTMENT, "150100-urban"),  # 呼和浩特市城市管理综合执法局 (assist)
    "xc_housing": (Role.DEPARTMENT, "150102-housing"),  # 新城区住建局 (one level down)
    "ecology": (Role.DEPARTMENT, "150200-ecology"),  # 包头市生态环境局 (uninvolved)
}


def create_users(settings: Settings, db: Database) -> None:
    from agent_ui.accounts import Accounts

    # cheap Argon2 parameters: login verifies with the parameters stored in the hash
    accounts = Accounts(db, load_routing(settings), hasher=FAST_HASHER)
    for username, (role, dept) in USERS.items():
        accounts.create_user_sync(username, PASSWORD, role, dept, f"测试-{username}")


@dataclass
class Api:
    """An API client with its own cookie jar; log in as a user or stay a citizen."""

    session: aiohttp.ClientSession
    base: str
    csrf: str | None = None

    async def login(self, username: str, password: str = PASSWORD) -> Api:
        data = await self.post("/session", {"username": username, "password": password})
        self.csrf = data["user"]["csrf_token"]
        return self

    def _headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf} if self.csrf else {}

    async def request(
        self, method: str, path: str, body: Any = None, status: int | None = None, **params: Any
    ) -> Any:
        async with self.session.request(
            method,
            self.base + "/api/v1" + path,
            json=body,
            params=params or None,
            headers=self._headers(),
        ) as resp:
            data = await resp.json()
            if status is not None:
                assert resp.status == status, (resp.status, data)
            return data

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        return await self.request("GET", path, None, status, **params)

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        return await self.request("POST", path, body, status)

    async def act(self, ticket: dict[str, Any], action: str, status: int = 200, **body: Any) -> Any:
        """Take a workflow action on `ticket` at its current version."""
        payload = {"version": ticket["version"], **body}
        return await self.post(f"/tickets/{ticket['id']}/{action}", payload, status)


@pytest.fixture
async def app_client(
    settings: Settings, database: Database, aiohttp_client: Any
) -> TestClient[Any, Any]:
    create_users(settings, database)
    client: TestClient[Any, Any] = await aiohttp_client(make_app(settings, database))
    return client


@pytest.fixture
async def http_session(
    app_client: TestClient[Any, Any],
) -> AsyncIterator[Callable[[], tuple[aiohttp.ClientSession, str]]]:
    """http_session() → (a client session with its own cookie jar, the app's base URL);
    every session made is closed at the end of the test."""
    sessions: list[aiohttp.ClientSession] = []
    base = str(app_client.make_url("")).rstrip("/")

    def make() -> tuple[aiohttp.ClientSession, str]:
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(s)
        return s, base

    yield make
    for s in sessions:
        await s.close()


@pytest.fixture
def api(http_session: Callable[[], tuple[aiohttp.ClientSession, str]]) -> Any:
    """api() → a citizen client; api("dispatcher") → logged in as that test user."""

    async def make(username: str | None = None) -> Api:
        client = Api(*http_session())
        return await client.login(username) if username else client

    return make
