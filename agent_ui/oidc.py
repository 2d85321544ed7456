"""OpenID Connect relying party for staff single sign-on: discovery, the authorization request
(code flow with PKCE S256, state and nonce), the code exchange, the ID token's checks, and the
claims read as a platform role and department.

The protocol parts are Authlib's (authorization URL with the S256 challenge, the token request
body, the OpenID ID-token claim rules: iss, aud, exp, iat, nonce, azp, at_hash); signatures are
checked by joserfc against the provider's JWKS. aiohttp carries the requests, each under a
timeout."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from authlib.oauth2.client import OAuth2Client
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from tickets.errors import DomainError, Forbidden, Unavailable
from tickets.model import Role

log = logging.getLogger(__name__)

# asymmetric signatures only: "none" and shared-secret HS* are never accepted for ID tokens
SIGNING_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
METADATA_TTL_S = 3600.0  # discovery and keys are read again after an hour …
KEYS_REFRESH_MIN_S = 60.0  # … or at once for an unknown key id, at most once a minute
MAX_RESPONSE_BYTES = 1024 * 1024


class SsoUnavailable(Unavailable):
    """The identity provider cannot be reached or answers nonsense (HTTP 503)."""

    code = "sso_unavailable"


class SsoStateInvalid(DomainError):
    """A callback without the login it answers (state unknown, used, expired, or not this
    browser's): HTTP 400, and nothing is exchanged."""

    code = "sso_state_invalid"


class SsoFailed(DomainError):
    """The provider refused the code (e.g. a PKCE verifier that does not match) or the ID
    token failed a check: no session."""

    code = "sso_failed"


class SsoRefused(Forbidden):
    """A genuine provider login whose claims give no platform access (HTTP 403)."""

    code = "sso_refused"


@dataclass(frozen=True, slots=True)
class SsoIdentity:
    """Who the provider says logged in, as the platform understands it."""

    issuer: str
    subject: str
    username: str
    display_name: str
    role: Role
    department: str | None


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """Which claims carry what (from [sso] in config.toml)."""

    role_claim: str
    department_claim: str
    username_claim: str
    name_claim: str
    roles: dict[str, Role]


def _values(raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list):
        return [v for v in raw if isinstance(v, str)]
    return []


def identity_from_claims(
    claims: dict[str, Any],
    issuer: str,
    rules: ClaimRules,
    has_department: Callable[[str], bool],
) -> SsoIdentity:
    """The platform role and department the validated claims name; SsoRefused otherwise."""
    roles = {rules.roles[v] for v in _values(claims.get(rules.role_claim)) if v in rules.roles}
    if not roles:
        raise SsoRefused(
            "您的统一身份认证账号没有分配热线平台角色，无法登录工作台。请联系管理员在身份认证"
            f"系统中设置“{rules.role_claim}”。",
            claim=rules.role_claim,
        )
    if len(roles) > 1:
        names = "、".join(sorted(r.value for r in roles))
        raise SsoRefused(
            f"您的统一身份认证账号同时分配了多个热线平台角色（{names}），无法确定以哪个角色登录。"
            "请联系管理员只保留一个。",
            claim=rules.role_claim,
        )
    (role,) = roles
    department = None
    if role is Role.DEPARTMENT:
        codes = _values(claims.get(rules.department_claim))
        if len(codes) != 1 or not has_department(codes[0]):
            raise SsoRefused(
                "您的统一身份认证账号是承办单位账号，但没有分配本平台已有的承办单位"
                f"（“{rules.department_claim}”），无法登录。请联系管理员。",
                claim=rules.department_claim,
            )
        department = codes[0]
    subject = str(claims["sub"])
    username = _values(claims.get(rules.username_claim))
    name = _values(claims.get(rules.name_claim))
    return SsoIdentity(
        issuer=issuer,
        subject=subject,
        username=username[0] if username else subject,
        display_name=(name[0] if name else "") or (username[0] if username else subject),
        role=role,
        department=department,
    )


@dataclass(frozen=True, slots=True)
class TokenResult:
    id_token: str
    claims: dict[str, Any]


class OidcClient:
    """One identity provider, discovered from its issuer URL on first use."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        *,
        redirect_uri: str,
        scopes: Sequence[str] = ("openid",),
        timeout_s: float = 10.0,
        leeway_s: int = 60,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = tuple(scopes)
        self.timeout_s = timeout_s
        self.leeway_s = leeway_s
        self.clock = clock
        self.monotonic = monotonic
        self._http: aiohttp.ClientSession | None = None
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = -KEYS_REFRESH_MIN_S
        self._lock = asyncio.Lock()

    # -- lifecycle (one cleanup_ctx in hotline/app.py) ------------------------------------------
    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- talking to the provider ----------------------------------------------------------------
    async def _json(self, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        if self._http is None:
            raise SsoUnavailable("统一身份认证尚未就绪，请稍后重试")
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._http.request(method, url, allow_redirects=False, **kwargs) as resp,
            ):
                raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
                if len(raw) > MAX_RESPONSE_BYTES:
                    raise ValueError("response too large")
                return resp.status, _loads(raw)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("identity provider %s %s failed: %r", method, url, exc)
            raise SsoUnavailable("统一身份认证服务暂时无法访问，请稍后重试") from None

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (its issuer must be the configured one)."""
        async with self._lock:
            fresh = self.monotonic() - self._metadata_at < METADATA_TTL_S
            if self._metadata is not None and fresh:
                return self._metadata
            url = self.issuer + "/.well-known/openid-configuration"
            status, doc = await self._json("GET", url)
            missing = [
                k
                for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                if not isinstance(doc.get(k), str)
            ]
            if status != 200 or missing:
                log.warning("discovery at %s: status %s, missing %s", url, status, missing)
                raise SsoUnavailable("统一身份认证服务配置读取失败，请稍后重试")
            if doc["issuer"].rstrip("/") != self.issuer:
                # a document for another issuer would let that issuer's tokens in
                log.error("discovery at %s names issuer %r", url, doc["issuer"])
                raise SsoUnavailable("统一身份认证服务的 issuer 与配置不一致，请联系管理员")
            methods = doc.get("code_challenge_methods_supported")
            if isinstance(methods, list) and "S256" not in methods:
                raise SsoUnavailable("统一身份认证服务不支持 PKCE S256，请联系管理员")
            self._metadata, self._metadata_at = doc, self.monotonic()
            self._keys = None
            return doc

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        meta = await self.metadata()
        if self._keys is not None and not refresh:
            return self._keys
        if refresh and self.monotonic() - self._keys_at < KEYS_REFRESH_MIN_S and self._keys:
            return self._keys
        status, jwks = await self._json("GET", meta["jwks_uri"])
        try:
            if status != 200:
                raise ValueError(f"status {status}")
            keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        except (ValueError, JoseError, KeyError, TypeError) as exc:
            log.warning("provider keys at %s unusable: %r", meta["jwks_uri"], exc)
            raise SsoUnavailable("统一身份认证服务的签名密钥读取失败，请稍后重试") from None
        self._keys, self._keys_at = keys, self.monotonic()
        return keys

    def _oauth(self) -> OAuth2Client:
        return OAuth2Client(
            None,
            client_id=self.client_id,
            client_secret=self.client_secret or None,
            redirect_uri=self.redirect_uri,
            scope=" ".join(self.scopes),
            code_challenge_method="S256",
        )

    async def authorization_url(self, state: str, nonce: str, code_verifier: str) -> str:
        """Where the browser goes to log in: code flow, PKCE S256 challenge, state, nonce."""
        meta = await self.metadata()
        url, _ = self._oauth().create_authorization_url(
            meta["authorization_endpoint"], state=state, code_verifier=code_verifier, nonce=nonce
        )
        return str(url)

    async def exchange(self, code: str, code_verifier: str, nonce: str) -> TokenResult:
        """Trade the code (with the PKCE verifier) for tokens; return the checked ID token."""
        meta = await self.metadata()
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=code_verifier,
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        auth = None
        if self.client_secret:  # client_secret_basic: both parts form-encoded first (RFC 6749)
            auth = aiohttp.BasicAuth(quote(self.client_id, safe=""), quote(self.client_secret, ""))
        else:  # a public client: PKCE is its only proof
            body += "&client_id=" + quote(self.client_id, safe="")
        status, token = await self._json(
            "POST", meta["token_endpoint"], data=body, headers=headers, auth=auth
        )
        if status != 200 or not isinstance(token.get("id_token"), str):
            log.warning(
                "token endpoint refused the code: %s %s %s",
                status,
                token.get("error"),
                token.get("error_description"),
            )
            raise SsoFailed("统一身份认证登录未完成（授权码无效、已使用或校验失败），请重新登录")
        access = token.get("access_token")
        claims = await self.validate_id_token(
            token["id_token"], nonce, access if isinstance(access, str) else None
        )
        return TokenResult(token["id_token"], claims)

    async def validate_id_token(
        self, id_token: str, nonce: str, access_token: str | None = None
    ) -> dict[str, Any]:
        """Signature (the provider's JWKS, asymmetric algorithms only), then the OpenID rules:
        issuer, audience (this client), azp, expiry and issue time, nonce, at_hash."""
        meta = await self.metadata()
        offered = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
        algs = [a for a in offered if a in SIGNING_ALGS]
        registry = JWSRegistry(algorithms=algs or ["RS256"])
        try:
            keys = await self._key_set()
            try:
                token = jwt.decode(id_token, keys, registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                token = jwt.decode(id_token, await self._key_set(refresh=True), registry=registry)
            params: dict[str, Any] = {"nonce": nonce, "client_id": self.client_id}
            if access_token:
                params["access_token"] = access_token
            options: dict[str, Any] = {
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "sub": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            }
            claims = CodeIDToken(token.claims, token.header, options, params)
            claims.validate(now=int(self.clock()), leeway=self.leeway_s)
        except (JoseError, ValueError) as exc:
            log.warning("ID token refused: %r", exc)
            raise SsoFailed("统一身份认证返回的身份令牌未通过校验，请重新登录") from None
        return dict(claims)

    async def logout_url(self, id_token: str | None, post_logout_redirect_uri: str) -> str | None:
        """The provider's RP-initiated logout for this session, if it offers one."""
        try:
            meta = await self.metadata()
        except SsoUnavailable:
            return None  # the platform's session is ended anyway
        endpoint = meta.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        params = {"client_id": self.client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token:
            params["id_token_hint"] = id_token
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        return endpoint + ("&" if "?" in endpoint else "?") + query


def _loads(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw.decode("utf-8")) if raw else {}
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
