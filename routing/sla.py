"""Time limits (时限) per request kind and urgency, on working hours or calendar hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from routing.calendar import HolidayCalendar
from routing.config import SlaSettings
from tickets.model import Kind, Urgency

_GUARD_DAYS = 3660  # ten years: a calendar without working days must fail, not loop


def _hhmm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


class WorkCalendar:
    """Working days (holiday calendar with 调休) and the working-hour window, in local time."""

    def __init__(self, settings: SlaSettings, tz: ZoneInfo) -> None:
        self.tz = tz
        self.start = _hhmm(settings.workday_start)
        self.end = _hhmm(settings.workday_end)
        if self.end <= self.start:
            raise ValueError("sla.workday_end must be after sla.workday_start")
        self.days = HolidayCalendar(settings.workdays, settings.holidays, settings.makeup_workdays)

    def is_workday(self, day: date) -> bool:
        return self.days.is_workday(day)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, self.start, self.tz),
            datetime.combine(day, self.end, self.tz),
        )

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of working time after `start` (which may be outside hours)."""
        remaining = amount
        cur = start.astimezone(self.tz)
        for _ in range(_GUARD_DAYS):
            day = cur.date()
            if self.is_workday(day):
                open_, close = self._window(day)
                cur = max(cur, open_)
                if cur < close:
                    if remaining <= close - cur:
                        return (cur + remaining).astimezone(UTC)
                    remaining -= close - cur
            cur = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        raise ValueError("no working days in the calendar")

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time inside [start, end)."""
        total = timedelta()
        cur = start.astimezone(self.tz)
        stop = end.astimezone(self.tz)
        while cur < stop:
            day = cur.date()
            if self.is_workday(day):
                open_, close = self._window(day)
                lo, hi = max(cur, open_), min(close, stop)
                if hi > lo:
                    total += hi - lo
            cur = datetime.combine(day + timedelta(days=1), time(0), self.tz)
        return total

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """Close of business on the `days`-th working day after the day of `start`."""
        day = start.astimezone(self.tz).date()
        counted = 0
        for _ in range(_GUARD_DAYS):
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
                if counted == days:
                    return self._window(day)[1].astimezone(UTC)
        raise ValueError("no working days in the calendar")


# no statutory limit is longer than this; beyond it warnings use calendar time
_WORKING_TIME_HORIZON = timedelta(days=3 * 366)


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
        return self.calendar.add_working_time(start, timedelta(hours=s.sign_working_hours))

    def reply_due(self, kind: Kind, urgency: Urgency, start: datetime) -> datetime:
        s = self.settings
        if urgency is Urgency.EMERGENCY:
            return start + timedelta(hours=s.emergency_hours)
        if urgency is Urgency.URGENT:
            return start + timedelta(hours=s.urgent_hours)
        return self.calendar.add_working_days(start, s.reply_working_days[kind.value])

    def revisit_due(self, start: datetime) -> datetime:
        return self.calendar.add_working_days(start, self.settings.revisit_working_days)

    def warn_at(self, urgency: Urgency, start: datetime, due: datetime) -> datetime:
        """When warn_ratio of the time limit is used: calendar time for urgent orders,
        working time otherwise."""
        ratio = self.settings.warn_ratio
        if due <= start:
            return due
        if urgency is not Urgency.NORMAL or due - start > _WORKING_TIME_HORIZON:
            # calendar time; and a limit years away (a date stored before inputs were
            # bounded) is not walked day by day
            return start + (due - start) * ratio
        budget = self.calendar.working_time_between(start, due)
        if budget <= timedelta():
            return start + (due - start) * ratio
        return min(due, self.calendar.add_working_time(start, budget * ratio))
