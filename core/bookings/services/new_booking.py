"""Booking a service: choosing the provider, holding or confirming, writing it all at once."""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    cast,
    exists,
    insert,
    inspect,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from core import clock, events
from core.bookings.availability import (
    LONGEST_BOOKING,
    OCCUPYING,
    SlotCheck,
    check_slot,
    time_refusal,
)
from core.bookings.models import Booking, BookingEvent, BookingStatus, ChargeKind
from core.bookings.services.records import _event, _owe, as_record, policy_version
from core.bookings.services.requirements import _check_age, _needs_guarantee, requirements_for
from core.bookings.services.slots import (
    ProviderLock,
    _lock_provider,
    _lock_provider_reading_client,
    _lock_resource,
    expire_holds,
    refusal,
)
from core.bookings.settings import booking_settings
from core.catalog import services as catalog
from core.catalog.models import Service, ServiceProvider
from core.clients import services as clients
from core.clients.models import Client
from core.errors import Refused
from core.extensions import db
from core.messaging import reminders
from core.messaging.models import OutboxMessage
from core.schedules.models import TimeOff
from core.tenancy.kept import loaded
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import execute_in_scope, in_this_clinic, require_clinic_ref


def _read_client(client_id: int) -> Client:
    """Return the clinic's client ``client_id``, or raise 404.

    Core on the session's connection, its clinic named in the statement (as
    row-level security also requires), then put in the session as loaded:
    the ORM's work per statement cost more than the statement.
    """
    row = execute_in_scope(_client_statement(), {"client": client_id}).first()
    if row is None:
        return clients.client(client_id)  # no such client: 404
    return loaded(Client, dict(row._mapping))


@functools.cache
def _client_statement() -> Any:
    table = Client.__table__
    return select(table).where(
        table.c.clinic_id == in_this_clinic(), table.c.id == bindparam("client")
    )


def book(
    clinic: Clinic,
    *,
    client: Client | int,
    service_id: int,
    location_id: int,
    provider_id: int | None,
    starts_at: datetime,
    online: bool,
    actor_user_id: int | None = None,
) -> Booking:
    """Book ``service`` for ``client`` (a client, or a client's id), or raise the problem that says why not.

    The clinic's policy decides what the booking needs; if it needs a
    guarantee (a card, a deposit, a prepayment) it is held for the clinic's
    hold time, otherwise confirmed at once.
    """
    now = clock.now()
    starts_at = clock.as_utc(starts_at)
    # The service and the place are the clinic's setup, kept between requests while unchanged.
    service, location = catalog.kept_offering(service_id, location_id)
    on_postgresql = db.session.get_bind().dialect.name == "postgresql"
    locked: ProviderLock | None = None
    if isinstance(client, int) and provider_id is not None and on_postgresql:
        # The provider's lock is taken first and brings the client back, in one round trip.
        # (When either is not the clinic's, nothing is locked: they are read as below.) The
        # policy's checks then run under the lock; it queues only bookings for this provider.
        found = _lock_provider_reading_client(provider_id, service.id, location, starts_at, client)
        if found is not None:
            locked, client = found
    if not isinstance(client, Client):
        client = _read_client(client)
    if not service.active or (online and not service.online_bookable):
        raise Refused("This service cannot be booked online.", kind="service-not-bookable")
    if provider_id is not None:
        candidates = [provider_id]
    else:
        candidates = list(
            db.session.scalars(
                select(ServiceProvider.provider_id)
                .where(ServiceProvider.service_id == service.id)
                .order_by(ServiceProvider.provider_id)
            )
        )
    if not candidates:
        raise Refused("That provider does not perform this service.", kind="not-offered-here")
    _check_age(clinic, client)
    requirements = requirements_for(clinic, service, client, starts_at)
    if requirements.refused:
        raise Refused(
            requirements.refusal_reason or "The clinic's policy does not allow this booking.",
            kind="booking-refused",
            clauses=[c.id for c in requirements.clauses],
        )

    if online and (requirements.deposit or requirements.prepayment):
        # Money up front, which only Stripe takes online. A card guarantee alone is left
        # to the hold: a gift certificate can stand for it, and staff can take a card.
        _check_can_charge(clinic, requirements.deposit or requirements.prepayment)

    # On PostgreSQL a time's calendar is checked by the insert itself, under the provider's
    # lock as a separate read would be: the booking is written only if nothing occupying
    # overlaps it. When something does (a booking, time off, or a hold that has lapsed and
    # must be expired first), the calendar is read as below to say which.
    checked_by_insert = service.resource_id is None and on_postgresql
    held = _needs_guarantee(requirements)

    def check(provider: int, hours: list[tuple[time, time]]) -> SlotCheck:
        return check_slot(
            clinic, service, provider, location, starts_at, online=online, now=now, hours=hours
        )

    def write(provider: int, *, if_free: bool) -> Booking | None:
        return _write(
            clinic,
            client,
            service,
            location,
            provider,
            starts_at,
            requirements,
            held=held,
            online=online,
            now=now,
            actor_user_id=actor_user_id,
            if_free=if_free,
        )

    booking: Booking | None = None
    reason = "slot_taken"
    for candidate in candidates:
        if locked is not None and candidate == provider_id:
            lock = locked
        else:
            lock = _lock_provider(candidate, service.id, location, starts_at)
        if not lock.performs_service and provider_id is not None:
            raise Refused("That provider does not perform this service.", kind="not-offered-here")
        if not lock.takes_bookings:
            continue
        if checked_by_insert:
            refused = time_refusal(
                clinic,
                service,
                candidate,
                location,
                starts_at,
                online=online,
                now=now,
                hours=lock.hours,
            )
            if refused is not None:
                reason = refused
                continue
            booking = write(candidate, if_free=True)
            if booking is not None:
                break
            # Something is in the way: the calendar, read below, says what.
        slot = check(candidate, lock.hours)
        expire_holds(now, booking_ids=slot.lapsed_holds)
        if slot.reason is None and service.resource_id is not None:
            # The room or device is shared by every provider: checked again once it is locked.
            _lock_resource(service.resource_id)
            slot = check(candidate, lock.hours)
            expire_holds(now, booking_ids=slot.lapsed_holds)
            if slot.reason is not None:
                raise refusal(slot.reason)
        if slot.reason is not None:
            reason = slot.reason
            continue
        booking = write(candidate, if_free=False)
        break
    if booking is None:
        raise refusal(reason)
    # A booking just written has no acceptance yet: say so, rather than have the answer ask
    # (accept_policy forgets this when it records one).
    set_committed_value(booking, "policy_acceptances", [])
    if requirements.deposit:
        _owe(
            booking,
            ChargeKind.deposit,
            requirements.deposit,
            requirements.clauses[0] if requirements.clauses else None,
        )
    if requirements.prepayment:
        _owe(
            booking,
            ChargeKind.prepayment,
            requirements.prepayment,
            requirements.clauses[0] if requirements.clauses else None,
        )
    events.publish("booking.created", booking)
    if not held:
        events.publish("booking.confirmed", booking)
        events.announce("clinic_booking_confirmed", clinic=clinic, booking=booking)
    return booking


def _write(
    clinic: Clinic,
    client: Client,
    service: Service,
    location: Location,
    provider_id: int,
    starts_at: datetime,
    requirements: Any,
    *,
    held: bool,
    online: bool,
    now: datetime,
    actor_user_id: int | None,
    if_free: bool,
) -> Booking | None:
    """Write the booking, its first event and its reminders; return it.

    ``if_free`` (PostgreSQL only): write nothing, and return None, if an
    occupying booking or time off overlaps it.
    """
    settings = booking_settings(clinic)
    duration = timedelta(minutes=service.duration_minutes)
    booking = Booking(
        clinic_id=require_clinic_ref().id,
        client_id=client.id,
        service_id=service.id,
        provider_id=provider_id,
        location_id=location.id,
        resource_id=service.resource_id,
        starts_at=starts_at,
        ends_at=starts_at + duration,
        blocks_until=starts_at + duration + timedelta(minutes=service.buffer_minutes),
        status=BookingStatus.held if held else BookingStatus.confirmed,
        hold_expires_at=now + timedelta(minutes=settings["hold_minutes"]) if held else None,
        source="online" if online else "staff",
        price_minor=service.price_minor,
        currency=service.currency,
        requirements=as_record(requirements),
        policy_version_id=policy_version(requirements.clauses),
        policy_accepted_at=now,
        manage_nonce=secrets.token_hex(8),
        created_by_user_id=actor_user_id,
    )
    booking.location = location
    booking.events = []
    booking.charges = []
    event = _event(
        booking,
        "booked",
        BookingStatus.held if held else BookingStatus.confirmed,
        actor="client" if online else "staff",
        actor_user_id=actor_user_id,
        decision=requirements,
    )
    # A confirmed booking's reminders are written with it, in its transaction.
    due = [] if held else reminders.due(clinic, booking, location.timezone)
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            if not _insert_together(booking, event, due, if_free=if_free):
                return None
        else:
            db.session.add(booking)
            db.session.flush()  # the event too: its booking_id comes from the relationship
            reminders.write(booking, due)
    except IntegrityError:
        # PostgreSQL's exclusion constraint: someone else took the time. The
        # transaction is spent; the whole request is refused and rolled back.
        db.session.rollback()
        raise refusal("slot_taken") from None
    return booking


def _check_can_charge(clinic: Clinic, owed: Any) -> None:
    """Refuse an online booking that needs a payment or a card while the clinic cannot take them.

    Holding the time would leave the client a booking they cannot pay for or
    guarantee; staff may still book it (and take the money another way).
    """
    needs = f"{owed.format()} paid up front" if owed else "a card on file to guarantee it"
    if clinic.stripe_account_id is None:
        raise Refused(
            f"{clinic.name} cannot take payments online yet, and this booking needs "
            f"{needs}: please call the clinic to book.",
            kind="payments-not-connected",
        )
    if clinic.stripe_charges_enabled is False:
        raise Refused(
            f"{clinic.name} cannot take payments right now (Stripe has paused charges on its "
            f"account), and this booking needs {needs}: please call the clinic to book.",
            kind="payments-paused",
        )


def _row(obj: Any) -> dict[str, Any]:
    """Return a new ORM object's column values for an INSERT, defaults filled in as a flush would."""
    row = {}
    for attr in inspect(obj).mapper.column_attrs:
        column = attr.columns[0]
        if column.primary_key:
            continue
        value = getattr(obj, attr.key)
        if value is None and column.default is not None:
            value = column.default.arg(None) if column.default.is_callable else column.default.arg
            setattr(obj, attr.key, value)
        row[column.key] = value
    return row


def _insert_together(
    booking: Booking, event: BookingEvent, due: list[dict[str, Any]], *, if_free: bool
) -> bool:
    """Insert a new booking, its first event and its reminders in one statement (PostgreSQL).

    ``if_free``: insert nothing, and return False, if an occupying booking or
    time off of its provider overlaps it.

    Every statement made under the provider's lock delays the next request
    for that provider, and the unit of work would take three. The rows are
    written as the flush would write them, the clinic set as for any insert
    (row-level security refuses any other), and the objects then join the
    session as what the database now holds.
    """
    event.clinic_id = booking.clinic_id
    booking_row, event_row = _row(booking), _row(event)
    del event_row["booking_id"]
    # Parameters are numbered, not named after their columns, and a value the rows repeat
    # (the clinic, the client, a reminder's like its sibling's) is sent once: psycopg keeps a
    # statement's conversion only under 4 KiB of text and 50 parameters, and redoes it
    # for every booking otherwise.
    params = {f"b{i}": v for i, v in enumerate(booking_row.values())}
    booking_names = {k: f"b{i}" for i, k in enumerate(booking_row)}
    event_names = _names(event_row, "e", booking_row, booking_names, None, params)
    reminder_names: list[tuple[tuple[str, str], ...]] = []
    for n, row in enumerate(due):
        before, _, after = reminders.dedupe_key(None, row, booking.starts_at)
        params.update({f"r{n}a": before, f"r{n}z": after})
        sibling = (due[0], dict(reminder_names[0])) if n else None
        reminder_names.append(_names(row, f"r{n}_", booking_row, booking_names, sibling, params))
    if if_free:
        params["earliest"] = booking.starts_at - LONGEST_BOOKING
    statement = _insert_together_statement(
        tuple(booking_row), event_names, tuple(reminder_names), if_free
    )
    # On the session's connection, so in its transaction; a Core statement
    # through the session itself is refused by the clinic rules (it reads as
    # an unscoped query), while an INSERT's only rule is the clinic_id set above.
    written = db.session.connection().execute(statement, params).first()
    if written is None:
        return False
    event.id, booking.id = written
    event.booking_id = booking.id
    for obj in (event, booking):
        make_transient_to_detached(obj)
    db.session.add(booking)
    return True


#: Columns a booking's first event and reminders always share with the booking itself.
_FROM_THE_BOOKING = frozenset({"clinic_id", "client_id", "policy_version_id"})


def _names(
    row: dict[str, Any],
    prefix: str,
    booking_row: dict[str, Any],
    booking_names: dict[str, str],
    sibling: tuple[dict[str, Any], dict[str, str]] | None,
    params: dict[str, Any],
) -> tuple[tuple[str, str], ...]:
    """Name the parameter of each of ``row``'s columns, reusing one already sent for its value."""
    names = []
    for i, (key, value) in enumerate(row.items()):
        if key in _FROM_THE_BOOKING and key in booking_row and booking_row[key] == value:
            name = booking_names[key]
        elif sibling is not None and key in sibling[0] and sibling[0][key] == value:
            name = sibling[1][key]
        else:
            name = f"{prefix}{i}"
            params[name] = value
        names.append((key, name))
    return tuple(names)


@functools.lru_cache(maxsize=64)
def _insert_together_statement(
    booking_keys: tuple[str, ...],
    event_names: tuple[tuple[str, str], ...],
    reminder_names: tuple[tuple[tuple[str, str], ...], ...],
    if_free: bool,
) -> Any:
    # Built once for each shape, with bound parameters: building it anew
    # for every booking took as long as running it.
    booking_table, event_table = Booking.__table__, BookingEvent.__table__
    values = {
        k: bindparam(f"b{i}", type_=booking_table.c[k].type) for i, k in enumerate(booking_keys)
    }
    row = select(*values.values())
    if if_free:
        row = row.where(~_overlapping_booking(values), ~_overlapping_time_off(values))
    new = (
        insert(booking_table)
        .from_select(list(values), row)
        .returning(booking_table.c.id)
        .cte("new_booking")
    )
    statement = (
        insert(event_table)
        .from_select(
            ["booking_id", *(k for k, _ in event_names)],
            select(
                new.c.id,
                *(bindparam(name, type_=event_table.c[k].type) for k, name in event_names),
            ),
        )
        .returning(event_table.c.id, event_table.c.booking_id)
    )
    if reminder_names:
        outbox = OutboxMessage.__table__
        rows = [
            select(
                new.c.id,
                bindparam(f"r{n}a", type_=String)
                + cast(new.c.id, String)
                + bindparam(f"r{n}z", type_=String),
                *(bindparam(name, type_=outbox.c[k].type) for k, name in names),
            )
            for n, names in enumerate(reminder_names)
        ]
        written = insert(outbox).from_select(
            ["booking_id", "dedupe_key", *(k for k, _ in reminder_names[0])],
            union_all(*rows) if len(rows) > 1 else rows[0],
        )
        statement = statement.add_cte(written.cte("reminders"))
    return statement


def _overlapping_booking(new: dict[str, Any]) -> Any:
    """Return whether an occupying booking of the new booking's provider overlaps it."""
    table = Booking.__table__
    return exists().where(
        table.c.clinic_id == new["clinic_id"],
        table.c.provider_id == new["provider_id"],
        table.c.starts_at < new["blocks_until"],
        # No booking lasts a day: this bound keeps the index scan to the day's bookings.
        table.c.starts_at > bindparam("earliest", type_=table.c.starts_at.type),
        table.c.blocks_until > new["starts_at"],
        # Written into the statement, not bound: three more parameters would take it past
        # the fifty psycopg keeps a statement's conversion for.
        table.c.status.in_([literal_column(f"'{status.value}'") for status in sorted(OCCUPYING)]),
    )


def _overlapping_time_off(new: dict[str, Any]) -> Any:
    """Return whether time off of the new booking's provider overlaps it."""
    table = TimeOff.__table__
    return exists().where(
        table.c.clinic_id == new["clinic_id"],
        table.c.provider_id == new["provider_id"],
        table.c.starts_at < new["blocks_until"],
        table.c.ends_at > new["starts_at"],
    )
