"""Who is on duty now: staff consoles that are open and the call centre's signed-in agents,
each an entry that lives `ttl_s` unless its writer renews it. A process that dies (kill -9, a
machine lost) stops renewing, so its consoles and agents drop out of the list within `ttl_s`
with nobody having to clean up after it.

Two adapters behind one port (tests/test_presence.py runs one contract over both):
- `LocalPresence`: one process's memory (the embedded default);
- `RedisPresence`: one key per entry with its own TTL (SET PX), listed through a sorted set
  of keys; every web process sees every process's entries. While Redis is unreachable each
  process shows its own entries (`shared` is False), logs it once, and writes them all again
  when Redis returns (a Redis restart without persistence loses nothing for longer than one
  renewal).

Writers: agent_ui/live.py (one entry per open console WebSocket while the socket lives) and
the active call centre (`CentrePresence`: one entry per signed-in agent with its state, and one
for its queue). One `keep_renewed` task per process (hotline/app.py) renews whatever its
writers put, every `ttl_s / 3`. Readers: GET /api/v1/presence and the wallboard of every web
process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.exceptions import RedisError

from tickets.outage import OutageLog, raise_if_cancelling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One console or one signed-in agent. `key` is unique per writer and kind
    ("console:<uuid>", "agent:<username>"); times are UTC ISO 8601."""

    key: str
    kind: str  # "console" | "agent" | "centre"
    username: str
    since: str
    name: str = ""
    role: str = ""
    department: str | None = None
    page: str = ""  # the console page's path
    process: str = ""  # host:pid of the writer
    state: str = ""  # an agent's call state (available, ringing, talking, wrapup, paused)
    reason: str = ""  # 示忙 reason
    seen: str = ""  # the writer's last renewal
    # the call centre's queue (kind "centre", key "centre"): callers waiting, when the longest
    # one joined the queue (UTC), calls in progress
    waiting: int = 0
    oldest: str = ""
    calls: int = 0


@dataclass(frozen=True)
class Snapshot:
    entries: list[Entry]
    shared: bool  # False: only this process's own entries (Redis unreachable, or none)


class Presence(Protocol):
    ttl_s: float

    async def put(self, entries: Iterable[Entry]) -> None: ...
    async def remove(self, keys: Iterable[str]) -> None: ...
    def forget(self, keys: Iterable[str]) -> list[str]: ...
    async def renew(self) -> None: ...
    async def online(self) -> Snapshot: ...


def _utc(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat()


class _Own:
    """The entries this process writes: renewed by `renew()`, written again after an outage."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        if ttl_s <= 0:
            raise ValueError("presence ttl_s must be positive")
        self.ttl_s = ttl_s
        self.clock = clock
        self.own: dict[str, Entry] = {}

    def stamp(self, entries: Iterable[Entry]) -> list[Entry]:
        now = _utc(self.clock)
        out = [replace(e, seen=now) for e in entries]
        for e in out:
            self.own[e.key] = e
        return out

    async def put(self, entries: Iterable[Entry]) -> None:
        raise NotImplementedError

    async def renew(self) -> None:
        """Write every own entry again (with Redis a SET, not EXPIRE: after a Redis restart
        they come back)."""
        await self.put(list(self.own.values()))

    def forget(self, keys: Iterable[str]) -> list[str]:
        """Stop renewing these here; what is already written expires by itself."""
        keys = list(keys)
        for k in keys:
            self.own.pop(k, None)
        return keys


class LocalPresence(_Own):
    """One process: its entries, each expiring `ttl_s` after its last renewal (the clock is
    injectable for tests). As with Redis, an entry its writer forgot stays until it expires."""

    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(ttl_s, clock)
        self._entries: dict[str, tuple[Entry, float]] = {}

    async def put(self, entries: Iterable[Entry]) -> None:
        until = self.clock() + self.ttl_s
        for e in self.stamp(entries):
            self._entries[e.key] = (e, until)

    async def remove(self, keys: Iterable[str]) -> None:
        for k in self.forget(keys):
            self._entries.pop(k, None)

    async def online(self) -> Snapshot:
        now = self.clock()
        for k in [k for k, (_, until) in self._entries.items() if until <= now]:
            del self._entries[k]
        return Snapshot(sorted((e for e, _ in self._entries.values()), key=_order), shared=True)


class RedisPresence(_Own):
    """Every process's entries in one Redis: `{prefix}:presence:e:{key}` holds the entry (its TTL
    is Redis's, so a dead writer's entries go by Redis's clock); `{prefix}:presence:index` is a
    sorted set of keys scored by when they expire, so listing never scans the keyspace."""

    def __init__(
        self,
        redis: Any,
        ttl_s: float = 60.0,
        prefix: str = "hotline",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(ttl_s, clock)
        self.redis = redis
        self.prefix = prefix
        self.index = f"{prefix}:presence:index"
        self.outage = OutageLog(
            log, "Redis 不可用，在线人员暂只显示本进程", "Redis 已恢复，在线人员恢复共享"
        )

    def _k(self, key: str) -> str:
        return f"{self.prefix}:presence:e:{key}"

    async def put(self, entries: Iterable[Entry]) -> None:
        stamped = self.stamp(entries)
        if stamped:
            await self._write(stamped)

    async def _write(self, entries: list[Entry]) -> None:
        ttl_ms = max(1, int(self.ttl_s * 1000))
        until = self.clock() + self.ttl_s
        try:
            async with self.redis.pipeline(transaction=False) as p:
                for e in entries:
                    p.set(self._k(e.key), json.dumps(asdict(e), ensure_ascii=False), px=ttl_ms)
                p.zadd(self.index, {e.key: until for e in entries})
                await p.execute()
            self.outage.ok()
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)

    async def remove(self, keys: Iterable[str]) -> None:
        keys = self.forget(keys)
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=False) as p:
                p.delete(*(self._k(k) for k in keys))
                p.zrem(self.index, *keys)
                await p.execute()
            self.outage.ok()
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)

    async def online(self) -> Snapshot:
        try:
            # the key's TTL is the truth; members long past their score (a writer's clock a
            # little off does not matter) are dropped here, the rest when their key is missing
            await self.redis.zremrangebyscore(self.index, "-inf", self.clock() - self.ttl_s)
            keys = [k.decode() for k in await self.redis.zrange(self.index, 0, -1)]
            raws = await self.redis.mget([self._k(k) for k in keys]) if keys else []
            self.outage.ok()
        except (RedisError, OSError) as exc:
            self.outage.failed(exc)
            return Snapshot(sorted(self.own.values(), key=_order), shared=False)
        entries: list[Entry] = []
        gone: list[str] = []
        for k, raw in zip(keys, raws, strict=True):
            if raw is None:
                gone.append(k)
                continue
            try:
                entries.append(Entry(**json.loads(raw)))
            except (ValueError, TypeError):
                log.warning("unreadable presence entry %s dropped", k)
                gone.append(k)
        if gone:
            try:
                await self.redis.zrem(self.index, *gone)
            except (RedisError, OSError) as exc:
                self.outage.failed(exc)
        return Snapshot(sorted(entries, key=_order), shared=True)


def centre_of(entries: Iterable[Entry]) -> Entry | None:
    """The active call centre's queue entry (the newest, should a failover leave two)."""
    found = [e for e in entries if e.kind == "centre"]
    return max(found, key=lambda e: e.seen) if found else None


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _order(e: Entry) -> tuple[str, str, str]:
    return (e.username, e.kind, e.key)


def group(entries: Iterable[Entry]) -> dict[str, dict[str, Any]]:
    """Entries by person: their consoles and, if signed in to the call centre, their agent
    entry (the newest one wins should a failover leave two for a moment)."""
    people: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.kind == "centre":
            continue
        p = people.setdefault(e.username, {"consoles": [], "agent": None})
        if e.kind == "agent":
            if p["agent"] is None or e.seen > p["agent"].seen:
                p["agent"] = e
        else:
            p["consoles"].append(e)
    return people


async def keep_renewed(presence: Presence) -> None:
    """This process's one renewer: every entry its writers put is written again every third
    of the TTL, so entries outlive a late renewal and go within the TTL when the process dies."""
    while True:
        await asyncio.sleep(presence.ttl_s / 3)
        try:
            await presence.renew()
        except Exception:  # a renewal failing must not stop the renewals
            raise_if_cancelling()
            log.exception("presence renewal failed")


RENEW_CENTRE_S = 0.5  # how often the centre looks for changes (a write only on change)
CENTRE_KEY = "centre"


class CentrePresence:
    """The active call centre as presence entries: one per signed-in agent with its state, and
    one for the queue (callers waiting, the longest one's queue time, calls in progress), so
    every web process's wallboard shows them. Written when something changes (looked at every
    RENEW_CENTRE_S; the process's `keep_renewed` renews them); an agent's entry is removed when
    the agent signs out. A standby writes nothing until it is active; a centre that steps down
    stops renewing (its successor writes the same keys), one that dies leaves its entries to
    expire, and the wallboards then say the centre is not reporting."""

    def __init__(
        self,
        presence: Presence,
        snapshot: Callable[[], dict[str, Any]],
        active: Callable[[], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.presence = presence
        self.snapshot = snapshot  # CallCenter.snapshot
        self.active = active
        self.clock = clock
        self._written: dict[str, Entry] = {}

    def _agent(self, a: dict[str, Any], now: float) -> Entry:
        key = f"agent:{a['username']}"
        old = self._written.get(key)
        if old is not None and (old.state, old.reason) == (a["state"], a.get("reason") or ""):
            return old
        since = datetime.fromtimestamp(now - float(a.get("seconds") or 0), UTC)
        return Entry(
            key=key,
            kind="agent",
            username=a["username"],
            since=since.isoformat(timespec="seconds"),
            state=a["state"],
            reason=a.get("reason") or "",
            process=process_name(),
        )

    def _queue(self, snap: dict[str, Any], now: float) -> Entry:
        waits = [float(w["seconds"]) for w in snap["waiting"]]
        oldest = (
            datetime.fromtimestamp(now - max(waits), UTC).isoformat(timespec="seconds")
            if waits
            else ""
        )
        old = self._written.get(CENTRE_KEY)
        if old is not None and (old.waiting, old.oldest, old.calls) == (
            len(waits),
            oldest,
            snap["calls"],
        ):
            return old
        return Entry(
            key=CENTRE_KEY,
            kind="centre",
            username="",
            since=old.since if old else datetime.fromtimestamp(now, UTC).isoformat(),
            process=process_name(),
            waiting=len(waits),
            oldest=oldest,
            calls=int(snap["calls"]),
        )

    async def step(self) -> None:
        if not self.active():
            if self._written:  # stepped down: forget them here, delete nothing
                self.presence.forget(list(self._written))
                self._written = {}
            return
        now = self.clock()
        snap = self.snapshot()
        current = {e.key: e for e in (self._agent(a, now) for a in snap["agents"])}
        current[CENTRE_KEY] = self._queue(snap, now)
        gone = [k for k in self._written if k not in current]
        changed = [e for k, e in current.items() if self._written.get(k) is not e]
        if gone:
            await self.presence.remove(gone)
        if changed:
            await self.presence.put(changed)
        self._written = current

    async def close(self) -> None:
        """The centre stops for good (no standby to follow it): its agents are signed out."""
        await self.presence.remove(list(self._written))
        self._written = {}

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # presence failing must not stop the call centre
                raise_if_cancelling()
                log.exception("call-centre presence update failed")
            await asyncio.sleep(RENEW_CENTRE_S)
