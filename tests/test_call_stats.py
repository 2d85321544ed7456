"""Call-centre statistics: the hourly counts the call-record hooks keep equal a recount; 接通率,
15 秒接通率, waits and talk, per local hour of day; agents' occupancy from their state changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from telephony import call_stats_store
from telephony import store as call_store
from telephony.call_stats import AgentTimeRecorder, CallStatsService
from telephony.model import CallRecord, CtiEvent
from tickets.db import Database

TZ = ZoneInfo("Asia/Shanghai")


def local(h: int, m: int = 0, s: int = 0, d: int = 2) -> datetime:
    return datetime(2026, 11, d, h, m, s, tzinfo=TZ)


def record(call_id: str, offered: datetime, **kw: Any) -> CallRecord:
    return CallRecord(call_id, "in", "intake", "13812345678", "12345", 0, offered, **kw)


def write_calls(db: Database) -> None:
    """Five inbound calls at 09:xx and one at 22:xx, written as the call centre writes them:
    inserted on offer, then updated step by step."""
    steps: list[tuple[CallRecord, list[dict[str, Any]]]] = [
        (record("a", local(9, 0)), [  # answered after 10 s, talked 5 min
            {"queued_at": local(9, 0, 5)},
            {"answered_at": local(9, 0, 15), "agent": "agent"},
            {"ended_at": local(9, 5, 15), "outcome": "answered"},
        ]),
        (record("b", local(9, 10)), [  # answered after 40 s, talked 1 min
            {"queued_at": local(9, 10, 0)},
            {"answered_at": local(9, 10, 40)},
            {"ended_at": local(9, 11, 40), "outcome": "answered"},
        ]),
        (record("c", local(9, 20)), [  # hung up after 30 s in the queue
            {"queued_at": local(9, 20, 0)},
            {"ended_at": local(9, 20, 30), "outcome": "abandoned"},
        ]),
        (record("d", local(9, 30)), [  # self-service only (IVR), never queued
            {"ended_at": local(9, 31), "outcome": "ivr"},
        ]),
        (record("e", local(9, 40)), [  # queued, then voicemail
            {"queued_at": local(9, 40, 0)},
            {"ended_at": local(9, 45), "outcome": "voicemail"},
        ]),
        (record("f", local(22, 0)), [{"ended_at": local(22, 1), "outcome": "voicemail"}]),
        (CallRecord("g", "out", "callback", "13812345678", "12345", 0, local(10, 0)), [
            {"answered_at": local(10, 0, 20)},
            {"ended_at": local(10, 3), "outcome": "callback"},
        ]),
    ]  # fmt: skip
    for rec, updates in steps:
        db.run_write(lambda c, r=rec: call_store.insert_call(c, r))
        for values in updates:
            db.run_write(lambda c, r=rec, v=values: call_store.update_call(c, r.id, v))


def test_hourly_counts_kept_by_the_hooks_equal_a_recount(database: Database) -> None:
    write_calls(database)
    first = call_stats_store.hour_of(local(0).astimezone(UTC))
    kept = database.run_read(lambda c: call_stats_store.list_hours(c, first, first + 48))
    fresh = database.run_read(call_stats_store.recount_calls)
    assert {h: {m: v for m, v in x.items() if v} for h, x in kept.items()} == fresh


async def test_call_report_per_local_hour(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_calls(database)
    service = CallStatsService(database, "Asia/Shanghai")
    day = date(2026, 11, 2)
    report = await service.report(day, day)
    t = report.totals
    assert (t["offered"], t["queued"], t["answered"], t["answered_fast"]) == (6, 4, 2, 1)
    assert (t["abandoned"], t["voicemail"], t["callbacks"], t["callbacks_answered"]) == (1, 2, 1, 1)
    assert t.connection_rate == 0.5 and t.answer_rate_15s == 0.25 and t.abandon_rate == 0.25
    assert t.average_wait_s == pytest.approx((10 + 40 + 30) / 3)
    assert t.average_talk_s == pytest.approx((300 + 60) / 2)
    nine = report.by_hour[9]
    assert (nine["offered"], nine["answered"]) == (5, 2) and report.by_hour[22]["voicemail"] == 1
    assert report.by_hour[1]["offered"] == 0  # 09:00 local is 01:00 UTC: read in local time
    assert (await service.report(day + timedelta(days=1), day + timedelta(days=1))).totals[
        "offered"
    ] == 0
    # a zone whose clocks change is summed hour by hour: the same figures
    monkeypatch.setattr(CallStatsService, "_offset_hours", lambda self, at: None)
    again = await service.report(day, day)
    assert [x.counts for x in again.by_hour] == [x.counts for x in report.by_hour]


async def test_agent_occupancy_from_state_changes(database: Database) -> None:
    recorder = AgentTimeRecorder(database)

    async def state(at: datetime, name: str, value: str) -> None:
        await recorder.on_event(CtiEvent("agent.state", at, agent=name, data={"state": value}))

    await state(local(9, 0), "wang", "available")
    await state(local(9, 30), "wang", "talking")
    await state(local(9, 45), "wang", "wrapup")
    await state(local(9, 50), "wang", "available")
    await state(local(10, 30), "wang", "offline")
    await state(local(9, 0), "li", "paused")
    await recorder.flush(local(10, 0))  # li still signed in: counted up to now
    report = await CallStatsService(database).report(date(2026, 11, 2), date(2026, 11, 2))
    nine, ten = report.by_hour[9], report.by_hour[10]
    assert nine["staffed_ms"] == 2 * 3600 * 1000 and nine["busy_ms"] == 20 * 60 * 1000
    assert ten["staffed_ms"] == 30 * 60 * 1000 and ten["busy_ms"] == 0
    assert nine.occupancy == pytest.approx(20 / 120)
