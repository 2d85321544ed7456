"""The call centre's view of calls in progress and of linked SIP workers, and a live call as an
entry of the standby's store (telephony/centre_state.py)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from telephony.model import CallRecord
from telephony.protocol import Link

_TIMES = {"offered_at", "queued_at", "answered_at", "ended_at"}


@dataclass
class LiveCall:
    record: CallRecord
    link: Link | None
    started: float
    agent: str | None = None
    agents: set[str] = field(default_factory=set)  # agents in the conversation now
    queued: float | None = None  # monotonic time the caller joined the queue
    view: dict[str, Any] = field(default_factory=dict)  # the worker's last conversation view
    # set once the record's row is committed: updates wait for it (handlers run as separate
    # tasks, and on PostgreSQL an UPDATE could otherwise commit before its INSERT)
    stored: asyncio.Event = field(default_factory=asyncio.Event)
    # standby mode: since when (monotonic) no worker link holds this call; ended after a grace
    orphaned: float | None = None


@dataclass
class WorkerLink:
    index: int
    pid: int
    link: Link
    calls: set[str] = field(default_factory=set)


def encode_call(live: LiveCall, offset: float) -> str:
    """`offset`: wall-clock minus monotonic seconds now (see centre_state)."""
    record = {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(live.record).items()
    }
    return json.dumps(
        {
            "record": record,
            "started": round(live.started + offset, 3),
            "agent": live.agent,
            "agents": sorted(live.agents),
            "queued": None if live.queued is None else round(live.queued + offset, 3),
            "view": live.view,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def decode_call(text: str, offset: float) -> LiveCall:
    """A call loaded by a centre taking over: no worker holds it until one reports it."""
    d = json.loads(text)
    known = {f.name for f in fields(CallRecord)}
    values: dict[str, Any] = {
        k: (datetime.fromisoformat(v) if k in _TIMES and v else v)
        for k, v in d["record"].items()
        if k in known
    }
    live = LiveCall(
        record=CallRecord(**values),
        link=None,
        started=float(d["started"]) - offset,
        agent=d.get("agent"),
        agents=set(d.get("agents", [])),
        queued=None if d.get("queued") is None else float(d["queued"]) - offset,
        view=dict(d.get("view") or {}),
    )
    live.stored.set()  # only calls whose row was committed are written to the store
    return live
