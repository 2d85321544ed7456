"""Call-centre statistics: offered / answered / abandoned calls, 接通率 and 15 秒接通率, average
wait and talk, agent occupancy, per hour of day, voicemails and call-backs, read from the
hourly counts; and the recorder of agents' signed-in and busy time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telephony import call_stats_store, store
from telephony.model import CallStats, CtiEvent
from telephony.tables import CALL_HOUR_MEASURES
from tickets.db import Database

log = logging.getLogger(__name__)
BUSY_STATES = frozenset({"talking", "wrapup", "ringing"})
FLUSH_EVERY_S = 300  # an agent idle for hours still shows up within five minutes


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True, slots=True)
class CallFigures:
    """Totals of a period, or of one hour of the day across it."""

    counts: dict[str, int]

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)

    @property
    def connection_rate(self) -> float | None:
        """接通率: answered ÷ callers who asked for an agent."""
        return _ratio(self["answered"], self["queued"])

    @property
    def answer_rate_15s(self) -> float | None:
        """15 秒接通率: answered within 15 s ÷ callers who asked for an agent."""
        return _ratio(self["answered_fast"], self["queued"])

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self["abandoned"], self["queued"])

    @property
    def average_wait_s(self) -> float | None:
        return None if not self["waits"] else self["wait_ms"] / 1000 / self["waits"]

    @property
    def average_talk_s(self) -> float | None:
        return None if not self["talks"] else self["talk_ms"] / 1000 / self["talks"]

    @property
    def occupancy(self) -> float | None:
        """坐席占用率: time talking or in wrap-up ÷ time signed in."""
        return _ratio(self["busy_ms"], self["staffed_ms"])

    def as_dict(self) -> dict[str, Any]:
        def r(v: float | None, n: int = 4) -> float | None:
            return None if v is None else round(v, n)

        return {
            **{m: self[m] for m in CALL_HOUR_MEASURES if not m.endswith("_ms") and m != "waits"},
            "connection_rate": r(self.connection_rate),
            "answer_rate_15s": r(self.answer_rate_15s),
            "abandon_rate": r(self.abandon_rate),
            "average_wait_s": r(self.average_wait_s, 1),
            "average_talk_s": r(self.average_talk_s, 1),
            "occupancy": r(self.occupancy),
        }


@dataclass(frozen=True, slots=True)
class CallReport:
    totals: CallFigures
    by_hour: list[CallFigures]  # 24 hours of the local day


class CallStatsService:
    def __init__(self, db: Database, timezone: str = "Asia/Shanghai") -> None:
        self.db = db
        self.tz = ZoneInfo(timezone)

    def _hours(self, since: date, until: date) -> tuple[int, int]:
        """Hours (since the epoch, UTC) of the local days since..until (inclusive)."""
        start = datetime.combine(since, time(0), self.tz).astimezone(UTC)
        end = datetime.combine(until + timedelta(days=1), time(0), self.tz).astimezone(UTC)
        first = call_stats_store.hour_of(start)
        return first, call_stats_store.hour_of(end - timedelta(seconds=1))

    def _offset_hours(self, at: datetime) -> int | None:
        """The zone's offset from UTC in whole hours, None for a fractional one."""
        offset = at.astimezone(self.tz).utcoffset()
        if offset is None or offset.total_seconds() % 3600:
            return None
        return int(offset.total_seconds() // 3600)

    async def totals(self, since: datetime, until: datetime, answer_s: float = 15) -> CallStats:
        """Inbound calls offered in [since, until) from the call records, in any process."""
        return await self.db.read(lambda c: store.call_stats(c, since, until, answer_s))

    async def report(self, since: date, until: date) -> CallReport:
        first, last = self._hours(since, until)
        total: dict[str, int] = dict.fromkeys(CALL_HOUR_MEASURES, 0)
        per_hour = [dict.fromkeys(CALL_HOUR_MEASURES, 0) for _ in range(24)]
        offsets = {self._offset_hours(call_stats_store.hour_start(h)) for h in (first, last)}
        if len(offsets) == 1 and None not in offsets:  # no clock change: sum in the database
            offset = offsets.pop()
            assert offset is not None
            found = await self.db.read(
                lambda c: call_stats_store.sum_by_hour_of_day(c, first, last, offset)
            )
        else:
            hours = await self.db.read(lambda c: call_stats_store.list_hours(c, first, last))
            found = {}
            for hour, counts in hours.items():
                local = call_stats_store.hour_start(hour).astimezone(self.tz).hour
                acc = found.setdefault(local, dict.fromkeys(CALL_HOUR_MEASURES, 0))
                for m, v in counts.items():
                    acc[m] += v
        for local, counts in found.items():
            for m, v in counts.items():
                total[m] += v
                per_hour[local][m] += v
        return CallReport(CallFigures(total), [CallFigures(h) for h in per_hour])


@dataclass
class _Agent:
    state: str
    since: datetime


@dataclass
class AgentTimeRecorder:
    """Turns the CTI agent-state events into signed-in and busy time per hour."""

    db: Database
    agents: dict[str, _Agent] = field(default_factory=dict)
    # standby call centres all hear the CTI events: only the active one writes the time
    # (the others keep following, to write from the right moment once they take over)
    writes: Callable[[], bool] = lambda: True

    async def _close(self, name: str, at: datetime) -> None:
        a = self.agents.get(name)
        if a is None or at <= a.since:
            return
        busy = a.state in BUSY_STATES
        start = a.since
        if self.writes():
            await self.db.write(lambda c: call_stats_store.add_agent_time(c, start, at, busy))
        a.since = at

    async def on_event(self, ev: CtiEvent) -> None:
        if ev.type != "agent.state" or not ev.agent:
            return
        state = str(ev.data.get("state", ""))
        await self._close(ev.agent, ev.at)
        if state == "offline":
            self.agents.pop(ev.agent, None)
        else:
            self.agents[ev.agent] = _Agent(state, ev.at)

    async def flush(self, now: datetime) -> None:
        for name in list(self.agents):
            await self._close(name, now)

    async def run(self, events: asyncio.Queue[Any]) -> None:
        loop = asyncio.get_running_loop()
        next_flush = loop.time() + FLUSH_EVERY_S
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_flush - loop.time())):
                    ev = await events.get()
                await self.on_event(ev)
            except TimeoutError:
                next_flush = loop.time() + FLUSH_EVERY_S
                try:
                    await self.flush(datetime.now(UTC))
                except Exception:  # the next flush retries; time is not lost, only late
                    log.exception("agent time flush failed")
            except Exception:
                log.exception("agent time: event not recorded")

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush(datetime.now(UTC))
