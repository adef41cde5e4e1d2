"""Bookable slots: working hours in local time, less bookings, buffers and time off.

Hours are wall-clock times at each location and become UTC date by date, so
a 9:00 start is 9:00 on both sides of a daylight-saving change (and a day
that skips or repeats an hour is simply shorter or longer in UTC).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select

from core import clock
from core.bookings.models import Booking, BookingStatus
from core.bookings.settings import booking_settings
from core.catalog.models import Resource, Service
from core.extensions import db
from core.schedules.models import Provider, TimeOff, WorkingHours
from core.tenancy.models import Clinic, Location


@dataclass(frozen=True)
class Slot:
    """A bookable start time with one provider at one location."""

    starts_at: datetime  # aware, in the location's timezone
    ends_at: datetime
    provider_id: int
    provider_name: str
    location_id: int


class Calendar:
    """What is taken, for a set of providers over a window, loaded in three queries."""

    def __init__(
        self,
        provider_ids: list[int],
        start: datetime,
        end: datetime,
        now: datetime,
        exclude_booking_id: int | None = None,
    ) -> None:
        self.busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        self.resource_use: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        if not provider_ids:
            return
        occupying = or_(
            Booking.status.in_([BookingStatus.confirmed, BookingStatus.checked_in]),
            and_(Booking.status == BookingStatus.held, Booking.hold_expires_at > now),
        )
        rows = db.session.execute(
            select(
                Booking.provider_id, Booking.resource_id, Booking.starts_at, Booking.blocks_until
            ).where(
                Booking.provider_id.in_(provider_ids),
                Booking.starts_at < end,
                Booking.blocks_until > start,
                occupying,
                Booking.id != (exclude_booking_id or 0),
            )
        ).all()
        for provider_id, resource_id, starts, until in rows:
            interval = (clock.as_utc(starts), clock.as_utc(until))
            self.busy[provider_id].append(interval)
            if resource_id is not None:
                self.resource_use[resource_id].append(interval)
        for provider_id, starts, ends in db.session.execute(
            select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at).where(
                TimeOff.provider_id.in_(provider_ids),
                TimeOff.starts_at < end,
                TimeOff.ends_at > start,
            )
        ):
            self.busy[provider_id].append((clock.as_utc(starts), clock.as_utc(ends)))
        self._starts: dict[int, list[datetime]] = {}
        self._latest_end: dict[int, list[datetime]] = {}
        for provider_id, intervals in self.busy.items():
            intervals.sort()
            self._starts[provider_id] = [s for s, _ in intervals]
            running, latest = [], None
            for _, ends in intervals:
                latest = ends if latest is None or ends > latest else latest
                running.append(latest)
            self._latest_end[provider_id] = running

    def free(self, provider_id: int, start: datetime, until: datetime) -> bool:
        """Return whether the provider has nothing in [start, until).

        Of the intervals starting before ``until``, one clashes if it is still
        running at ``start``: the latest end among them says so at once.
        """
        starts = self._starts.get(provider_id)
        if not starts:
            return True
        index = bisect.bisect_left(starts, until)
        return index == 0 or self._latest_end[provider_id][index - 1] <= start

    def resource_free(self, resource: Resource | None, start: datetime, until: datetime) -> bool:
        """Return whether the resource has a unit free for [start, until)."""
        if resource is None:
            return True
        overlapping = [
            i for i in self.resource_use.get(resource.id, []) if i[0] < until and i[1] > start
        ]
        return len(overlapping) < resource.capacity


def local_window(
    tz: ZoneInfo, day: date, starts: object, ends: object
) -> tuple[datetime, datetime]:
    """Return a working block of ``day`` as UTC datetimes, honouring the zone's offset that day."""
    start = datetime.combine(day, starts, tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type]
    end = datetime.combine(day, ends, tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type]
    return start, end


def slots(
    clinic: Clinic,
    service: Service,
    date_from: date,
    date_to: date,
    *,
    location_id: int | None = None,
    provider_id: int | None = None,
    online: bool = True,
    now: datetime | None = None,
) -> list[Slot]:
    """Return every bookable start for ``service`` between two local dates, inclusive."""
    now = now or clock.now()
    settings = booking_settings(clinic)
    step = timedelta(minutes=settings["slot_step_minutes"])
    duration = timedelta(minutes=service.duration_minutes)
    occupied = duration + timedelta(minutes=service.buffer_minutes)
    earliest = now + timedelta(minutes=settings["min_notice_minutes"]) if online else now
    latest = now + timedelta(days=settings["max_advance_days"])

    location_ids = [i for i in service.location_ids if location_id in (None, i)]
    provider_ids = [i for i in service.provider_ids if provider_id in (None, i)]
    if not location_ids or not provider_ids:
        return []
    locations = {
        loc.id: loc
        for loc in db.session.scalars(
            select(Location).where(Location.id.in_(location_ids), Location.active.is_(True))
        )
    }
    providers = {
        p.id: p
        for p in db.session.scalars(
            select(Provider).where(Provider.id.in_(provider_ids), Provider.active.is_(True))
        )
    }
    hours = db.session.scalars(
        select(WorkingHours).where(
            WorkingHours.provider_id.in_(list(providers)),
            WorkingHours.location_id.in_(list(locations)),
        )
    ).all()
    resource = db.session.get(Resource, service.resource_id) if service.resource_id else None
    window_start = datetime.combine(date_from, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    window_end = datetime.combine(date_to, datetime.min.time(), tzinfo=UTC) + timedelta(days=2)
    calendar = Calendar(list(providers), window_start, window_end, now)

    found: list[Slot] = []
    days = (date_to - date_from).days + 1
    for block in hours:
        location = locations[block.location_id]
        tz = ZoneInfo(location.timezone)
        provider = providers[block.provider_id]
        for offset in range(days):
            day = date_from + timedelta(days=offset)
            if day.weekday() != block.weekday:
                continue
            block_start, block_end = local_window(tz, day, block.starts, block.ends)
            start = block_start
            while start + duration <= block_end:
                if (
                    earliest <= start <= latest
                    and calendar.free(provider.id, start, start + occupied)
                    and calendar.resource_free(resource, start, start + occupied)
                ):
                    found.append(
                        Slot(
                            start.astimezone(tz),
                            (start + duration).astimezone(tz),
                            provider.id,
                            provider.display_name,
                            location.id,
                        )
                    )
                start += step
    found.sort(key=lambda s: (s.starts_at, s.provider_name, s.location_id))
    return found


def fits(
    clinic: Clinic,
    service: Service,
    provider: Provider,
    location: Location,
    start: datetime,
    *,
    online: bool,
    now: datetime | None = None,
    exclude_booking_id: int | None = None,
) -> str | None:
    """Return why ``start`` cannot be booked with ``provider`` at ``location``, or None if it can."""
    now = now or clock.now()
    settings = booking_settings(clinic)
    duration = timedelta(minutes=service.duration_minutes)
    until = start + duration + timedelta(minutes=service.buffer_minutes)
    if start < now:
        return "in_past"
    if online and start < now + timedelta(minutes=settings["min_notice_minutes"]):
        return "too_late"
    if online and start > now + timedelta(days=settings["max_advance_days"]):
        return "too_far"
    tz = ZoneInfo(location.timezone)
    local_day = start.astimezone(tz).date()
    blocks = db.session.scalars(
        select(WorkingHours).where(
            WorkingHours.provider_id == provider.id,
            WorkingHours.location_id == location.id,
            WorkingHours.weekday == local_day.weekday(),
        )
    ).all()
    if not any(
        block_start <= start and start + duration <= block_end
        for block_start, block_end in (
            local_window(tz, local_day, b.starts, b.ends) for b in blocks
        )
    ):
        return "outside_hours"
    calendar = Calendar(
        [provider.id], start - timedelta(days=1), until + timedelta(days=1), now, exclude_booking_id
    )
    if not calendar.free(provider.id, start, until):
        return "slot_taken"
    resource = db.session.get(Resource, service.resource_id) if service.resource_id else None
    if not calendar.resource_free(resource, start, until):
        return "resource_taken"
    return None
