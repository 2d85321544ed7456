"""Working days on the Chinese public-holiday calendar, including 调休 make-up working days.

The data comes from the maintained `chinesecalendar` package (the State Council's yearly notice,
2004 onwards); `[sla] holidays` and `[sla] makeup_workdays` in config add or correct days, e.g. a
year the installed package does not know yet. Outside the package's years and without config
entries the calendar falls back to the configured weekdays and logs that once per year.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

import chinese_calendar
from chinese_calendar import constants

log = logging.getLogger(__name__)

KNOWN_YEARS = frozenset(d.year for d in constants.holidays) | frozenset(
    d.year for d in constants.workdays
)


class HolidayCalendar:
    def __init__(
        self,
        weekdays: Iterable[int] = (1, 2, 3, 4, 5),
        holidays: Iterable[date] = (),
        makeup_workdays: Iterable[date] = (),
    ) -> None:
        self.weekdays = frozenset(weekdays)
        self.holidays = frozenset(holidays)
        self.makeup_workdays = frozenset(makeup_workdays)
        overlap = self.holidays & self.makeup_workdays
        if overlap:
            raise ValueError(f"days both holiday and make-up working day: {sorted(overlap)}")
        self._configured_years = frozenset(d.year for d in self.holidays | self.makeup_workdays)
        self._warned: set[int] = set()
        self.is_workday = lru_cache(maxsize=4096)(self._is_workday)

    def knows(self, year: int) -> bool:
        return year in KNOWN_YEARS or year in self._configured_years

    def _is_workday(self, day: date) -> bool:
        if day in self.makeup_workdays:
            return True
        if day in self.holidays:
            return False
        if day.year in KNOWN_YEARS:
            # the package answers for the standard Monday-Friday week plus its holiday data
            if self.weekdays == frozenset({1, 2, 3, 4, 5}):
                return bool(chinese_calendar.is_workday(day))
            if day in constants.holidays:
                return False
            if day in constants.workdays:
                return True
        elif day.year not in self._configured_years and day.year not in self._warned:
            self._warned.add(day.year)
            log.warning(
                "节假日数据缺少 %d 年：按周工作日计算时限；请在 [sla] holidays / makeup_workdays "
                "中补充该年的放假和调休安排",
                day.year,
            )
        return day.isoweekday() in self.weekdays
