"""Dates for tests, on the clinic's local calendar: the one way a test says "today" or "in 3 days".

A clinic's day is its own: at 02:00 UTC it is still yesterday in Los Angeles and
already this afternoon in Auckland. Tests that build a date of birth, an
appointment day or an expiry from ``clock.now().date()`` or ``date.today()`` pass
for some hours of the day and fail for others, so they build them here instead,
always from ``core.clock.now()`` (which ``time_machine`` moves) and a timezone.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from core import clock


def _zone(timezone: str | ZoneInfo) -> ZoneInfo:
    return timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)


def clinic_today(timezone: str | ZoneInfo) -> date:
    """Return the date it is now on a clock in ``timezone`` (the clinic's local day)."""
    return clock.now().astimezone(_zone(timezone)).date()


def clinic_day(timezone: str | ZoneInfo, days: int = 0) -> date:
    """Return the local date ``days`` days after today in ``timezone`` (negative: before)."""
    return clinic_today(timezone) + timedelta(days=days)


def local_time(timezone: str | ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    """Return ``hour:minute`` wall-clock time on ``day`` in ``timezone``, as an aware datetime.

    The zone's rules give the offset of that day, so 10:00 is 10:00 on either side of a
    daylight-saving change.
    """
    return datetime.combine(day, time(hour, minute), _zone(timezone))


def years_after(day: date, years: int) -> date:
    """Return the same calendar day ``years`` later (29 February becomes 28 February)."""
    return day + relativedelta(years=years)


def born_aged(years: int, timezone: str | ZoneInfo) -> date:
    """Return a date of birth for someone whose ``years``-th birthday is today in ``timezone``."""
    return years_after(clinic_today(timezone), -years)


def born_turning(years: int, timezone: str | ZoneInfo) -> date:
    """Return a date of birth for someone who turns ``years`` tomorrow in ``timezone``.

    They are ``years - 1`` on the clinic's date today: the youngest age just under a limit.
    """
    return years_after(clinic_day(timezone, 1), -years)
