"""Deadline clocks for privacy work: calendar days, US business days and New Zealand working days.

Public holidays come from the ``holidays`` package; what counts as a
working day is the law's own list, not every holiday the package knows.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

#: The holidays the Privacy Act 2020 (s 7) leaves out of a New Zealand working
#: day, besides weekends and 25 December to 15 January. Waitangi Day and Anzac
#: Day are Mondayised, which the package marks "(observed)".
NZ_NON_WORKING = (
    "Waitangi Day",
    "Good Friday",
    "Easter Monday",
    "Anzac Day",
    "King's Birthday",
    "Queen's Birthday",
    "Matariki",
    "Labour Day",
)


@functools.lru_cache(maxsize=64)
def _nz_holidays(year: int) -> frozenset[date]:
    found = holidays.country_holidays("NZ", years=year)
    return frozenset(
        day for day, name in found.items() if any(name.startswith(n) for n in NZ_NON_WORKING)
    )


def is_nz_working_day(day: date) -> bool:
    """Return whether ``day`` is a working day under the Privacy Act 2020."""
    if day.weekday() >= 5:
        return False
    if (day.month == 12 and day.day >= 25) or (day.month == 1 and day.day <= 15):
        return False
    return day not in _nz_holidays(day.year)


@functools.lru_cache(maxsize=64)
def _us_holidays(year: int, subdivision: str | None) -> frozenset[date]:
    return frozenset(holidays.country_holidays("US", subdiv=subdivision, years=year))


def is_us_business_day(day: date, subdivision: str | None = "CA") -> bool:
    """Return whether ``day`` is a business day: Monday to Friday, not a (state) holiday."""
    return day.weekday() < 5 and day not in _us_holidays(day.year, subdivision)


def add_nz_working_days(received: date, count: int) -> date:
    """Return the ``count``-th New Zealand working day after the day of receipt."""
    day = received
    while count:
        day += timedelta(days=1)
        if is_nz_working_day(day):
            count -= 1
    return day


def add_us_business_days(received: date, count: int, subdivision: str | None = "CA") -> date:
    """Return the ``count``-th business day after the day of receipt."""
    day = received
    while count:
        day += timedelta(days=1)
        if is_us_business_day(day, subdivision):
            count -= 1
    return day


def local_day(moment: datetime, timezone: str) -> date:
    """Return the date ``moment`` falls on in ``timezone`` (a request's day of receipt)."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def end_of_day(day: date, timezone: str) -> datetime:
    """Return the last moment of ``day`` in ``timezone``: a deadline "by" that day."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone))
