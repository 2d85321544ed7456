"""Time limits (时限) per request kind and urgency, on working hours or calendar hours.

Working days here are the configured weekdays; the public-holiday calendar with 调休 make-up days
plugs in through `WorkCalendar.is_workday` (a later change adds the holiday data).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from routing.config import SlaSettings
from tickets.model import Kind, Urgency


def _hhmm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


class WorkCalendar:
    """Working days and the working-hour window, in local time."""

    def __init__(self, settings: SlaSettings, tz: ZoneInfo) -> None:
        self.tz = tz
        self.start = _hhmm(settings.workday_start)
        self.end = _hhmm(settings.workday_end)
        self.weekdays = frozenset(settings.workdays)
        if self.end <= self.start:
            raise ValueError("sla.workday_end must be after sla.workday_start")

    def is_workday(self, day: date) -> bool:
        return day.isoweekday() in self.weekdays

    def _day_window(self, day: date) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, self.start, self.tz),
            datetime.combine(day, self.end, self.tz),
        )

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` of working time after `start` (which may be outside hours)."""
        remaining = timedelta(hours=hours)
        cur = start.astimezone(self.tz)
        for _ in range(3660):  # ten years of days: a guard against a calendar with no workdays
            day = cur.date()
            if self.is_workday(day):
                open_, close = self._day_window(day)
                if cur < open_:
                    cur = open_
                if cur < close:
                    available = close - cur
                    if remaining <= available:
                        return (cur + remaining).astimezone(UTC)
                    remaining -= available
            cur = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        raise ValueError("no working days in the calendar")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """End of the working day `days` working days after the day of `start`."""
        local = start.astimezone(self.tz)
        day = local.date()
        counted = 0
        for _ in range(3660):
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
                if counted == days:
                    return self._day_window(day)[1].astimezone(UTC)
        raise ValueError("no working days in the calendar")


class DeadlinePolicy:
    """Implements tickets.service.DeadlinePolicy from [sla] settings."""

    def __init__(self, settings: SlaSettings, tz: ZoneInfo) -> None:
        self.settings = settings
        self.calendar = WorkCalendar(settings, tz)

    def sign_due(self, urgency: Urgency, start: datetime) -> datetime:
        s = self.settings
        if urgency is Urgency.EMERGENCY:
            return start + timedelta(minutes=s.emergency_sign_minutes)
        if urgency is Urgency.URGENT:
            return start + timedelta(minutes=s.urgent_sign_minutes)
        return self.calendar.add_working_hours(start, s.sign_working_hours)

    def reply_due(self, kind: Kind, urgency: Urgency, start: datetime) -> datetime:
        s = self.settings
        if urgency is Urgency.EMERGENCY:
            return start + timedelta(hours=s.emergency_hours)
        if urgency is Urgency.URGENT:
            return start + timedelta(hours=s.urgent_hours)
        return self.calendar.add_working_days(start, s.reply_working_days[kind.value])
