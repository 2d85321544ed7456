"""Staff single sign-on use cases: start a login at the identity provider, finish it from the
provider's callback (state, PKCE, ID token, claims → account and session), and the provider's
logout address for a session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent_ui import store
from agent_ui.accounts import Accounts, Session
from agent_ui.limits import SlidingWindow, Throttled, Windows
from agent_ui.oidc import (
    ClaimRules,
    OidcClient,
    SsoFailed,
    SsoRefused,
    SsoStateInvalid,
    identity_from_claims,
)
from tickets.db import Database
from tickets.service import utcnow

STARTS_PER_MINUTE = 30  # logins started per client address (each is a row until it expires)
MAX_CODE = 2048  # longer "codes" are not the provider's


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Finished:
    token: str  # the new session's cookie value
    session: Session
    next_path: str


class SingleSignOn:
    def __init__(
        self,
        client: OidcClient,
        db: Database,
        accounts: Accounts,
        rules: ClaimRules,
        has_department: Callable[[str], bool],
        *,
        login_timeout: timedelta = timedelta(minutes=10),
        public_url: str = "http://127.0.0.1:8080",
        rp_logout: bool = True,
        clock: Callable[[], datetime] = utcnow,
        windows: Windows | None = None,  # the platform's limit store (shared with logins)
        window_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.db = db
        self.accounts = accounts
        self.rules = rules
        self.has_department = has_department
        self.login_timeout = login_timeout
        self.public_url = public_url.rstrip("/")
        self.rp_logout = rp_logout
        self.clock = clock
        self._starts = SlidingWindow(
            STARTS_PER_MINUTE, 60, windows=windows, name="sso-start", clock=window_clock
        )

    async def begin(self, next_path: str, client_address: str) -> tuple[str, str]:
        """A new login: returns (state for the browser's cookie, the provider's login URL).
        The server keeps the state's hash with the nonce and the PKCE verifier."""
        wait = await self._starts.hit(client_address)
        if wait > 0:
            raise Throttled("登录请求过于频繁，请稍后再试", retry_after=int(wait) + 1)
        state = secrets.token_urlsafe(32)
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters of the unreserved set (RFC 7636)
        url = await self.client.authorization_url(state, nonce, verifier)
        now = self.clock()
        values = {
            "state_hash": _state_hash(state),
            "nonce": nonce,
            "code_verifier": verifier,
            "next_path": next_path,
            "created_at": now,
            "expires_at": now + self.login_timeout,
        }
        await self.db.write(lambda c: store.insert_sso_login(c, values))
        return state, url

    async def finish(self, state: str, browser_state: str, code: str, error: str = "") -> Finished:
        """The provider's answer: it must carry the state this browser was given for a login
        under way (each is used once), then the code is exchanged with that login's PKCE
        verifier and the ID token checked against its nonce."""
        if not state or not browser_state or not hmac.compare_digest(state, browser_state):
            raise SsoStateInvalid("登录请求无效或已过期（不是本浏览器发起的登录），请重新登录")
        now = self.clock()
        row = await self.db.write(lambda c: store.take_sso_login(c, _state_hash(state), now))
        if row is None:
            raise SsoStateInvalid("登录请求无效、已使用或已过期，请重新登录")
        if error:
            if error == "access_denied":
                raise SsoRefused("统一身份认证未授权本次登录（已取消或被拒绝）")
            raise SsoFailed("统一身份认证登录未完成，请重新登录", provider_error=error[:100])
        if not code or len(code) > MAX_CODE:
            raise SsoFailed("统一身份认证未返回授权码，请重新登录")
        result = await self.client.exchange(code, row.code_verifier, row.nonce)
        identity = identity_from_claims(
            result.claims, self.client.issuer, self.rules, self.has_department
        )
        token, session = await self.accounts.sso_login(identity, result.id_token)
        return Finished(token, session, row.next_path)

    async def logout_url(self, session: Session, then: str) -> str | None:
        """Where the browser goes after the platform's session ended: the provider's
        RP-initiated logout for a single sign-on session (if configured and offered), which
        sends it back to the platform's path `then`."""
        if not self.rp_logout or session.id_token is None:
            return None
        return await self.client.logout_url(session.id_token, self.public_url + then)
