"""tickets/search_store.tickets_between: a window holding more orders than the limit gives its
newest ones (hot spots' current window, 诉求汇总's latest orders), oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline.config import Settings
from kb.analysis import Analyzer
from kb.config import HotspotSettings
from routing.hotspots import Hotspots
from tests.test_stats_aggregates import SteppingClock, make_service
from tickets import search_store
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket

TZ = ZoneInfo("Asia/Shanghai")


async def test_the_newest_orders_of_a_window_oldest_first(
    settings: Settings, database: Database
) -> None:
    clock = SteppingClock(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    svc = make_service(settings, database, clock)
    made = []
    for i in range(12):
        t = await svc.submit(NewTicket(Channel.WEB, f"第{i}号诉求：路灯不亮", Caller()))
        made.append(t)
    since = made[0].created_at - timedelta(seconds=1)
    until = made[-1].created_at + timedelta(seconds=1)

    def between(limit: int) -> list[int]:
        found = database.run_read(lambda c: search_store.tickets_between(c, since, until, limit))
        return [t.id for t in found]

    assert between(100) == [t.id for t in made]
    assert between(5) == [t.id for t in made[-5:]]  # the newest five, not the first five
    # [since, until): an order at `until` is left out
    assert between(100)[-1] == made[-1].id
    assert made[-1].id not in [
        t.id
        for t in database.run_read(
            lambda c: search_store.tickets_between(c, since, made[-1].created_at, 100)
        )
    ]


async def test_hot_spots_read_past_their_limit_compare_only_whole_baseline_windows(
    settings: Settings, database: Database, analyzer: Analyzer
) -> None:
    """More orders than max_orders in the current window alone: the read is cut inside it, so
    there is no usual volume to compare with, and no spike is claimed against an empty one."""
    clock = SteppingClock(datetime(2026, 11, 2, 9, 0, tzinfo=TZ), timedelta(seconds=1))
    svc = make_service(settings, database, clock)
    topics = ("阿尔丁大街停水了", "小区电梯又坏了", "公交车总是晚点")
    for i in range(105):
        await svc.submit(NewTicket(Channel.WEB, f"{topics[i % 3]}，第{i}户", Caller()))

    async def hot(max_orders: int) -> list[dict[str, Any]]:
        s = HotspotSettings(window_hours=24, baseline_windows=3, max_orders=max_orders, min_count=3)
        return await Hotspots(database, analyzer, s, lambda t: "150203", str, clock=clock).current()

    cut = await hot(100)
    assert sorted(h["count"] for h in cut) == [33, 33, 34]  # the newest 100
    assert not any(h["spike"] for h in cut)
    # with room for every order the same bursts are spikes against three quiet days
    full = await hot(1000)
    assert sorted(h["count"] for h in full) == [35, 35, 35]
    assert all(h["spike"] and h["usual"] == 0 for h in full)
