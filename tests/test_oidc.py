"""The OpenID Connect relying party's checks, one by one: ID tokens signed here with keys made
here and published as a JWKS by a small aiohttp app (the whole flow runs against the real
Keycloak in tests/test_sso_browser.py). Claims → role and department."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from agent_ui.oidc import (
    ClaimRules,
    OidcClient,
    SsoFailed,
    SsoRefused,
    SsoUnavailable,
    identity_from_claims,
)
from tickets.model import Role

CLIENT = "hotline"
NONCE = "n-0S6_WzA2Mj"


class Provider:
    """Discovery and keys of a provider (what a real one publishes), and tokens it signs."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.published = [self.key]
        self.issuer = ""
        self.issuer_published: str | None = None
        self.jwks_fetches = 0

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            iss = self.issuer_published or self.issuer
            return web.json_response(
                {
                    "issuer": iss,
                    "authorization_endpoint": self.issuer + "/auth",
                    "token_endpoint": self.issuer + "/token",
                    "jwks_uri": self.issuer + "/jwks",
                    "end_session_endpoint": self.issuer + "/logout",
                    "code_challenge_methods_supported": ["plain", "S256"],
                    "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
                }
            )

        async def jwks(request: web.Request) -> web.Response:
            self.jwks_fetches += 1
            return web.json_response({"keys": [k.as_dict(private=False) for k in self.published]})

        app = web.Application()
        app.router.add_get("/realm/.well-known/openid-configuration", discovery)
        app.router.add_get("/realm/jwks", jwks)
        return app

    def claims(self, **over: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": CLIENT,
            "azp": CLIENT,
            "exp": now + 300,
            "iat": now,
            "nonce": NONCE,
            "hotline_role": ["agent"],
        }
        return {k: v for k, v in {**base, **over}.items() if v is not None}

    def sign(self, claims: dict[str, Any], key: Any = None, alg: str = "RS256") -> str:
        key = key or self.key
        return jwt.encode({"alg": alg, "kid": key.kid or "k1"}, claims, key)


@pytest.fixture
async def provider(aiohttp_server: Any) -> Provider:
    p = Provider()
    server = await aiohttp_server(p.app())
    p.issuer = str(server.make_url("/realm"))
    return p


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest.fixture
async def client(provider: Provider, monotonic: Monotonic) -> AsyncIterator[OidcClient]:
    c = OidcClient(
        provider.issuer,
        CLIENT,
        "secret",
        redirect_uri="http://127.0.0.1:8080/staff/sso/callback",
        scopes=("openid", "profile"),
        leeway_s=30,
        monotonic=monotonic,
    )
    await c.start()
    yield c
    await c.close()


async def test_a_good_id_token_passes(provider: Provider, client: OidcClient) -> None:
    claims = await client.validate_id_token(provider.sign(provider.claims()), NONCE)
    assert claims["sub"] == "user-1"


@pytest.mark.parametrize(
    "over",
    [
        {"nonce": "another-login"},
        {"nonce": None},
        {"aud": "another-client"},
        {"aud": ["another-client", CLIENT], "azp": "another-client"},
        {"exp": int(time.time()) - 120},  # past the 30 s leeway
        {"iat": None},
        {"sub": None},
        {"iss": "http://127.0.0.1:1/other-realm"},
    ],
    ids=["nonce", "no-nonce", "aud", "azp", "expired", "no-iat", "no-sub", "iss"],
)
async def test_id_token_failing_a_claim_check_is_refused(
    provider: Provider, client: OidcClient, over: dict[str, Any]
) -> None:
    with pytest.raises(SsoFailed):
        await client.validate_id_token(provider.sign(provider.claims(**over)), NONCE)


async def test_id_token_signed_by_another_key_is_refused(
    provider: Provider, client: OidcClient
) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same key id, other key
    with pytest.raises(SsoFailed):
        await client.validate_id_token(provider.sign(provider.claims(), forger), NONCE)


async def test_unsigned_and_shared_secret_tokens_are_refused(
    provider: Provider, client: OidcClient
) -> None:
    """The provider lists HS256 and none; neither is accepted for an ID token here."""
    secret = OctKey.import_key(b"secret" * 6, parameters={"kid": "k1"})
    hs = jwt.encode({"alg": "HS256", "kid": "k1"}, provider.claims(), secret)
    header = base64.urlsafe_b64encode(b'{"alg":"none","kid":"k1"}').rstrip(b"=").decode()
    body = hs.split(".")[1]
    for token in (hs, f"{header}.{body}.", f"{header}.{body}"):
        with pytest.raises(SsoFailed):
            await client.validate_id_token(token, NONCE)


async def test_rotated_provider_keys_are_fetched_again(
    provider: Provider, client: OidcClient, monotonic: Monotonic
) -> None:
    await client.validate_id_token(provider.sign(provider.claims()), NONCE)
    monotonic.now += 61
    new = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    provider.published = [provider.key, new]
    claims = await client.validate_id_token(provider.sign(provider.claims(), new), NONCE)
    assert claims["sub"] == "user-1"
    assert provider.jwks_fetches == 2
    # an unknown key id again within the minute: no third fetch (no flood of the provider)
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k3"})
    with pytest.raises(SsoFailed):
        await client.validate_id_token(provider.sign(provider.claims(), stranger), NONCE)
    assert provider.jwks_fetches == 2


async def test_discovery_naming_another_issuer_is_refused(
    provider: Provider, client: OidcClient
) -> None:
    provider.issuer_published = "https://elsewhere.example/realm"
    with pytest.raises(SsoUnavailable, match="issuer"):
        await client.metadata()


async def test_unreachable_provider_is_unavailable() -> None:
    from tests.ports import free_port

    c = OidcClient(
        f"http://127.0.0.1:{free_port(udp=False)}/realm",
        CLIENT,
        "",
        redirect_uri="http://127.0.0.1:8080/staff/sso/callback",
        timeout_s=5,
    )
    await c.start()
    try:
        with pytest.raises(SsoUnavailable):
            await c.authorization_url("s", "n", "v" * 43)
    finally:
        await c.close()


async def test_authorization_url_carries_pkce_s256_state_and_nonce(
    provider: Provider, client: OidcClient
) -> None:
    verifier = "v" * 64
    url = await client.authorization_url("the-state", "the-nonce", verifier)
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert url.startswith(provider.issuer + "/auth?")
    assert q == {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": "http://127.0.0.1:8080/staff/sso/callback",
        "scope": "openid profile",
        "state": "the-state",
        "nonce": "the-nonce",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }


async def test_logout_url_sends_the_id_token_hint(provider: Provider, client: OidcClient) -> None:
    url = await client.logout_url("the.id.token", "http://127.0.0.1:8080/staff/login?out=1")
    assert url is not None
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["id_token_hint"] == "the.id.token"
    assert q["post_logout_redirect_uri"] == "http://127.0.0.1:8080/staff/login?out=1"


# -- claims → role and department ---------------------------------------------------------------
RULES = ClaimRules(
    role_claim="hotline_role",
    department_claim="hotline_department",
    username_claim="preferred_username",
    name_claim="name",
    roles={"agent": Role.AGENT, "hotline-staff": Role.AGENT, "department": Role.DEPARTMENT,
           "dispatcher": Role.DISPATCHER},
)  # fmt: skip


def known(code: str) -> bool:
    return code == "150100-housing"


def ident(**claims: Any) -> Any:
    return identity_from_claims({"sub": "s1", **claims}, "https://id.example", RULES, known)


def test_claims_name_the_role_as_a_string_or_list_with_unknown_values_ignored() -> None:
    assert ident(hotline_role="agent").role is Role.AGENT
    got = ident(hotline_role=["offline_access", "agent", "hotline-staff"], name="王小明")
    assert (got.role, got.display_name, got.department) == (Role.AGENT, "王小明", None)
    # the department claim only matters for department accounts
    assert ident(hotline_role="agent", hotline_department="150100-housing").department is None


@pytest.mark.parametrize(
    ("claims", "text"),
    [
        ({}, "没有分配热线平台角色"),
        ({"hotline_role": "root"}, "没有分配热线平台角色"),
        ({"hotline_role": 7}, "没有分配热线平台角色"),
        ({"hotline_role": ["agent", "dispatcher"]}, "多个热线平台角色"),
        ({"hotline_role": "department"}, "承办单位"),
        ({"hotline_role": "department", "hotline_department": "999999-x"}, "承办单位"),
        (
            {"hotline_role": "department", "hotline_department": ["150100-housing", "x"]},
            "承办单位",
        ),
    ],
)
def test_claims_without_one_known_role_or_department_are_refused(
    claims: dict[str, Any], text: str
) -> None:
    with pytest.raises(SsoRefused, match=text):
        ident(**claims)


def test_department_claim_gives_the_department() -> None:
    got = ident(
        hotline_role="department", hotline_department="150100-housing", preferred_username="li"
    )
    assert (got.role, got.department, got.username) == (Role.DEPARTMENT, "150100-housing", "li")
