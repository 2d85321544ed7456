"""Where the active call centre keeps the queue and the agents' states for a standby: a store
of JSON entries in three sections (agents, waiting callers, live calls), in memory or in Redis
hashes, written only by the lease holder. Also how an agent and a waiting caller become entries:
their monotonic times are kept as wall-clock times, so another process (or host) reads them.

The store's writes are fenced: Redis applies a batch only while the lease key names the writer,
in one script, so a centre that lost its lease (hung past the TTL) cannot overwrite what its
successor loaded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from telephony.acd import Agent, AgentState, Waiting

Section = Literal["agents", "waiting", "calls"]
SECTIONS: tuple[Section, ...] = ("agents", "waiting", "calls")
# section → key → JSON text, or None to delete the key
Changes = Mapping[Section, Mapping[str, str | None]]
Entries = dict[Section, dict[str, str]]

# KEYS: the lease, then one hash per section; ARGV: the writer's lease token, then per change
# (section number 1–3, key, value; an empty value deletes). 0 when the lease names another.
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV, 3 do
  local hash = KEYS[1 + tonumber(ARGV[i])]
  if ARGV[i + 2] == '' then
    redis.call('HDEL', hash, ARGV[i + 1])
  else
    redis.call('HSET', hash, ARGV[i + 1], ARGV[i + 2])
  end
end
return 1
"""


class CentreStore(Protocol):
    async def write(self, holder: str, changes: Changes) -> bool:
        """Apply all changes, or none when `holder` does not hold the lease (False)."""
        ...

    async def load(self) -> Entries: ...


def empty() -> Entries:
    return {s: {} for s in SECTIONS}


class MemoryCentreStore:
    """One process's store (tests, and the shape of the contract): `holder` plays the lease
    (None: anyone may write)."""

    def __init__(self) -> None:
        self.data = empty()
        self.holder: str | None = None

    async def write(self, holder: str, changes: Changes) -> bool:
        if self.holder is not None and holder != self.holder:
            return False
        for section, entries in changes.items():
            for key, value in entries.items():
                if value is None:
                    self.data[section].pop(key, None)
                else:
                    self.data[section][key] = value
        return True

    async def load(self) -> Entries:
        return {s: dict(self.data[s]) for s in SECTIONS}


class RedisCentreStore:
    """Three hashes, `<prefix>:centre:<section>`, fenced by the lease key `lease_key`."""

    def __init__(self, redis: Any, lease_key: str, prefix: str = "hotline") -> None:
        self.redis = redis
        self.lease_key = lease_key
        self.keys = [f"{prefix}:centre:{s}" for s in SECTIONS]

    async def write(self, holder: str, changes: Changes) -> bool:
        argv: list[str] = [holder]
        for section, entries in changes.items():
            number = str(SECTIONS.index(section) + 1)
            for key, value in entries.items():
                argv += [number, key, value or ""]
        if len(argv) == 1:
            return True
        done = await self.redis.eval(_WRITE, 1 + len(self.keys), self.lease_key, *self.keys, *argv)
        return bool(done)

    async def load(self) -> Entries:
        out = empty()
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in self.keys:
                pipe.hgetall(key)
            found = await pipe.execute()
        for section, entries in zip(SECTIONS, found, strict=True):
            out[section] = {_text(k): _text(v) for k, v in entries.items()}
        return out


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


# -- entries ----------------------------------------------------------------------------------
# `offset` = wall-clock seconds minus the process's monotonic seconds, at the time of writing
# (or reading): a monotonic time t is kept as t + offset.
def _wall(t: float | None, offset: float) -> float | None:
    return None if t is None else round(t + offset, 3)


def _mono(t: Any, offset: float) -> float | None:
    return None if t is None else float(t) - offset


def encode_agent(a: Agent, offset: float) -> str:
    return json.dumps(
        {
            "uri": a.uri,
            "state": a.state.value,
            "since": _wall(a.since, offset),
            "idle_since": _wall(a.idle_since, offset),
            "reason": a.reason,
            "call": a.call,
            "wrapup_until": _wall(a.wrapup_until, offset),
            "answered": a.answered,
            "role": a.role,
            "resume": [a.resume[0].value, a.resume[1]] if a.resume else None,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def decode_agent(username: str, text: str, offset: float) -> Agent:
    d = json.loads(text)
    resume = d.get("resume")
    return Agent(
        username=username,
        uri=str(d["uri"]),
        state=AgentState(d["state"]),
        since=_mono(d["since"], offset) or 0.0,
        idle_since=_mono(d["idle_since"], offset) or 0.0,
        reason=str(d.get("reason", "")),
        call=d.get("call"),
        wrapup_until=_mono(d.get("wrapup_until"), offset),
        answered=int(d.get("answered", 0)),
        role=str(d.get("role", "agent")),
        resume=(AgentState(resume[0]), str(resume[1])) if resume else None,
    )


def encode_waiting(w: Waiting, offset: float) -> str:
    return json.dumps(
        {
            "kind": w.kind,
            "caller": w.caller,
            "queued_at": _wall(w.queued_at, offset),
            "deadline": _wall(w.deadline, offset),
            "ringing": w.ringing,
            "tried": sorted(w.tried),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def decode_waiting(call: str, text: str, offset: float) -> Waiting:
    d = json.loads(text)
    return Waiting(
        call=call,
        kind=str(d["kind"]),
        caller=str(d["caller"]),
        queued_at=_mono(d["queued_at"], offset) or 0.0,
        deadline=_mono(d["deadline"], offset) or 0.0,
        ringing=d.get("ringing"),
        tried=set(d.get("tried", [])),
    )
