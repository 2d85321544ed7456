"""tickets/search_store.tickets_between: a window holding more orders than the limit gives its
newest ones (hot spots' current window, 诉求汇总's latest orders), oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hotline.config import Settings
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
