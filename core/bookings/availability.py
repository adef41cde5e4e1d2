"""Bookable slots: working hours in local time, less bookings, buffers and time off.

Hours are wall-clock times at each location and become UTC date by date, so
a 9:00 start is 9:00 on both sides of a daylight-saving change (and a day
that skips or repeats an hour is simply shorter or longer in UTC).
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import bindparam, event, inspect, null, or_, select, union_all, update
from sqlalchemy.orm import Session

from core import clock
from core.bookings.models import Booking, BookingStatus
from core.bookings.settings import booking_settings
from core.catalog import services as catalog
from core.catalog.models import Resource, Service, ServiceProvider
from core.extensions import db
from core.schedules.models import Provider, TimeOff, WorkingHours
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import execute_in_scope, in_this_clinic


@dataclass(frozen=True)
class SlotDay:
    """The bookable starts of one day with one provider at one location.

    ``starts`` are local times with their UTC offsets (ISO 8601), so a client
    in another zone, or a day on which the clocks change, reads them right.
    """

    provider_id: int
    provider_name: str
    location_id: int
    date: date
    starts: list[str]


#: Longer than any booking can last (duration plus buffer), for index-friendly overlap queries.
LONGEST_BOOKING = timedelta(hours=24)


def _occupying() -> Any:
    return or_(*(Booking.status == status for status in OCCUPYING))


@functools.cache
def _taken_statement(one_provider: bool) -> Any:
    """Return the query for bookings and time off in a window, built once with bound parameters."""
    # Plain comparisons rather than IN lists for one provider: SQLAlchemy
    # renders an expanding IN for every execution, a noticeable cost on the
    # booking path; so is building the statement, hence once.
    providers = bindparam("providers", expanding=not one_provider)
    start, end = bindparam("start"), bindparam("end")
    clinic = in_this_clinic()
    taken = select(
        Booking.id,
        Booking.provider_id,
        Booking.starts_at,
        Booking.blocks_until,
        Booking.hold_expires_at,
    ).where(
        Booking.clinic_id == clinic,
        Booking.provider_id == providers if one_provider else Booking.provider_id.in_(providers),
        Booking.starts_at < end,
        Booking.starts_at > bindparam("earliest"),
        Booking.blocks_until > start,
        _occupying(),
        Booking.id != bindparam("exclude_booking_id"),
    )
    away = select(null(), TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at, null()).where(
        TimeOff.clinic_id == clinic,
        TimeOff.provider_id == providers if one_provider else TimeOff.provider_id.in_(providers),
        TimeOff.starts_at < end,
        TimeOff.ends_at > start,
    )
    return union_all(taken, away)


class Calendar:
    """What is taken, for a set of providers over a window, loaded in three queries."""

    def __init__(
        self,
        provider_ids: list[int],
        start: datetime,
        end: datetime,
        now: datetime,
        exclude_booking_id: int | None = None,
        resource_id: int | None = None,
    ) -> None:
        self.busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        self.resource_use: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        self._starts: dict[int, list[datetime]] = {}
        self._latest_end: dict[int, list[datetime]] = {}
        #: Held bookings whose hold has lapsed but which no job has expired yet:
        #: free for the calendar, but a new booking must expire them first.
        self.lapsed_holds: list[int] = []
        #: When the first hold still in force in the window runs out: its time frees then,
        #: with nothing written, so an answer worked out now holds only until that moment.
        self.next_hold_lapse: datetime | None = None
        if not provider_ids:
            return
        one = len(provider_ids) == 1
        # Bookings and time off in one round trip: booking a slot reads this
        # while it holds the provider's lock, so every query here is paid by
        # the next request for the same provider too. Core on the session's
        # connection, its clinic named in the statement (as row-level security
        # also requires): the ORM's work per statement cost more than the query.
        # Rows of (booking, provider, start, end, hold end); time off has no booking and no hold.
        taken = cast(
            Iterable[tuple[int, int, datetime, datetime, datetime | None]],
            execute_in_scope(
                _taken_statement(one),
                {
                    "providers": provider_ids[0] if one else list(provider_ids),
                    "start": start,
                    "end": end,
                    # No booking lasts a day (services take at most 12 hours and a
                    # 4-hour buffer), so this bound keeps the index scan to the
                    # window instead of every booking in the provider's history.
                    "earliest": start - LONGEST_BOOKING,
                    "exclude_booking_id": exclude_booking_id or 0,
                },
            ),
        )
        for booking_id, provider_id, starts, until, hold_expires_at in taken:
            if hold_expires_at is not None and hold_expires_at <= now:
                self.lapsed_holds.append(booking_id)
                continue
            if hold_expires_at is not None and (
                self.next_hold_lapse is None or hold_expires_at < self.next_hold_lapse
            ):
                self.next_hold_lapse = hold_expires_at
            self.busy[provider_id].append((starts, until))
        if resource_id is not None:
            # The room is shared: its use by every provider counts, not only these.
            for starts, until in db.session.execute(
                select(Booking.starts_at, Booking.blocks_until).where(
                    Booking.resource_id == resource_id,
                    Booking.starts_at < end,
                    Booking.starts_at > start - LONGEST_BOOKING,
                    Booking.blocks_until > start,
                    _occupying(),
                    or_(Booking.hold_expires_at.is_(None), Booking.hold_expires_at > now),
                    Booking.id != (exclude_booking_id or 0),
                )
            ):
                self.resource_use[resource_id].append((starts, until))
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


@functools.lru_cache(maxsize=256)
def _clock_times(base_minutes: int, step_minutes: int, count: int) -> tuple[str, ...]:
    """Return "THH:MM:00" for ``count`` starts from ``base_minutes``, ``step_minutes`` apart."""
    return tuple(
        f"T{(base_minutes + k * step_minutes) // 60:02d}:{(base_minutes + k * step_minutes) % 60:02d}:00"
        for k in range(count)
    )


def _offset_text(moment: datetime) -> str:
    seconds = int(moment.utcoffset().total_seconds())  # type: ignore[union-attr]
    sign = "+" if seconds >= 0 else "-"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@functools.cache
def _people_statement(one_person: bool) -> Any:
    """The active providers of a service (or the one asked for), with their calendar versions.

    Run as Core on the session's connection, its clinic named in the statement
    (as row-level security also requires): every availability answer asks it.
    """
    clinic = in_this_clinic()
    statement = (
        select(Provider.id, Provider.display_name, Provider.lock_version)
        .join(ServiceProvider, ServiceProvider.provider_id == Provider.id)
        .where(
            Provider.clinic_id == clinic,
            ServiceProvider.clinic_id == clinic,
            ServiceProvider.service_id == bindparam("service_id"),
            Provider.active.is_(True),
        )
    )
    return statement.where(Provider.id == bindparam("provider_id")) if one_person else statement


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
) -> list[SlotDay]:
    """Return every bookable start for ``service`` between two local dates, inclusive.

    The inner loop works in whole seconds since the epoch and writes local
    times as text directly: it runs for every candidate start of every
    provider (thousands for a fortnight), so it must stay cheap.
    """
    now = now or clock.now()
    settings = booking_settings(clinic)
    earliest = int(
        (now + timedelta(minutes=settings["min_notice_minutes"] if online else 0)).timestamp()
    )
    latest = int((now + timedelta(days=settings["max_advance_days"])).timestamp())

    # One query each for the places and the people offering the service,
    # rather than loading the service's link collections first.
    asked = {"service_id": service.id, "location_id": location_id, "provider_id": provider_id}
    # The places are setup, kept between requests while it is unchanged; only their
    # columns (id, zone) are read here, so the kept copies need no session.
    places, _ = catalog.kept_places_and_people(service.id)
    locations = {loc.id: loc for loc in places if location_id is None or loc.id == location_id}
    provider_query = _people_statement(provider_id is not None)
    offered = execute_in_scope(provider_query, asked).all()
    providers = {row[0]: row[1] for row in offered}
    if not locations or not providers:
        return []
    key = _answer_key(
        clinic, service, settings, locations, offered, date_from, date_to, earliest, latest, online
    )
    answers = _kept_answers()
    if key is not None:
        found = answers.get(key, now)
        if found is not None:
            return found
    found, true_until = _work_out(
        service, settings, locations, providers, date_from, date_to, now, earliest, latest
    )
    if key is not None:
        answers.keep(key, true_until, found)
    return found


class KeptAnswers:
    """Availability answers already worked out by this app, by everything they depend on.

    Each is kept with the moment it stops being true by itself (a hold
    running out); the least recently asked go first. Shared by the threads
    of a worker, so it is locked. Treat a returned answer as read-only.
    """

    #: How many answers an app keeps.
    SIZE = 512

    def __init__(self) -> None:
        self._answers: OrderedDict[tuple[Any, ...], tuple[datetime, list[SlotDay]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], now: datetime) -> list[SlotDay] | None:
        with self._lock:
            found = self._answers.get(key)
            if found is None or found[0] <= now:
                return None
            self._answers.move_to_end(key)
            return found[1]

    def keep(self, key: tuple[Any, ...], true_until: datetime, answer: list[SlotDay]) -> None:
        with self._lock:
            self._answers[key] = (true_until, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self.SIZE:
                self._answers.popitem(last=False)


def _kept_answers() -> KeptAnswers:
    # One per app, not per process: each app has its own database (tests build many).
    return current_app.extensions.setdefault("clinic_saas.availability_answers", KeptAnswers())


def _answer_key(
    clinic: Clinic,
    service: Service,
    settings: dict[str, Any],
    locations: dict[int, Location],
    offered: Sequence[Any],
    date_from: date,
    date_to: date,
    earliest: int,
    latest: int,
    online: bool,
) -> tuple[Any, ...] | None:
    """Everything an answer depends on, so a kept answer is reused only while it is still true.

    A provider's ``lock_version`` moves with every change to their calendar
    (a booking made, moved or cancelled, their hours or time off: see
    ``_calendar_changed``); the service, the places, the clinic's settings and
    the dates are here as they are now. Starts fall on whole minutes, so the
    notice and advance limits count to the minute: a kept answer serves for a
    minute at most, so a change no version records (a client's bookings
    erased in bulk) shows within the minute. A service sharing a room is
    never kept: the room's other bookings are not in the key.
    """
    if service.resource_id is not None:
        return None
    return (
        clinic.id,
        settings["slot_step_minutes"],  # notice and advance are in ``earliest`` and ``latest``
        service.id,
        service.duration_minutes,
        service.buffer_minutes,
        tuple(sorted((loc.id, loc.timezone) for loc in locations.values())),
        tuple(sorted(tuple(row) for row in offered)),
        date_from,
        date_to,
        -(-earliest // 60),  # a start at or after ``earliest``: at or after the next minute
        latest // 60,
        online,
    )


def _work_out(
    service: Service,
    settings: dict[str, Any],
    locations: dict[int, Location],
    providers: dict[int, str],
    date_from: date,
    date_to: date,
    now: datetime,
    earliest: int,
    latest: int,
) -> tuple[list[SlotDay], datetime]:
    """The starts themselves, and the moment they stop being true by themselves."""
    step = settings["slot_step_minutes"] * 60
    duration = service.duration_minutes * 60
    occupied = duration + service.buffer_minutes * 60
    # Plain rows, not ORM objects: a clinic has hundreds of weekly blocks.
    hours = db.session.execute(
        select(
            WorkingHours.weekday,
            WorkingHours.provider_id,
            WorkingHours.location_id,
            WorkingHours.starts,
            WorkingHours.ends,
        ).where(
            WorkingHours.provider_id.in_(list(providers)),
            WorkingHours.location_id.in_(list(locations)),
        )
    ).all()
    resource = db.session.get(Resource, service.resource_id) if service.resource_id else None
    window_start = datetime.combine(date_from, datetime.min.time(), tzinfo=UTC) - timedelta(days=1)
    window_end = datetime.combine(date_to, datetime.min.time(), tzinfo=UTC) + timedelta(days=2)
    calendar = Calendar(
        list(providers), window_start, window_end, now, resource_id=service.resource_id
    )
    busy = {p: [int(s.timestamp()) for s in calendar._starts[p]] for p in calendar._starts}
    intervals = {
        p: [(int(s.timestamp()), int(e.timestamp())) for s, e in calendar.busy[p]]
        for p in calendar.busy
    }

    # Plain tuples, grouped by weekday: the loops below touch no ORM attributes.
    zones = {loc.id: ZoneInfo(loc.timezone) for loc in locations.values()}
    by_weekday: dict[int, list[tuple[int, str, int, Any, Any]]] = defaultdict(list)
    for weekday, block_provider, block_location, block_starts, block_ends in hours:
        by_weekday[weekday].append(
            (
                block_provider,
                providers[block_provider],
                block_location,
                block_starts,
                block_ends,
            )
        )
    # Many providers share a location's hours: each (day, place, hours) is worked out once.
    windows: dict[tuple[Any, ...], tuple[int, int, bool, str]] = {}
    found: list[SlotDay] = []
    for offset in range((date_to - date_from).days + 1):
        day = date_from + timedelta(days=offset)
        prefix = day.isoformat()
        for provider_id_, provider_name, location_id_, block_starts, block_ends in by_weekday.get(
            day.weekday(), ()
        ):
            tz = zones[location_id_]
            starts_of = busy.get(provider_id_, ())
            window_key = (day, location_id_, block_starts, block_ends)
            window = windows.get(window_key)
            if window is None:
                local_start = datetime.combine(day, block_starts, tzinfo=tz)
                local_end = datetime.combine(day, block_ends, tzinfo=tz)
                window = (
                    int(local_start.timestamp()),
                    int(local_end.timestamp()),
                    local_start.utcoffset() == local_end.utcoffset(),
                    _offset_text(local_start),
                )
                windows[window_key] = window
            first, last, same_offset, offset_text = window
            base_minutes = block_starts.hour * 60 + block_starts.minute
            # Candidate k starts at first + k * step; keep those within notice,
            # advance and the block, then strike the ones a busy interval blocks.
            low = max(0, -(-(earliest - first) // step))
            high = (min(last - duration, latest) - first) // step
            if high < low:
                continue
            allowed = bytearray(b"\x01") * (high - low + 1)
            if starts_of:
                # Intervals that could touch the block: those starting before its end.
                upto = bisect.bisect_left(starts_of, last + occupied)
                for busy_start, busy_end in intervals[provider_id_][:upto]:
                    if busy_end <= first:
                        continue
                    # Blocked: candidate c with c < busy_end and c + occupied > busy_start.
                    k_from = max(low, (busy_start - occupied - first) // step + 1)
                    k_to = min(high, -(-(busy_end - first) // step) - 1)
                    for k in range(k_from, k_to + 1):
                        allowed[k - low] = 0
            if resource is not None:
                for k in range(low, high + 1):
                    if allowed[k - low]:
                        at = first + k * step
                        if not calendar.resource_free(
                            resource,
                            datetime.fromtimestamp(at, UTC),
                            datetime.fromtimestamp(at + occupied, UTC),
                        ):
                            allowed[k - low] = 0
            if same_offset:
                clock_times = _clock_times(base_minutes, settings["slot_step_minutes"], high + 1)
                starts = [
                    f"{prefix}{clock_times[k]}{offset_text}"
                    for k in range(low, high + 1)
                    if allowed[k - low]
                ]
            else:  # the clocks change inside this block
                starts = [
                    datetime.fromtimestamp(first + k * step, tz).isoformat()
                    for k in range(low, high + 1)
                    if allowed[k - low]
                ]
            if starts:
                found.append(SlotDay(provider_id_, provider_name, location_id_, day, starts))
    found.sort(key=lambda d: (d.date, d.provider_name, d.location_id))
    # True until a hold in the window runs out (with none, until the key's minute moves on).
    return found, calendar.next_hold_lapse or datetime.max.replace(tzinfo=UTC)


#: The statuses in which a booking takes its provider's time (as ``_occupying`` queries them).
#: A new booking's insert on PostgreSQL checks the same overlap itself (``new_booking``), and
#: the database's exclusion constraint enforces it for these statuses too.
OCCUPYING = frozenset({BookingStatus.held, BookingStatus.confirmed, BookingStatus.checked_in})


def _occupies(statuses: Sequence[Any]) -> bool:
    return any(status in OCCUPYING for status in statuses)


@event.listens_for(Session, "before_flush")
def _calendar_changed(session: Session, flush_context: Any, instances: Any) -> None:
    """Move the ``lock_version`` of each provider whose calendar this flush changes.

    Booking takes the provider's lock, which moves it already; this covers the
    rest: a booking cancelled, moved or given up, working hours and time off
    changed. Kept availability answers name the version, so they are not
    reused once it moves.
    """
    touched: set[int] = set()
    for obj in session.dirty:
        if isinstance(obj, Booking):
            attrs = inspect(obj).attrs
            status = attrs["status"].history
            # Held to confirmed, or confirmed to checked in, keeps the time taken: no change.
            freed_or_taken = status.has_changes() and (
                _occupies(status.deleted) != _occupies(status.added or [obj.status])
            )
            if freed_or_taken or any(
                attrs[name].history.has_changes()
                for name in ("starts_at", "blocks_until", "provider_id")
            ):
                # A booking given to another provider frees the first one's time too.
                moved = attrs["provider_id"].history
                touched.update(p for p in (*moved.deleted, *moved.added) if isinstance(p, int))
                touched.add(obj.provider_id)
        elif isinstance(obj, WorkingHours | TimeOff):
            touched.add(obj.provider_id)
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, WorkingHours | TimeOff) and obj.provider_id is not None:
            touched.add(obj.provider_id)
    if touched:
        # On the session's connection, in its transaction: a Core statement through the
        # session is refused by the clinic rules, and row-level security scopes it anyway.
        table = Provider.__table__
        session.connection().execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.id.in_(sorted(touched)))
            .values(lock_version=table.c.lock_version + 1)
        )


@dataclass(frozen=True)
class SlotCheck:
    """Whether a start can be booked: ``reason`` says why not (None: it can).

    ``lapsed_holds`` are held bookings in the way whose hold has run out; the
    booking that takes the slot expires them first.
    """

    reason: str | None
    lapsed_holds: tuple[int, ...] = ()


def check_slot(
    clinic: Clinic,
    service: Service,
    provider_id: int,
    location: Location,
    start: datetime,
    *,
    online: bool,
    now: datetime | None = None,
    exclude_booking_id: int | None = None,
    hours: Sequence[tuple[time, time]] | None = None,
) -> SlotCheck:
    """Check whether ``start`` can be booked with the provider at ``location``.

    ``hours`` are the provider's working blocks there that local day, if the
    caller has read them already; otherwise they are queried.
    """
    now = now or clock.now()
    reason = time_refusal(
        clinic, service, provider_id, location, start, online=online, now=now, hours=hours
    )
    if reason is not None:
        return SlotCheck(reason)
    until = start + timedelta(minutes=service.duration_minutes + service.buffer_minutes)
    calendar = Calendar(
        [provider_id],
        start - timedelta(days=1),
        until + timedelta(days=1),
        now,
        exclude_booking_id,
        resource_id=service.resource_id,
    )
    lapsed = tuple(calendar.lapsed_holds)
    if not calendar.free(provider_id, start, until):
        return SlotCheck("slot_taken", lapsed)
    resource = db.session.get(Resource, service.resource_id) if service.resource_id else None
    if not calendar.resource_free(resource, start, until):
        return SlotCheck("resource_taken", lapsed)
    return SlotCheck(None, lapsed)


def time_refusal(
    clinic: Clinic,
    service: Service,
    provider_id: int,
    location: Location,
    start: datetime,
    *,
    online: bool,
    now: datetime,
    hours: Sequence[tuple[time, time]] | None = None,
) -> str | None:
    """Return why ``start`` cannot be booked whatever the calendar holds, or None.

    The clinic's notice and reach for online bookings, and the provider's
    hours at ``location`` that local day (``hours``, if the caller has read
    them already; otherwise they are queried).
    """
    settings = booking_settings(clinic)
    duration = timedelta(minutes=service.duration_minutes)
    if start < now:
        return "in_past"
    if online and start < now + timedelta(minutes=settings["min_notice_minutes"]):
        return "too_late"
    if online and start > now + timedelta(days=settings["max_advance_days"]):
        return "too_far"
    tz = ZoneInfo(location.timezone)
    local_day = start.astimezone(tz).date()
    if hours is None:
        hours = db.session.execute(
            select(WorkingHours.starts, WorkingHours.ends).where(
                WorkingHours.provider_id == provider_id,
                WorkingHours.location_id == location.id,
                WorkingHours.weekday == local_day.weekday(),
            )
        ).all()
    if not any(
        block_start <= start and start + duration <= block_end
        for block_start, block_end in (
            local_window(tz, local_day, starts, ends) for starts, ends in hours
        )
    ):
        return "outside_hours"
    return None
