"""Time limits: the holiday calendar with 调休, working-hour cut-offs, deadline clocks and the
watcher with an injected clock (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from routing.calendar import HolidayCalendar
from routing.config import SlaSettings
from routing.sla import DeadlinePolicy, WorkCalendar
from routing.watcher import DeadlineWatcher
from tests.test_list_scale import next_due_mismatches
from tests.test_stats_aggregates import assert_aggregates_equal_recount
from tickets.db import Database
from tickets.model import (
    Actor,
    Caller,
    Channel,
    ClockKind,
    ClockState,
    Kind,
    NewTicket,
    Role,
    Urgency,
)
from tickets.service import TicketService
from tickets.store import list_clocks, list_events
from tickets.tables import tickets as tickets_t

TZ = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)  # type: ignore[misc]


def policy(**overrides: object) -> DeadlinePolicy:
    return DeadlinePolicy(SlaSettings.model_validate(overrides), TZ)


# -- the calendar -------------------------------------------------------------------------------
def test_calendar_makeup_saturday_is_a_working_day() -> None:
    cal = HolidayCalendar()
    assert cal.is_workday(date(2026, 2, 14))  # Saturday, 调休上班 before the Spring Festival
    assert cal.is_workday(date(2026, 2, 28))  # Saturday, 调休上班 after it
    assert not cal.is_workday(date(2026, 2, 21))  # an ordinary Saturday inside the holiday


def test_calendar_spring_festival_week_is_off() -> None:
    cal = HolidayCalendar()
    assert [cal.is_workday(date(2026, 2, d)) for d in range(15, 25)] == [False] * 9 + [True]


def test_calendar_national_day_golden_week() -> None:
    cal = HolidayCalendar()
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_workday(date(2026, 10, 10))  # Saturday 调休上班


def test_calendar_unknown_year_uses_weekdays_and_config(caplog: pytest.LogCaptureFixture) -> None:
    bare = HolidayCalendar()
    assert bare.is_workday(date(2031, 1, 1))  # a Wednesday the package knows nothing about
    assert "2031" in caplog.text
    cal = HolidayCalendar(holidays=[date(2031, 1, 1)], makeup_workdays=[date(2031, 1, 4)])
    assert not cal.is_workday(date(2031, 1, 1))
    assert cal.is_workday(date(2031, 1, 4))  # a Saturday made a working day by config


def test_calendar_refuses_a_day_both_off_and_worked() -> None:
    with pytest.raises(ValueError):
        HolidayCalendar(holidays=[date(2031, 1, 4)], makeup_workdays=[date(2031, 1, 4)])


def test_reply_deadline_crosses_the_spring_festival() -> None:
    p = policy()
    # consultation (2 working days) received on Friday 13 Feb 2026: Saturday 14th is the first
    # working day (调休), the holiday runs 15-23, the second working day is Tuesday 24th
    due = p.reply_due(Kind.CONSULT, Urgency.NORMAL, local(2026, 2, 13, 10, 0))
    assert due == local(2026, 2, 24, 17, 30)


def test_complaint_deadline_is_fifteen_working_days() -> None:
    due = policy().reply_due(Kind.COMPLAINT, Urgency.NORMAL, local(2026, 11, 27, 9, 0))
    # Mon 30 Nov … Fri 18 Dec 2026 is 15 working days
    assert due == local(2026, 12, 18, 17, 30)


def test_sign_deadline_cut_off_at_close_of_business() -> None:
    p = policy()
    # Friday 16:30 + 2 working hours: one hour on Friday, one on Monday morning
    assert p.sign_due(Urgency.NORMAL, local(2026, 11, 27, 16, 30)) == local(2026, 11, 30, 9, 30)
    # before opening the clock starts at 08:30
    assert p.sign_due(Urgency.NORMAL, local(2026, 11, 30, 7, 0)) == local(2026, 11, 30, 10, 30)
    # on a holiday eve, the next working day is after the holiday
    assert p.sign_due(Urgency.NORMAL, local(2026, 9, 30, 17, 0)) == local(2026, 10, 8, 10, 0)


def test_urgent_and_emergency_run_on_calendar_hours() -> None:
    p = policy()
    start = local(2026, 2, 16, 3, 0)  # middle of the night, middle of the Spring Festival
    assert p.reply_due(Kind.COMPLAINT, Urgency.URGENT, start) == start + timedelta(hours=24)
    assert p.reply_due(Kind.COMPLAINT, Urgency.EMERGENCY, start) == start + timedelta(hours=2)
    assert p.sign_due(Urgency.EMERGENCY, start) == start + timedelta(minutes=15)


def test_warning_at_eighty_percent_of_working_time() -> None:
    p = policy()
    start, due = local(2026, 11, 30, 8, 30), local(2026, 11, 30, 17, 30)  # one working day
    assert p.warn_at(Urgency.NORMAL, start, due) == local(2026, 11, 30, 15, 42)
    # across a weekend the nights and the weekend don't count
    start, due = local(2026, 11, 27, 8, 30), local(2026, 11, 30, 17, 30)  # Fri + Mon
    # 18 working hours, 80 % = 14 h 24 min: all of Friday, then 5 h 24 min of Monday
    assert p.warn_at(Urgency.NORMAL, start, due) == local(2026, 11, 30, 13, 54)
    # urgent orders: 80 % of calendar time
    start = local(2026, 11, 28, 0, 0)
    assert p.warn_at(Urgency.URGENT, start, start + timedelta(hours=10)) == start + timedelta(
        hours=8
    )


def test_working_time_between_skips_nights_weekends_and_holidays() -> None:
    cal = WorkCalendar(SlaSettings(), TZ)
    assert cal.working_time_between(local(2026, 2, 13, 8, 30), local(2026, 2, 24, 8, 30)) == (
        timedelta(hours=18)  # Friday 13th and Saturday 14th (调休) only
    )


# -- clocks and the watcher, with an injected clock --------------------------------------------
@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: local(2026, 11, 30, 9, 0))

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)

    def set(self, moment: datetime) -> None:
        self.now = moment


DISPATCHER = Actor(Role.DISPATCHER, 1, "派单员")
HOUSING = Actor(Role.DEPARTMENT, 2, "住建局", "150100-housing")


@pytest.fixture
def clocked(settings: Settings, database: Database) -> Iterator[tuple[TicketService, FakeClock]]:
    clock = FakeClock()
    tickets = build_services(settings, database, InProcessBus()).tickets
    tickets.clock = clock
    yield tickets, clock
    # whatever the test did to the clocks, each order still carries its earliest deadline
    assert next_due_mismatches(database) == []


async def _dispatched(tickets: TicketService, kind: Kind = Kind.CONSULT) -> int:
    t = await tickets.submit(
        NewTicket(Channel.PHONE, "路灯不亮", Caller(phone="13800000001"), kind=kind)
    )
    t = await tickets.dispatch(DISPATCHER, t.id, t.version, "150100-housing")
    return t.id


def _clock_states(db: Database, ticket_id: int) -> dict[str, str]:
    return {c.kind.value: c.state.value for c in db.run_read(lambda c: list_clocks(c, ticket_id))}


def _actions(db: Database, ticket_id: int) -> list[str]:
    return [e.action for e in db.run_read(lambda c: list_events(c, ticket_id))]


async def test_dispatch_starts_sign_and_reply_clocks(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, _ = clocked
    tid = await _dispatched(tickets)
    assert _clock_states(database, tid) == {"sign": "running", "reply": "running"}
    clocks = database.run_read(lambda c: list_clocks(c, tid))
    sign = next(c for c in clocks if c.kind is ClockKind.SIGN)
    # 09:00 Monday + 2 working hours; warning at 80 % = 96 minutes in
    assert sign.due_at == local(2026, 11, 30, 11, 0)
    assert sign.warn_at == local(2026, 11, 30, 10, 36)
    assert sign.next_at == sign.warn_at


async def test_watcher_warns_then_marks_overdue_once(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, clock = clocked
    watcher = DeadlineWatcher(tickets, batch=2)
    tid = await _dispatched(tickets)
    assert await watcher.run_once() == 0  # nothing due yet
    clock.set(local(2026, 11, 30, 10, 40))  # past the sign warning
    assert await watcher.run_once() == 1
    assert await watcher.run_once() == 0  # idempotent: the warning is not repeated
    assert _clock_states(database, tid)["sign"] == "warned"
    clock.set(local(2026, 11, 30, 11, 1))  # past the sign deadline
    assert await watcher.run_once() == 1
    t = await tickets.get(DISPATCHER, tid)
    assert t.urge_count == 1  # an overdue sign-for is urged (催办)
    assert _actions(database, tid) == [
        "create",
        "dispatch",
        "deadline_warning",
        "deadline_overdue",
    ]
    assert await watcher.run_once() == 0


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite has one writer
async def test_the_watcher_leaves_an_order_a_change_holds_for_the_next_round(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    """On PostgreSQL the watcher locks the orders of the clocks it fires, skipping those
    another transaction holds: it never counts an order's statistics from a state that
    transaction is changing (which counted its deadlines twice), and never waits for it while
    holding clocks it may update (a deadlock)."""
    tickets, clock = clocked
    watcher = DeadlineWatcher(tickets, batch=10)
    held, free = await _dispatched(tickets), await _dispatched(tickets)
    clock.set(local(2026, 11, 30, 10, 40))  # past both sign warnings
    with database.engine.connect() as other, other.begin():  # a user's change in flight
        other.execute(sa.select(tickets_t.c.id).where(tickets_t.c.id == held).with_for_update())
        # it does not wait for that change (the timeout only keeps a failure from hanging)
        assert await asyncio.wait_for(watcher.run_once(), 60) == 1
        assert _clock_states(database, free)["sign"] == "warned"
        assert _clock_states(database, held)["sign"] == "running"
    assert await watcher.run_once() == 1  # its turn came
    assert _clock_states(database, held)["sign"] == "warned"
    assert_aggregates_equal_recount(database)


async def test_overdue_reply_raises_supervision_and_signing_stops_the_sign_clock(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, clock = clocked
    tid = await _dispatched(tickets)  # consultation: reply by Wed 2 Dec 17:30
    t = await tickets.get(HOUSING, tid)
    t = await tickets.sign(HOUSING, tid, t.version)
    assert _clock_states(database, tid) == {"sign": "stopped", "reply": "running"}
    clock.set(local(2026, 12, 3, 9, 0))  # past both the warning and the deadline
    watcher = DeadlineWatcher(tickets)
    # found only after its deadline (the watcher was down): straight to overdue, no stale warning
    assert await watcher.run_once() == 1
    assert await watcher.run_once() == 0
    assert _actions(database, tid)[-1] == "deadline_overdue"
    assert "deadline_warning" not in _actions(database, tid)
    t = await tickets.get(DISPATCHER, tid)
    assert t.supervised  # 督办
    assert _clock_states(database, tid)["reply"] == "overdue"


async def test_approved_extension_moves_the_reply_clock(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, clock = clocked
    tid = await _dispatched(tickets)
    t = await tickets.get(HOUSING, tid)
    t = await tickets.sign(HOUSING, tid, t.version)
    clock.set(local(2026, 12, 2, 16, 0))
    assert await DeadlineWatcher(tickets).run_once() == 1  # warned
    t = await tickets.request_extension(
        HOUSING, tid, t.version, local(2026, 12, 9, 17, 30), "需要现场勘查"
    )
    t = await tickets.decide_extension(DISPATCHER, tid, t.version, True)
    reply = next(
        c for c in database.run_read(lambda c: list_clocks(c, tid)) if c.kind is ClockKind.REPLY
    )
    assert reply.state is ClockState.RUNNING
    assert reply.due_at == local(2026, 12, 9, 17, 30)
    clock.set(local(2026, 12, 3, 9, 0))  # would have been overdue without the extension
    assert await DeadlineWatcher(tickets).run_once() == 0


async def test_clocks_survive_a_restart(
    settings: Settings, database: Database, clocked: tuple[TicketService, FakeClock]
) -> None:
    tickets, clock = clocked
    tid = await _dispatched(tickets)
    # a new service on the same database (a restarted process) sees the same due clocks
    again = build_services(settings, database, InProcessBus()).tickets
    again.clock = clock
    clock.set(local(2026, 11, 30, 10, 40))
    assert await DeadlineWatcher(again).run_once() == 1
    assert await DeadlineWatcher(tickets).run_once() == 0
    assert _clock_states(database, tid)["sign"] == "warned"


async def test_reply_and_approval_start_the_revisit_clock(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, _ = clocked
    tid = await _dispatched(tickets)
    t = await tickets.get(HOUSING, tid)
    t = await tickets.sign(HOUSING, tid, t.version)
    t = await tickets.reply(HOUSING, tid, t.version, "已修复")
    assert _clock_states(database, tid) == {"sign": "stopped", "reply": "stopped"}
    t = await tickets.review(DISPATCHER, tid, t.version, True)
    assert _clock_states(database, tid)["revisit"] == "running"
    t = await tickets.close(DISPATCHER, tid, t.version)
    assert set(_clock_states(database, tid).values()) == {"stopped"}


async def test_corrected_urgency_moves_the_live_deadlines(
    clocked: tuple[TicketService, FakeClock], database: Database
) -> None:
    tickets, clock = clocked
    tid = await _dispatched(tickets, Kind.COMPLAINT)  # 15 working days
    t = await tickets.get(DISPATCHER, tid)
    t = await tickets.edit(DISPATCHER, tid, t.version, {"urgency": "emergency"})
    created = t.created_at
    assert t.reply_due == created + timedelta(hours=2)
    lead = t.lead
    assert lead is not None
    assert lead.reply_due == created + timedelta(hours=2)
    assert lead.sign_due == lead.created_at + timedelta(minutes=15)
    due = {c.kind: c.due_at for c in database.run_read(lambda c: list_clocks(c, tid))}
    assert due[ClockKind.REPLY] == created + timedelta(hours=2)
    clock.set(local(2026, 11, 30, 11, 30))
    assert await DeadlineWatcher(tickets).run_once() == 2  # both overdue now
