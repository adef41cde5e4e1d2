"""Taking a time: locking the provider's calendar, refusing a time, expiring lapsed holds."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, cast, exists, func, select, update

from core import clock, events
from core.bookings.models import Booking, BookingStatus, ChargeStatus
from core.bookings.services.records import _event
from core.catalog.models import Resource, ServiceProvider
from core.clients.models import Client
from core.errors import Refused
from core.extensions import db
from core.schedules.models import Provider, WorkingHours
from core.tenancy.kept import loaded
from core.tenancy.models import Location
from core.tenancy.scope import execute_in_scope, in_this_clinic

REFUSALS = {
    "in_past": "That time has already passed.",
    "too_late": "It is too late to book that time online; please call the clinic.",
    "too_far": "That time is too far ahead to book online.",
    "outside_hours": "The provider does not work at that time and place.",
    "slot_taken": "That time is no longer available; please choose another.",
    "resource_taken": "The room or device this service needs is in use at that time.",
}


def refusal(reason: str) -> Refused:
    """Return the refusal of a time for ``reason`` (a key of REFUSALS)."""
    return Refused(REFUSALS[reason], kind=reason.replace("_", "-"), title="Time not available")


@dataclasses.dataclass(frozen=True)
class ProviderLock:
    """What booking learns about a provider as it locks their calendar."""

    takes_bookings: bool
    performs_service: bool
    #: Their working blocks (local start, local end) at the location on the day.
    hours: list[tuple[time, time]]


@functools.cache
def _lock_statement(reading_client: bool = False) -> Any:
    # Built once with bound parameters: building it anew took as long as running it.
    provider_id = bindparam("provider")
    clinic = in_this_clinic()
    hours = (
        select(
            func.aggregate_strings(
                cast(WorkingHours.starts, String) + "/" + cast(WorkingHours.ends, String), ","
            )
        )
        .where(
            WorkingHours.clinic_id == clinic,
            WorkingHours.provider_id == provider_id,
            WorkingHours.location_id == bindparam("location_id"),
            WorkingHours.weekday == bindparam("weekday"),
        )
        .scalar_subquery()
    )
    statement = (
        update(Provider)
        .where(Provider.clinic_id == clinic, Provider.id == provider_id)
        .values(lock_version=Provider.lock_version + 1)
        .returning(
            Provider.active,
            exists().where(
                ServiceProvider.clinic_id == clinic,
                ServiceProvider.service_id == bindparam("service_id"),
                ServiceProvider.provider_id == provider_id,
            ),
            hours,
        )
    )
    if reading_client:
        # UPDATE ... FROM client: the client's row comes back too (it is not locked).
        client = Client.__table__
        statement = statement.where(
            client.c.clinic_id == Provider.clinic_id, client.c.id == bindparam("client")
        ).returning(*(column.label(f"client_{column.name}") for column in client.c))
    return statement


def _lock_provider(
    provider_id: int, service_id: int, location: Location, starts_at: datetime
) -> ProviderLock:
    """Lock the provider's calendar and read what booking needs to know about them.

    An UPDATE takes the provider's row lock on PostgreSQL and the database
    write lock on SQLite; everything read after it is what the next request
    for this provider will see once we commit. Whether they perform the
    service and their hours that day come back with the lock, in the same
    round trip, since every query made under the lock delays the next
    request for this provider. Core on the session's connection, its clinic
    named in the statement (as row-level security also requires): the ORM's
    work per statement cost more than the statement.
    """
    row = execute_in_scope(
        _lock_statement(), _lock_params(provider_id, service_id, location, starts_at)
    ).first()
    if row is None:
        return ProviderLock(False, False, [])
    return _as_lock(row)


def _lock_provider_reading_client(
    provider_id: int, service_id: int, location: Location, starts_at: datetime, client_id: int
) -> tuple[ProviderLock, Client] | None:
    """Lock the provider's calendar as :func:`_lock_provider` does, reading the client with it.

    None, and nothing locked, if either is not the clinic's.
    """
    row = execute_in_scope(
        _lock_statement(reading_client=True),
        {**_lock_params(provider_id, service_id, location, starts_at), "client": client_id},
    ).first()
    if row is None:
        return None
    found = row._mapping
    client = loaded(Client, {c.name: found[f"client_{c.name}"] for c in Client.__table__.c})
    return _as_lock(row), client


def _lock_params(
    provider_id: int, service_id: int, location: Location, starts_at: datetime
) -> dict[str, Any]:
    return {
        "provider": provider_id,
        "service_id": service_id,
        "location_id": location.id,
        "weekday": starts_at.astimezone(ZoneInfo(location.timezone)).weekday(),
    }


def _as_lock(row: Any) -> ProviderLock:
    blocks = []
    for block in (row[2] or "").split(","):
        if block:
            starts, ends = block.split("/")
            blocks.append((time.fromisoformat(starts), time.fromisoformat(ends)))
    return ProviderLock(bool(row[0]), bool(row[1]), blocks)


def _lock_resource(resource_id: int | None) -> None:
    if resource_id is not None:
        db.session.execute(
            update(Resource)
            .where(Resource.id == resource_id)
            .values(lock_version=Resource.lock_version + 1)
        )


def expire_holds(
    now: datetime | None = None,
    provider_id: int | None = None,
    booking_ids: tuple[int, ...] | None = None,
) -> int:
    """Expire held bookings whose hold has lapsed: the clinic's, one provider's, or those given."""
    if booking_ids is not None and not booking_ids:
        return 0  # asked on every booking, almost always with none
    now = now or clock.now()
    statement = select(Booking).where(
        Booking.status == BookingStatus.held, Booking.hold_expires_at <= now
    )
    if provider_id is not None:
        statement = statement.where(Booking.provider_id == provider_id)
    if booking_ids is not None:
        statement = statement.where(Booking.id.in_(booking_ids))
    lapsed = list(db.session.scalars(statement))
    for booking in lapsed:
        _event(booking, "hold_expired", BookingStatus.expired, actor="system", actor_user_id=None)
        # Systems told of the booking's creation learn that it is gone.
        events.publish("booking.cancelled", booking, cancelled_by="system", reason="hold_expired")
        for charge in booking.charges:
            if charge.status == ChargeStatus.owed:
                charge.status = ChargeStatus.waived
    db.session.flush()
    return len(lapsed)
