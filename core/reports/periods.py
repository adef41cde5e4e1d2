"""The periods a report is cut into: days, weeks or months of the clinic's own calendar."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

#: The longest span one report covers: a year, leap day included.
MAX_DAYS = 366


class Interval(enum.StrEnum):
    """How a report's span is cut."""

    day = "day"
    week = "week"  # Monday to Sunday, named by its Monday
    month = "month"  # named YYYY-MM


class Grouping(enum.StrEnum):
    """What each row of a report is about."""

    clinic = "clinic"
    location = "location"
    provider = "provider"


@dataclass(frozen=True)
class Span:
    """A report's dates, inclusive, on the clinic's calendar, and how they are cut."""

    first: date
    last: date
    interval: Interval
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def starts_at(self) -> datetime:
        """The UTC instant the first day begins in the clinic's timezone."""
        return _midnight(self.first, self.zone)

    @property
    def ends_at(self) -> datetime:
        """The UTC instant the day after the last begins: the span's exclusive end."""
        return _midnight(self.last + timedelta(days=1), self.zone)

    def period_of_day(self, day: date) -> str:
        """Name the period a local date falls in."""
        if self.interval is Interval.day:
            return day.isoformat()
        if self.interval is Interval.week:
            return (day - timedelta(days=day.weekday())).isoformat()
        return f"{day.year:04d}-{day.month:02d}"

    def period_of(self, moment: datetime) -> str:
        """Name the period an instant falls in, on the clinic's calendar."""
        return self.period_of_day(moment.astimezone(self.zone).date())

    def periods(self) -> list[str]:
        """Every period the span touches, in order (a week or month may be cut by the span)."""
        seen: dict[str, None] = {}
        for day in self.days():
            seen.setdefault(self.period_of_day(day), None)
        return list(seen)

    def period_ends(self) -> list[tuple[str, datetime]]:
        """Each period with the UTC instant it ends (its last day's end, within the span)."""
        ends: dict[str, datetime] = {}
        for day in self.days():
            ends[self.period_of_day(day)] = _midnight(day + timedelta(days=1), self.zone)
        return list(ends.items())

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day begins (a day that begins in a gap begins at its first minute)."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
