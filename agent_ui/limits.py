"""Abuse limits at the edge: login back-off per (user, address) and per address, citizen
lookups per address and per order number, web intake per address.

The counting lives behind one small port, `Windows` (recent events per key; a "blocked until"
per key): `MemoryWindows` in the process (bounded: the least recently seen keys are forgotten
first, so a flood of random keys costs memory up to `max_keys`, never more) and
`RedisWindows` shared by every web process (sorted sets and keys with a TTL, so Redis forgets
by itself). When Redis cannot be reached the limits fail open for that request and say so in
the log once: a Redis outage must not lock everyone out of the hotline."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tickets.errors import DomainError
from tickets.outage import OutageLog

log = logging.getLogger(__name__)
DEFAULT_MAX_KEYS = 100_000


class Throttled(DomainError):
    """Too many requests of one kind from one source (HTTP 429 with Retry-After)."""

    code = "too_many_requests"

    @property
    def retry_after(self) -> int:
        return int(self.details.get("retry_after", 60))  # type: ignore[call-overload]


class LoginThrottled(Throttled):
    code = "login_throttled"


class Windows(Protocol):
    """Recent events per key, and blocks per key (times in seconds of one clock)."""

    async def add(self, key: str, now: float, window_s: float) -> int:
        """Record one event; how many fall inside the window now (this one included)."""
        ...

    async def count(self, key: str, now: float, window_s: float) -> tuple[int, float | None]:
        """(events inside the window, time of the oldest of them)."""
        ...

    async def forget(self, key: str) -> None: ...
    async def block(self, key: str, until: float, now: float) -> None: ...
    async def blocked_until(self, key: str, now: float) -> float: ...


class MemoryWindows:
    """In this process: an LRU of per-key event times, bounded by max_keys."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, max_events: int = 10_000) -> None:
        self.max_keys = max_keys
        self.max_events = max_events
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocks: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float, window_s: float) -> None:
        while q and q[0] <= now - window_s:
            q.popleft()

    async def add(self, key: str, now: float, window_s: float) -> int:
        with self._lock:
            q = self._events.get(key)
            if q is None:
                q = self._events[key] = deque()
                while len(self._events) > self.max_keys:
                    self._events.popitem(last=False)
            else:
                self._events.move_to_end(key)
            self._trim(q, now, window_s)
            q.append(now)
            while len(q) > self.max_events:
                q.popleft()
            return len(q)

    async def count(self, key: str, now: float, window_s: float) -> tuple[int, float | None]:
        with self._lock:
            q = self._events.get(key)
            if q is None:
                return 0, None
            self._trim(q, now, window_s)
            return len(q), (q[0] if q else None)

    async def forget(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)
            self._blocks.pop(key, None)

    async def block(self, key: str, until: float, now: float) -> None:
        with self._lock:
            self._blocks[key] = until
            self._blocks.move_to_end(key)
            while len(self._blocks) > self.max_keys:
                self._blocks.popitem(last=False)

    async def blocked_until(self, key: str, now: float) -> float:
        with self._lock:
            return self._blocks.get(key, 0.0)

    def __len__(self) -> int:
        return max(len(self._events), len(self._blocks))


class RedisWindows:
    """Shared by every web process: a sorted set of event times per key (trimmed and given a
    TTL on every write) and a block key that expires by itself. Times are Unix seconds, so all
    processes count on one clock (the processes' wall clocks, kept by NTP)."""

    def __init__(self, redis: Any, prefix: str = "hotline") -> None:
        self.redis = redis
        self.prefix = prefix
        self.outage = OutageLog(
            log, "Redis 不可用，访问频率限制暂时按放行处理", "Redis 已恢复，访问频率限制恢复"
        )

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}:limit:{kind}:{key}"

    async def add(self, key: str, now: float, window_s: float) -> int:
        k = self._k("ev", key)
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.zremrangebyscore(k, 0, now - window_s)
                p.zadd(k, {f"{now:.6f}:{uuid.uuid4().hex}": now})  # unique per event
                p.zcard(k)
                p.expire(k, int(window_s) + 1)
                _, _, n, _ = await p.execute()
            self.outage.ok()
            return int(n)
        except Exception as exc:  # fail open: see the module's docstring
            self.outage.failed(exc)
            return 0

    async def count(self, key: str, now: float, window_s: float) -> tuple[int, float | None]:
        k = self._k("ev", key)
        try:
            async with self.redis.pipeline(transaction=True) as p:
                p.zremrangebyscore(k, 0, now - window_s)
                p.zcard(k)
                p.zrange(k, 0, 0, withscores=True)
                _, n, first = await p.execute()
            self.outage.ok()
            return int(n), (float(first[0][1]) if first else None)
        except Exception as exc:
            self.outage.failed(exc)
            return 0, None

    async def forget(self, key: str) -> None:
        try:
            await self.redis.delete(self._k("ev", key), self._k("block", key))
        except Exception as exc:
            self.outage.failed(exc)

    async def block(self, key: str, until: float, now: float) -> None:
        try:
            await self.redis.set(
                self._k("block", key), f"{until:.3f}", px=max(1, int((until - now) * 1000))
            )
        except Exception as exc:
            self.outage.failed(exc)

    async def blocked_until(self, key: str, now: float) -> float:
        try:
            raw = await self.redis.get(self._k("block", key))
            self.outage.ok()
            return float(raw) if raw else 0.0
        except Exception as exc:
            self.outage.failed(exc)
            return 0.0


class SlidingWindow:
    """At most `limit` events per key in any `window_s` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        windows: Windows | None = None,
        name: str = "w",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.windows = windows or MemoryWindows()
        self.name = name
        self.clock = clock

    def _key(self, key: str) -> str:
        return f"{self.name}:{key}"

    async def retry_after(self, key: str) -> float:
        """Seconds until one more event is allowed (0: allowed now). Does not count."""
        now = self.clock()
        n, oldest = await self.windows.count(self._key(key), now, self.window_s)
        if n < self.limit or oldest is None:
            return 0.0
        return max(0.0, oldest + self.window_s - now)

    async def add(self, key: str) -> int:
        return await self.windows.add(self._key(key), self.clock(), self.window_s)

    async def hit(self, key: str) -> float:
        """Count one event; returns the wait if it was over the limit (then not counted)."""
        wait = await self.retry_after(key)
        if wait <= 0:
            await self.add(key)
        return wait

    async def count(self, key: str) -> int:
        return (await self.windows.count(self._key(key), self.clock(), self.window_s))[0]

    async def forget(self, key: str) -> None:
        await self.windows.forget(self._key(key))


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    free_failures: int = 5  # per (user, address) before the back-off starts
    address_failures: int = 20  # per address (any user names) in window_s before back-off
    window_s: float = 900
    first_delay_s: float = 30.0  # the back-off doubles from this
    max_delay_s: float = 900


class LoginThrottle:
    """Back-off on failed logins, per (user name, address) and per address.

    No hard lockout of an account: somebody guessing from one address slows down, and the
    account's owner logging in from elsewhere is not affected. A success clears only its own
    (user, address) pair: logging into one's own account does not reset the address's count,
    so a sprayer cannot interleave its own logins to keep guessing."""

    def __init__(
        self,
        policy: LoginPolicy = LoginPolicy(),
        *,
        windows: Windows | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.windows = windows or MemoryWindows()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"login-pair:{username}\x1f{address}", f"login-addr:{address}"

    async def check(self, username: str, address: str) -> None:
        """Raise LoginThrottled while this pair or this address is backing off."""
        now = self.clock()
        pair, addr = self._keys(username, address)
        until = max(
            await self.windows.blocked_until(pair, now),
            await self.windows.blocked_until(addr, now),
        )
        if until > now:
            raise LoginThrottled("登录失败次数过多，请稍后再试", retry_after=int(until - now) + 1)

    def _delay(self, failures: int, free: int) -> float:
        over = failures - free
        if over < 0:
            return 0.0
        return min(self.policy.first_delay_s * 2**over, self.policy.max_delay_s)

    async def failure(self, username: str, address: str) -> None:
        now = self.clock()
        p = self.policy
        pair, addr = self._keys(username, address)
        for key, free in ((pair, p.free_failures), (addr, p.address_failures)):
            failures = await self.windows.add(key, now, p.window_s)
            delay = self._delay(failures, free)
            if delay > 0:
                await self.windows.block(key, now + delay, now)

    async def success(self, username: str, address: str) -> None:
        await self.windows.forget(self._keys(username, address)[0])


@dataclass(frozen=True, slots=True)
class CitizenPolicy:
    lookups_per_minute: int = 20  # status lookups and ratings per address
    misses_per_number: int = 5  # wrong phone / unknown number per order number …
    miss_window_s: float = 3600  # … in this window locks that number's lookups for the window
    intake_per_hour: int = 30  # web submissions per address


class CitizenGuard:
    """The public endpoints' limits: status lookups (number + phone is the only secret, so
    guessing it must be slow and soon stop), ratings, and web submissions."""

    def __init__(
        self,
        policy: CitizenPolicy = CitizenPolicy(),
        *,
        windows: Windows | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        w = windows or MemoryWindows()
        self._lookups = SlidingWindow(
            policy.lookups_per_minute, 60, windows=w, name="lookup", clock=clock
        )
        self._misses = SlidingWindow(
            policy.misses_per_number, policy.miss_window_s, windows=w, name="miss", clock=clock
        )
        self._intake = SlidingWindow(
            policy.intake_per_hour, 3600, windows=w, name="intake", clock=clock
        )

    async def before_lookup(self, address: str, number: str) -> None:
        locked = await self._misses.retry_after(number)
        if locked > 0:
            raise Throttled(
                "该工单查询失败次数过多，已暂停查询；请稍后再试或拨打 12345",
                retry_after=int(locked) + 1,
            )
        wait = await self._lookups.hit(address)
        if wait > 0:
            raise Throttled("查询过于频繁，请稍后再试", retry_after=int(wait) + 1)

    async def missed(self, number: str) -> None:
        """A lookup of `number` did not match (unknown number or wrong phone)."""
        await self._misses.add(number)

    async def before_intake(self, address: str) -> None:
        wait = await self._intake.hit(address)
        if wait > 0:
            raise Throttled(
                "提交过于频繁，请稍后再试；紧急情况请拨打 12345", retry_after=int(wait) + 1
            )
