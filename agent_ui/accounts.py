"""Staff accounts: Argon2 passwords, server-side sessions with CSRF tokens, login throttling."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from zxcvbn import zxcvbn

from agent_ui import store
from agent_ui.limits import LoginThrottle
from agent_ui.oidc import SsoIdentity, SsoRefused
from tickets.db import Database
from tickets.errors import Conflict, DomainError, InvalidInput
from tickets.model import Actor, Role
from tickets.service import utcnow

STAFF_ROLES = (
    Role.AGENT,
    Role.DISPATCHER,
    Role.SUPERVISOR,
    Role.DEPARTMENT,
    Role.MANAGER,
    Role.ADMIN,
)
_USERNAME = re.compile(r"^[A-Za-z0-9_.\-]{3,64}$")
MAX_PASSWORD = 256  # what the login form and API accept
MIN_STRENGTH = 2  # zxcvbn score 0–4: 2 = "somewhat guessable" (≥ 10^6 guesses), the floor
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
NO_PASSWORD = ""  # the password_hash of accounts made by single sign-on
MAX_DISPLAY_NAME = 100  # users.display_name
LOCAL_LOGIN = ("all", "admins", "none")  # which local accounts may log in with a password


class NotAuthenticated(DomainError):
    code = "not_authenticated"


SSO_NO_PASSWORD = "统一身份认证账号没有本平台密码，请在统一身份认证系统中修改密码"


class Departments(Protocol):
    def has_department(self, code: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    department: str | None
    display_name: str
    active: bool
    sso: bool = False  # made by single sign-on: no local password

    @property
    def actor(self) -> Actor:
        return Actor(self.role, self.id, self.display_name, self.department)


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime
    id_token: str | None = None  # a single sign-on session's ID token (RP-initiated logout)


def _user(row: Any) -> User:
    m = row._mapping
    return User(
        id=m["id"],
        username=m["username"],
        role=Role(m["role"]),
        department=m["department"],
        display_name=m["display_name"],
        active=bool(m["active"]),
        sso=m["sso_subject"] is not None,
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(
        self,
        db: Database,
        departments: Departments,
        *,
        session_ttl: timedelta = timedelta(hours=12),
        session_idle: timedelta = timedelta(hours=1),
        local_login: str = "all",
        password_min_length: int = 8,
        throttle: LoginThrottle | None = None,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.departments = departments
        self.session_ttl = session_ttl
        self.session_idle = session_idle
        # a session's last request is written at most this often (a write per request would
        # cost more than the idle limit's precision is worth)
        self.touch_every = min(timedelta(minutes=1), session_idle / 10)
        if local_login not in LOCAL_LOGIN:
            raise ValueError(f"local_login must be one of {LOCAL_LOGIN}")
        self.local_login = local_login
        self.password_min_length = password_min_length
        self.throttle = throttle or LoginThrottle()
        self.clock = clock
        self.monotonic = monotonic
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    # -- users --------------------------------------------------------------------------------
    def check_password(self, username: str, password: str, display_name: str | None = None) -> None:
        """A password a person may choose: long enough, at most MAX_PASSWORD characters (the
        login form's limit), not the user name, and not guessable (zxcvbn's estimate of
        guesses, which knows the common passwords, keyboard walks, dates and the user's own
        names)."""
        if len(password) < self.password_min_length:
            raise InvalidInput(f"密码至少{self.password_min_length}位", field="password")
        if len(password) > MAX_PASSWORD:
            raise InvalidInput(f"密码不能超过{MAX_PASSWORD}位", field="password")
        if CONTROL_CHARS.search(password):
            raise InvalidInput("密码不能含控制字符", field="password")
        lowered = password.lower()
        names = [n for n in (username, display_name) if n]
        if any(n.lower() in lowered for n in names if len(n) >= 3):
            raise InvalidInput("密码不能包含用户名", field="password")
        strength = zxcvbn(password[:100], user_inputs=names)  # its cost grows with length
        if strength["score"] < MIN_STRENGTH:
            raise InvalidInput(
                "密码太容易被猜到（如常见密码、连续数字或键盘序列），请换一个更长、更少见的",
                field="password",
            )

    def _check_new_user(
        self,
        username: str,
        password: str,
        role: Role,
        department: str | None,
        display_name: str | None = None,
    ) -> None:
        if not _USERNAME.match(username):
            raise InvalidInput("用户名须为3-64位字母、数字或 _ . -", field="username")
        self.check_password(username, password, display_name)
        if role not in STAFF_ROLES:
            raise InvalidInput(f"未知角色 {role}", field="role")
        if role is Role.DEPARTMENT:
            if not department:
                raise InvalidInput("承办单位账号必须指定 --department", field="department")
            if not self.departments.has_department(department):
                raise InvalidInput(f"未知承办单位 {department}", field="department")
        elif department:
            raise InvalidInput("只有承办单位账号可以关联单位", field="department")

    def create_user_sync(
        self,
        username: str,
        password: str,
        role: Role,
        department: str | None = None,
        display_name: str | None = None,
    ) -> User:
        username = username.strip().lower()  # user names are case-insensitive
        self._check_new_user(username, password, role, department, display_name)
        values = {
            "username": username,
            "password_hash": self.hasher.hash(password),
            "role": role.value,
            "department": department,
            "display_name": display_name or username,
            "active": True,
            "created_at": self.clock(),
        }
        try:
            user_id = self.db.run_write(lambda c: store.insert_user(c, values))
        except IntegrityError:
            raise Conflict(f"用户名 {username} 已存在", field="username") from None
        return User(user_id, username, role, department, display_name or username, True)

    async def create_user(
        self,
        username: str,
        password: str,
        role: Role,
        department: str | None = None,
        display_name: str | None = None,
    ) -> User:
        return await asyncio.to_thread(
            self.create_user_sync, username, password, role, department, display_name
        )

    def set_password_sync(self, username: str, password: str) -> None:
        username = username.strip().lower()
        self.check_password(username, password)
        digest = self.hasher.hash(password)

        def tx(conn: Any) -> None:
            row = store.get_user_by_name(conn, username)
            if row is None:
                raise InvalidInput(f"用户 {username} 不存在", field="username")
            if row.sso_subject is not None:
                raise InvalidInput(SSO_NO_PASSWORD, field="username")
            store.update_user(conn, row.id, {"password_hash": digest})
            store.delete_user_sessions(conn, row.id)

        self.db.run_write(tx)

    async def user_by_name(self, username: str) -> User | None:
        name = username.strip().lower()
        row = await self.db.read(lambda c: store.get_user_by_name(c, name))
        return _user(row) if row is not None else None

    async def users_by_names(self, usernames: Iterable[str]) -> dict[str, User]:
        """The accounts of these usernames (one query), by username; unknown ones left out."""
        names = sorted({u.strip().lower() for u in usernames})
        if not names:
            return {}
        rows = await self.db.read(lambda c: store.get_users_by_names(c, names))
        return {u.username: u for u in map(_user, rows)}

    def list_users_sync(self) -> list[User]:
        return [_user(r) for r in self.db.run_read(store.list_users)]

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self.db.read(store.list_users)]

    async def set_password(self, username: str, password: str) -> None:
        await asyncio.to_thread(self.set_password_sync, username, password)

    async def set_active(self, admin: Actor, user_id: int, active: bool) -> User:
        """Deactivate (sessions end at once) or reactivate an account; never one's own."""
        if admin.user_id == user_id:
            raise InvalidInput("不能停用自己的账号", field="user")

        def tx(conn: Any) -> Any:
            if store.get_user(conn, user_id) is None:
                raise InvalidInput("用户不存在", field="user")
            store.update_user(conn, user_id, {"active": active})
            if not active:
                store.delete_user_sessions(conn, user_id)
            return store.get_user(conn, user_id)

        return _user(await self.db.write(tx))

    async def change_role(
        self, admin: Actor, user_id: int, role: Role, department: str | None
    ) -> User:
        """A new role (and department); the person logs in again under it."""
        if admin.user_id == user_id:
            raise InvalidInput("不能修改自己的角色", field="user")
        if role not in STAFF_ROLES:
            raise InvalidInput(f"未知角色 {role}", field="role")
        if role is Role.DEPARTMENT:
            if not department or not self.departments.has_department(department):
                raise InvalidInput("承办单位账号须指定已有的承办单位", field="department")
        else:
            department = None

        def tx(conn: Any) -> Any:
            if store.get_user(conn, user_id) is None:
                raise InvalidInput("用户不存在", field="user")
            store.update_user(conn, user_id, {"role": role.value, "department": department})
            store.delete_user_sessions(conn, user_id)
            return store.get_user(conn, user_id)

        return _user(await self.db.write(tx))

    # -- sessions -----------------------------------------------------------------------------
    def may_use_password(self, row: Any) -> bool:
        """Local password logins: accounts with a password, as far as [sso] local_login lets."""
        if row.sso_subject is not None or not row.password_hash:
            return False
        if self.local_login == "all":
            return True
        return self.local_login == "admins" and row.role == Role.ADMIN.value

    async def login(self, username: str, password: str, client: str) -> tuple[str, Session]:
        username = username.strip().lower()
        await self.throttle.check(username, client)
        row = await self.db.read(lambda c: store.get_user_by_name(c, username))
        usable = row is not None and self.may_use_password(row)
        # the same Argon2 work whether or not the account exists or may use a password, so
        # timing tells nothing about user names
        digest = row.password_hash if usable else self._dummy_hash()
        ok = await asyncio.to_thread(self._verify, digest, password)
        if row is None or not usable or not ok or not row.active:
            await self.throttle.failure(username, client)
            raise NotAuthenticated("用户名或密码错误")
        await self.throttle.success(username, client)
        return await self.db.write(lambda c: self._open_session(c, row.id))

    def _open_session(
        self, conn: Any, user_id: int, id_token: str | None = None
    ) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        csrf, expires = secrets.token_urlsafe(32), now + self.session_ttl
        values = {
            "token_hash": token_hash(token),
            "user_id": user_id,
            "csrf_token": csrf,
            "created_at": now,
            "expires_at": expires,
            "last_seen_at": now,
            "id_token": id_token,
        }
        store.insert_session(conn, values)
        user = _user(store.get_user(conn, user_id))
        return token, Session(user, csrf, expires, id_token)

    async def sso_login(self, identity: SsoIdentity, id_token: str) -> tuple[str, Session]:
        """A provider's login: its account here (found by issuer + subject, never by name,
        so nobody at the provider can take over a local account), made or brought up to date
        with the role and department of the claims, and a new session for it."""
        name = (identity.display_name or identity.username)[:MAX_DISPLAY_NAME]

        def tx(conn: Any) -> tuple[str, Session]:
            row = store.get_user_by_subject(conn, identity.issuer, identity.subject)
            if row is not None:
                if not row.active:
                    raise SsoRefused("您的账号已在本平台停用，请联系管理员")
                values = {
                    "role": identity.role.value,
                    "department": identity.department,
                    "display_name": name,
                }
                store.update_user(conn, row.id, values)
                return self._open_session(conn, row.id, id_token)
            user_id = store.insert_user(
                conn,
                {
                    "username": self._free_username(conn, identity),
                    "password_hash": NO_PASSWORD,
                    "role": identity.role.value,
                    "department": identity.department,
                    "display_name": name,
                    "active": True,
                    "created_at": self.clock(),
                    "sso_issuer": identity.issuer,
                    "sso_subject": identity.subject,
                },
            )
            return self._open_session(conn, user_id, id_token)

        try:
            return await self.db.write(tx)
        except IntegrityError:  # two first logins of one person at once: the other one won
            return await self.db.write(tx)

    @staticmethod
    def _free_username(conn: Any, identity: SsoIdentity) -> str:
        """The provider's user name when it is a valid one nobody here has; else a name made
        from the subject (a local account keeps its name)."""
        wanted = identity.username.strip().lower()
        if _USERNAME.match(wanted) and store.get_user_by_name(conn, wanted) is None:
            return wanted
        digest = hashlib.sha256(f"{identity.issuer} {identity.subject}".encode()).hexdigest()
        return f"sso-{digest[:16]}"

    async def change_password(
        self, session_token: str, user: User, old: str, new: str, client: str
    ) -> int:
        """A local account's own password change: the old password is required (and guessing
        it is throttled like logins); the new one follows the rules; the account's other
        sessions end. Returns how many ended."""
        if user.sso:
            raise InvalidInput(SSO_NO_PASSWORD, field="old_password")
        await self.throttle.check(user.username, client)
        row = await self.db.read(lambda c: store.get_user(c, user.id))
        digest = row.password_hash if row is not None and row.password_hash else None
        ok = await asyncio.to_thread(self._verify, digest or self._dummy_hash(), old)
        if not ok or digest is None:
            await self.throttle.failure(user.username, client)
            raise InvalidInput("原密码不正确", field="old_password")
        await self.throttle.success(user.username, client)
        if new == old:
            raise InvalidInput("新密码不能与原密码相同", field="new_password")
        try:
            self.check_password(user.username, new, user.display_name)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="new_password") from None
        new_digest = await asyncio.to_thread(self.hasher.hash, new)
        keep = token_hash(session_token)

        def tx(conn: Any) -> int:
            store.update_user(conn, user.id, {"password_hash": new_digest})
            return store.delete_user_sessions(conn, user.id, keep=keep)

        return await self.db.write(tx)

    async def logout_everywhere(self, user_id: int) -> int:
        """End every session of the account (all browsers and devices); returns how many."""
        return await self.db.write(lambda c: store.delete_user_sessions(c, user_id))

    async def session_count(self, user_id: int) -> int:
        now = self.clock()
        return await self.db.read(lambda c: store.count_user_sessions(c, user_id, now))

    def _dummy_hash(self) -> str:
        """Verified against when the user does not exist, so timing doesn't reveal names."""
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def _verify(self, digest: str, password: str) -> bool:
        try:
            return self.hasher.verify(digest, password)
        except (VerificationError, InvalidHashError):
            return False

    async def session(self, token: str) -> Session | None:
        """The live session of this cookie token: within its absolute limit (session_ttl) and
        its idle limit (session_idle since its last request), of an active account."""
        now = self.clock()
        digest = token_hash(token)
        row = await self.db.read(lambda c: store.get_session(c, digest, now))
        if row is None or not row._mapping["active"]:
            return None
        m = row._mapping
        seen = m["last_seen_at"] or m["session_created_at"]
        if now - seen >= self.session_idle:
            await self.db.write(lambda c: store.delete_session(c, digest))
            return None
        if now - seen >= self.touch_every:
            await self.db.write(lambda c: store.touch_session(c, digest, now))
        return Session(_user(row), m["csrf_token"], m["expires_at"], m["id_token"])

    async def logout(self, token: str) -> None:
        await self.db.write(lambda c: store.delete_session(c, token_hash(token)))

    async def purge_expired(self) -> int:
        """Sessions past either limit, and single sign-on logins never finished."""
        now = self.clock()

        def tx(conn: Any) -> int:
            n = store.delete_expired_sessions(conn, now)
            n += store.delete_idle_sessions(conn, now - self.session_idle)
            store.delete_expired_sso_logins(conn, now)
            return n

        return await self.db.write(tx)
