"""Abuse limits at the edge, in memory with bounded size: login back-off per (user, address)
and per address, citizen lookups per address and per order number, web intake per address.

In-process (each web process counts its own); the Redis port shares them across processes
when configured (a later change). Every structure is bounded: the least recently seen keys
are forgotten first, so a flood of random keys costs memory up to `max_keys`, never more."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from tickets.errors import DomainError

DEFAULT_MAX_KEYS = 100_000


class Throttled(DomainError):
    """Too many requests of one kind from one source (HTTP 429 with Retry-After)."""

    code = "too_many_requests"

    @property
    def retry_after(self) -> int:
        return int(self.details.get("retry_after", 60))  # type: ignore[call-overload]


class LoginThrottled(Throttled):
    code = "login_throttled"


class _Bounded(OrderedDict[str, "deque[float]"]):
    """An LRU of per-key event times."""

    def __init__(self, max_keys: int) -> None:
        super().__init__()
        self.max_keys = max_keys

    def events(self, key: str) -> deque[float]:
        q = self.get(key)
        if q is None:
            q = deque()
            self[key] = q
            while len(self) > self.max_keys:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return q


class SlidingWindow:
    """At most `limit` events per key in any `window_s` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._keys = _Bounded(max_keys)
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, key: str) -> float:
        """Seconds until one more event is allowed (0: allowed now). Does not count."""
        now = self.clock()
        with self._lock:
            q = self._keys.get(key)
            if q is None:
                return 0.0
            self._trim(q, now)
            if len(q) < self.limit:
                return 0.0
            return q[0] + self.window_s - now

    def add(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            q = self._keys.events(key)
            self._trim(q, now)
            q.append(now)
            while len(q) > self.limit:  # keep only what decides the window
                q.popleft()

    def hit(self, key: str) -> float:
        """Count one event; returns the wait if it was over the limit (then not counted)."""
        wait = self.retry_after(key)
        if wait <= 0:
            self.add(key)
        return wait

    def count(self, key: str) -> int:
        now = self.clock()
        with self._lock:
            q = self._keys.get(key)
            if q is None:
                return 0
            self._trim(q, now)
            return len(q)

    def forget(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


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
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.clock = clock
        big = 10_000  # only the recent failures matter; bound the per-key history
        self._pair = SlidingWindow(big, policy.window_s, max_keys=max_keys, clock=clock)
        self._addr = SlidingWindow(big, policy.window_s, max_keys=max_keys, clock=clock)
        self._blocked: OrderedDict[str, float] = OrderedDict()
        self._max_keys = max_keys
        self._lock = threading.Lock()

    @staticmethod
    def _keys(username: str, address: str) -> tuple[str, str]:
        return f"{username}\x1f{address}", address

    def check(self, username: str, address: str) -> None:
        """Raise Throttled while this pair or this address is backing off."""
        now = self.clock()
        pair, addr = self._keys(username, address)
        with self._lock:
            until = max(self._blocked.get(pair, 0.0), self._blocked.get(addr, 0.0))
        if until > now:
            raise LoginThrottled("登录失败次数过多，请稍后再试", retry_after=int(until - now) + 1)

    def _delay(self, failures: int, free: int) -> float:
        over = failures - free
        if over < 0:
            return 0.0
        return min(self.policy.first_delay_s * 2**over, self.policy.max_delay_s)

    def failure(self, username: str, address: str) -> None:
        now = self.clock()
        pair, addr = self._keys(username, address)
        self._pair.add(pair)
        self._addr.add(addr)
        p = self.policy
        for key, failures, free in (
            (pair, self._pair.count(pair), p.free_failures),
            (addr, self._addr.count(addr), p.address_failures),
        ):
            delay = self._delay(failures, free)
            if delay > 0:
                with self._lock:
                    self._blocked[key] = now + delay
                    self._blocked.move_to_end(key)
                    while len(self._blocked) > self._max_keys:
                        self._blocked.popitem(last=False)

    def success(self, username: str, address: str) -> None:
        pair, _ = self._keys(username, address)
        self._pair.forget(pair)
        with self._lock:
            self._blocked.pop(pair, None)


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
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._lookups = SlidingWindow(policy.lookups_per_minute, 60, max_keys=max_keys, clock=clock)
        self._misses = SlidingWindow(
            policy.misses_per_number, policy.miss_window_s, max_keys=max_keys, clock=clock
        )
        self._intake = SlidingWindow(policy.intake_per_hour, 3600, max_keys=max_keys, clock=clock)

    def before_lookup(self, address: str, number: str) -> None:
        locked = self._misses.retry_after(number)
        if locked > 0:
            raise Throttled(
                "该工单查询失败次数过多，已暂停查询；请稍后再试或拨打 12345",
                retry_after=int(locked) + 1,
            )
        wait = self._lookups.hit(address)
        if wait > 0:
            raise Throttled("查询过于频繁，请稍后再试", retry_after=int(wait) + 1)

    def missed(self, number: str) -> None:
        """A lookup of `number` did not match (unknown number or wrong phone)."""
        self._misses.add(number)

    def before_intake(self, address: str) -> None:
        wait = self._intake.hit(address)
        if wait > 0:
            raise Throttled(
                "提交过于频繁，请稍后再试；紧急情况请拨打 12345", retry_after=int(wait) + 1
            )
