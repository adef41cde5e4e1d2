"""The booking lifecycle: each transition asks the clinic's policy and records the clause it applied.

States: held (waiting for its guarantee, for a limited time) -> confirmed ->
checked_in -> completed; or cancelled, no_show, expired. Every change of a
booking's time takes a lock on the provider's calendar first, so two
requests can never both get one slot; on PostgreSQL an exclusion constraint
refuses an overlap even then.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import secrets
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import (
    String,
    bindparam,
    cast,
    exists,
    func,
    insert,
    inspect,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from core import clock, events, ledger
from core.bookings.availability import check_slot
from core.bookings.models import (
    Booking,
    BookingCharge,
    BookingEvent,
    BookingStatus,
    ChargeKind,
    PolicyVersion,
)
from core.bookings.settings import booking_settings
from core.catalog import services as catalog
from core.catalog.models import Resource, Service, ServiceLocation, ServiceProvider
from core.clients import services as clients
from core.clients.models import Client
from core.errors import Problem
from core.extensions import db
from core.hooks.decisions import (
    BookingRequirements,
    Clause,
    DepositOutcome,
    Guarantee,
    LateArrivalOption,
)
from core.ledger import LedgerKind
from core.messaging import outbox, reminders
from core.messaging.models import OutboxMessage
from core.money import Money
from core.schedules.models import Provider, WorkingHours
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import require_clinic_ref
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction

REFUSALS = {
    "in_past": "That time has already passed.",
    "too_late": "It is too late to book that time online; please call the clinic.",
    "too_far": "That time is too far ahead to book online.",
    "outside_hours": "The provider does not work at that time and place.",
    "slot_taken": "That time is no longer available; please choose another.",
    "resource_taken": "The room or device this service needs is in use at that time.",
}


def refusal(reason: str) -> Problem:
    """Return the problem that refuses a time for ``reason`` (a key of REFUSALS)."""
    return Problem(409, REFUSALS[reason], kind=reason.replace("_", "-"), title="Time not available")


# --- decisions as records -------------------------------------------------------------


def as_record(value: Any) -> Any:
    """Return a decision (or any part of one) as JSON-ready data."""
    if isinstance(value, Money):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_record(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [as_record(v) for v in value]
    if isinstance(value, dict):
        return {k: as_record(v) for k, v in value.items()}
    return value


def policy_version(clauses: tuple[Clause, ...]) -> int:
    """Return the id of the stored version of this exact policy text, storing it the first time."""
    body = [{"id": c.id, "text": c.text, "source": c.source} for c in clauses]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    known_versions = current_app.extensions.setdefault("clinic_saas.policy_versions", {})
    known = known_versions.get((require_clinic_ref().id, digest))
    if known is not None:
        return known
    found = db.session.scalar(select(PolicyVersion).where(PolicyVersion.digest == digest))
    if found is None:
        found = PolicyVersion(digest=digest, clauses=body)
        try:
            with db.session.begin_nested():
                db.session.add(found)
        except IntegrityError:
            found = db.session.scalar(select(PolicyVersion).where(PolicyVersion.digest == digest))
    if len(known_versions) > 10_000:
        known_versions.clear()
    # Policy versions never change once stored: remember their ids for this app.
    known_versions[(require_clinic_ref().id, digest)] = found.id
    return found.id


def _event(
    booking: Booking,
    action: str,
    to_status: BookingStatus,
    *,
    actor: str,
    actor_user_id: int | None,
    decision: Any = None,
    details: dict[str, Any] | None = None,
    from_status: BookingStatus | None = None,
) -> BookingEvent:
    clause = getattr(decision, "clause", None)
    if from_status is None and action != "booked":
        from_status = booking.status
    event = BookingEvent(
        booking_id=booking.id,
        from_status=from_status.value if from_status else None,
        to_status=to_status.value,
        action=action,
        at=clock.now(),
        actor=actor,
        actor_user_id=actor_user_id,
        decision=as_record(decision) if decision is not None else None,
        clause_id=clause.id if clause else None,
        clause_text=clause.text if clause else None,
        policy_version_id=booking.policy_version_id,
        details=details or {},
    )
    booking.events.append(event)
    booking.status = to_status
    return event


def _owe(
    booking: Booking, kind: ChargeKind, amount: Money, clause: Clause | None, reference: str = ""
) -> BookingCharge | None:
    if not amount:
        return None
    charge = BookingCharge(
        booking_id=booking.id,
        kind=kind.value,
        reference=reference,
        amount_minor=amount.minor,
        currency=amount.currency,
        clause_id=clause.id if clause else None,
        clause_text=clause.text if clause else None,
    )
    booking.charges.append(charge)
    return charge


# --- locking the calendar ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProviderLock:
    """What booking learns about a provider as it locks their calendar."""

    takes_bookings: bool
    performs_service: bool
    #: Their working blocks (local start, local end) at the location on the day.
    hours: list[tuple[time, time]]


@functools.cache
def _lock_statement() -> Any:
    # Built once with bound parameters: building it anew took as long as running it.
    provider_id = bindparam("provider_id")
    hours = (
        select(
            func.aggregate_strings(
                cast(WorkingHours.starts, String) + "/" + cast(WorkingHours.ends, String), ","
            )
        )
        .where(
            WorkingHours.provider_id == provider_id,
            WorkingHours.location_id == bindparam("location_id"),
            WorkingHours.weekday == bindparam("weekday"),
        )
        .scalar_subquery()
    )
    return (
        update(Provider)
        .where(Provider.id == provider_id)
        .values(lock_version=Provider.lock_version + 1)
        .returning(
            Provider.active,
            exists().where(
                ServiceProvider.service_id == bindparam("service_id"),
                ServiceProvider.provider_id == provider_id,
            ),
            hours,
        )
        .execution_options(synchronize_session=False)
    )


def _lock_provider(
    provider_id: int, service_id: int, location: Location, starts_at: datetime
) -> ProviderLock:
    """Lock the provider's calendar and read what booking needs to know about them.

    An UPDATE takes the provider's row lock on PostgreSQL and the database
    write lock on SQLite; everything read after it is what the next request
    for this provider will see once we commit. Whether they perform the
    service and their hours that day come back with the lock, in the same
    round trip, since every query made under the lock delays the next
    request for this provider.
    """
    row = db.session.execute(
        _lock_statement(),
        {
            "provider_id": provider_id,
            "service_id": service_id,
            "location_id": location.id,
            "weekday": starts_at.astimezone(ZoneInfo(location.timezone)).weekday(),
        },
    ).first()
    if row is None:
        return ProviderLock(False, False, [])
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
        for charge in booking.charges:
            if charge.status == "owed":
                charge.status = "waived"
    db.session.flush()
    return len(lapsed)


# --- booking ---------------------------------------------------------------------------------


def policy_incidents(client_id: int) -> int:
    """Return how many late cancellations and no-shows the client has had here."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Booking)
            .where(Booking.client_id == client_id, Booking.policy_incident.is_(True))
        )
        or 0
    )


def guest_client(data: dict[str, Any]) -> Client:
    """Return the client booking online as a guest: the one on file with this email and birth date, or a new one."""
    existing = db.session.scalar(
        select(Client)
        .where(Client.email == data["email"], Client.date_of_birth == data["date_of_birth"])
        .order_by(Client.id)
        .limit(1)
    )
    if existing is not None:
        return existing
    return clients.create_client(data)


def _check_age(clinic: Clinic, client: Client) -> None:
    for gate in clients.age_gates(clinic, client):
        if gate.applies_to not in ("treatment", "premises") or gate.satisfied:
            continue
        if gate.requires == "refused":
            raise Problem(
                409,
                gate.clause.text,
                kind="age-refused",
                title="Not available at this age",
                clause=gate.clause.id,
            )
        raise Problem(
            409,
            f"A client under {gate.under} needs {gate.requires.replace('_', ' ')} on file before booking: {gate.clause.text}",
            kind="parental-consent-required",
            title="Parental consent required",
            clause=gate.clause.id,
        )


class BookingClient:
    """The client as policy hooks see them: the record, plus their history here.

    ``policy_incidents`` (late cancellations and no-shows) is counted only
    if a policy asks, since most never do.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @functools.cached_property
    def policy_incidents(self) -> int:
        return policy_incidents(self._client.id) if self._client.id else 0


def requirements_for(
    clinic: Clinic, service: Service, client: Client, starts_at: datetime
) -> BookingRequirements:
    """Ask the clinic's policy what a booking of ``service`` by ``client`` needs."""
    return hooks_for(clinic).clinic_booking_requirements(
        clinic=clinic, service=service, client=BookingClient(client), starts_at=starts_at
    )


def _needs_guarantee(requirements: BookingRequirements) -> bool:
    return bool(
        requirements.deposit or requirements.prepayment or requirements.guarantee != Guarantee.none
    )


@functools.cache
def _client_and_offering_statement() -> Any:
    # Built once with bound parameters, as every booking by staff runs it.
    return (
        select(Client, Service, Location)
        .select_from(Service)
        .join(ServiceLocation, ServiceLocation.service_id == Service.id)
        .join(Location, Location.id == ServiceLocation.location_id)
        .join(Client, Client.id == bindparam("client_id"))
        .where(Service.id == bindparam("service_id"), Location.id == bindparam("location_id"))
    )


def _client_and_offering(
    client: Client | int, service_id: int, location_id: int
) -> tuple[Client, Service, Location]:
    """Return the client, the service and the location offering it, or raise why not.

    A client named by id comes back with the other two in one query, since
    every booking by staff asks for all three; only when one is missing is
    each looked up alone, to say which.
    """
    if isinstance(client, Client):
        return (client, *catalog.offering(service_id, location_id))
    row = db.session.execute(
        _client_and_offering_statement(),
        {"client_id": client, "service_id": service_id, "location_id": location_id},
    ).first()
    if row is None:
        clients.client(client)  # no such client: 404
        catalog.not_offered(service_id)
    return row[0], row[1], row[2]


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
    client, service, location = _client_and_offering(client, service_id, location_id)
    if not service.active or (online and not service.online_bookable):
        raise Problem(409, "This service cannot be booked online.", kind="service-not-bookable")
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
        raise Problem(409, "That provider does not perform this service.", kind="not-offered-here")
    _check_age(clinic, client)
    requirements = requirements_for(clinic, service, client, starts_at)
    if requirements.refused:
        raise Problem(
            409,
            requirements.refusal_reason or "The clinic's policy does not allow this booking.",
            kind="booking-refused",
            clauses=[c.id for c in requirements.clauses],
        )

    chosen: int | None = None
    reason = "slot_taken"
    for candidate in candidates:
        lock = _lock_provider(candidate, service.id, location, starts_at)
        if not lock.performs_service and provider_id is not None:
            raise Problem(
                409, "That provider does not perform this service.", kind="not-offered-here"
            )
        if not lock.takes_bookings:
            continue
        check = check_slot(
            clinic,
            service,
            candidate,
            location,
            starts_at,
            online=online,
            now=now,
            hours=lock.hours,
        )
        expire_holds(now, booking_ids=check.lapsed_holds)
        if check.reason is None:
            chosen = candidate
            break
        reason = check.reason
    if chosen is None:
        raise refusal(reason)
    _lock_resource(service.resource_id)
    if service.resource_id is not None:
        check = check_slot(
            clinic, service, chosen, location, starts_at, online=online, now=now, hours=lock.hours
        )
        expire_holds(now, booking_ids=check.lapsed_holds)
        if check.reason is not None:
            raise refusal(check.reason)

    settings = booking_settings(clinic)
    held = _needs_guarantee(requirements)
    version_id = policy_version(requirements.clauses)
    booking = Booking(
        clinic_id=require_clinic_ref().id,
        client_id=client.id,
        service_id=service.id,
        provider_id=chosen,
        location_id=location.id,
        resource_id=service.resource_id,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=service.duration_minutes),
        blocks_until=starts_at
        + timedelta(minutes=service.duration_minutes + service.buffer_minutes),
        status=BookingStatus.held if held else BookingStatus.confirmed,
        hold_expires_at=now + timedelta(minutes=settings["hold_minutes"]) if held else None,
        source="online" if online else "staff",
        price_minor=service.price_minor,
        currency=service.currency,
        requirements=as_record(requirements),
        policy_version_id=version_id,
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
            _insert_together(booking, event, due)
        else:
            db.session.add(booking)
            db.session.flush()  # the event too: its booking_id comes from the relationship
            reminders.write(booking, due)
    except IntegrityError:
        # PostgreSQL's exclusion constraint: someone else took the time. The
        # transaction is spent; the whole request is refused and rolled back.
        db.session.rollback()
        raise refusal("slot_taken") from None
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
    if not held:
        events.announce("clinic_booking_confirmed", clinic=clinic, booking=booking)
    return booking


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


def _insert_together(booking: Booking, event: BookingEvent, due: list[dict[str, Any]]) -> None:
    """Insert a new booking, its first event and its reminders in one statement (PostgreSQL).

    Every statement made under the provider's lock delays the next request
    for that provider, and the unit of work would take three. The rows are
    written as the flush would write them, the clinic set as for any insert
    (row-level security refuses any other), and the objects then join the
    session as what the database now holds.
    """
    event.clinic_id = booking.clinic_id
    booking_row, event_row = _row(booking), _row(event)
    del event_row["booking_id"]
    params = {f"b_{k}": v for k, v in booking_row.items()}
    params.update({f"e_{k}": v for k, v in event_row.items()})
    for n, row in enumerate(due):
        before, _, after = reminders.dedupe_key(None, row, booking.starts_at)
        params.update({f"r{n}_before": before, f"r{n}_after": after})
        params.update({f"r{n}_{k}": v for k, v in row.items()})
    statement = _insert_together_statement(
        tuple(booking_row), tuple(event_row), tuple(due[0]) if due else (), len(due)
    )
    # On the session's connection, so in its transaction; a Core statement
    # through the session itself is refused by the clinic rules (it reads as
    # an unscoped query), while an INSERT's only rule is the clinic_id set above.
    event.id, booking.id = db.session.connection().execute(statement, params).one()
    event.booking_id = booking.id
    for obj in (event, booking):
        make_transient_to_detached(obj)
    db.session.add(booking)


@functools.lru_cache(maxsize=64)
def _insert_together_statement(
    booking_keys: tuple[str, ...],
    event_keys: tuple[str, ...],
    reminder_keys: tuple[str, ...],
    reminder_count: int,
) -> Any:
    # Built once for each shape, with bound parameters: building it anew
    # for every booking took as long as running it.
    booking_table, event_table = Booking.__table__, BookingEvent.__table__
    new = (
        insert(booking_table)
        .values({k: bindparam(f"b_{k}", type_=booking_table.c[k].type) for k in booking_keys})
        .returning(booking_table.c.id)
        .cte("new_booking")
    )
    statement = (
        insert(event_table)
        .from_select(
            ["booking_id", *event_keys],
            select(
                new.c.id, *(bindparam(f"e_{k}", type_=event_table.c[k].type) for k in event_keys)
            ),
        )
        .returning(event_table.c.id, event_table.c.booking_id)
    )
    if reminder_count:
        outbox = OutboxMessage.__table__
        rows = [
            select(
                new.c.id,
                bindparam(f"r{n}_before", type_=String)
                + cast(new.c.id, String)
                + bindparam(f"r{n}_after", type_=String),
                *(bindparam(f"r{n}_{k}", type_=outbox.c[k].type) for k in reminder_keys),
            )
            for n in range(reminder_count)
        ]
        written = insert(outbox).from_select(
            ["booking_id", "dedupe_key", *reminder_keys],
            union_all(*rows) if len(rows) > 1 else rows[0],
        )
        statement = statement.add_cte(written.cte("reminders"))
    return statement


def _confirmed(clinic: Clinic, booking: Booking) -> None:
    # book() does the same, writing the reminders with the booking.
    reminders.schedule(clinic, booking)
    events.announce("clinic_booking_confirmed", clinic=clinic, booking=booking)


def booking(booking_id: int) -> Booking:
    """Return booking ``booking_id`` of the current clinic, or raise 404."""
    found = db.session.get(Booking, booking_id)
    if found is None:
        raise Problem(404, "No such booking at this clinic.")
    return found


def bookings(
    *,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
    provider_id: int | None = None,
    client_id: int | None = None,
    status: BookingStatus | None = None,
    limit: int = 200,
) -> list[Booking]:
    """Return the current clinic's bookings matching the filters, by start time."""
    statement = select(Booking).order_by(Booking.starts_at, Booking.id).limit(limit)
    if starts_from is not None:
        statement = statement.where(Booking.starts_at >= starts_from)
    if starts_before is not None:
        statement = statement.where(Booking.starts_at < starts_before)
    if provider_id is not None:
        statement = statement.where(Booking.provider_id == provider_id)
    if client_id is not None:
        statement = statement.where(Booking.client_id == client_id)
    if status is not None:
        statement = statement.where(Booking.status == status)
    return list(db.session.scalars(statement))


def _require(booking: Booking, *allowed: BookingStatus) -> None:
    if booking.status not in allowed:
        raise Problem(
            409,
            f"A {booking.status.value} booking cannot do that.",
            kind="invalid-transition",
            status_now=booking.status.value,
        )


@transaction
def confirm(clinic: Clinic, booking: Booking, method: str, actor_user_id: int | None) -> Booking:
    """Confirm a held booking once its guarantee is in (card on file, gift certificate, payment)."""
    now = clock.now()
    if (
        booking.status == BookingStatus.held
        and booking.hold_expires_at
        and clock.as_utc(booking.hold_expires_at) <= now
    ):
        expire_holds(now, booking.provider_id)
    _require(booking, BookingStatus.held)
    needs = booking.requirements
    if method != "waived_by_staff":
        if needs.get("prepayment") and method != "prepaid":
            raise Problem(
                409,
                "This booking must be prepaid before it is confirmed.",
                kind="prepayment-required",
                clauses=[c["id"] for c in needs.get("clauses", [])],
            )
        if needs.get("deposit") and method not in ("deposit_paid", "prepaid"):
            raise Problem(
                409,
                "This booking needs its deposit before it is confirmed.",
                kind="deposit-required",
                clauses=[c["id"] for c in needs.get("clauses", [])],
            )
        if needs.get("guarantee") == Guarantee.card_on_file and method not in (
            "card_on_file",
            "deposit_paid",
            "prepaid",
        ):
            raise Problem(409, "This booking needs a card on file.", kind="guarantee-required")
    booking.guarantee_method = method
    booking.hold_expires_at = None
    _event(
        booking,
        "confirmed",
        BookingStatus.confirmed,
        actor="staff" if actor_user_id else "system",
        actor_user_id=actor_user_id,
        details={"guarantee": method},
    )
    db.session.flush()
    _confirmed(clinic, booking)
    return booking


def preview_cancellation(
    clinic: Clinic, booking: Booking, by: str, at: datetime | None = None
) -> Any:
    """Return what cancelling now would cost, without cancelling ("what happens if I cancel now?")."""
    _require(booking, BookingStatus.held, BookingStatus.confirmed)
    return hooks_for(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=at or clock.now(), by=by
    )


@transaction
def cancel(clinic: Clinic, booking: Booking, *, by: str, actor_user_id: int | None) -> Any:
    """Cancel a booking under the clinic's policy; record the fee owed and the deposit's fate."""
    _require(booking, BookingStatus.held, BookingStatus.confirmed)
    decision = preview_cancellation(clinic, booking, by)
    _event(
        booking,
        f"cancelled_by_{by}",
        BookingStatus.cancelled,
        actor=by,
        actor_user_id=actor_user_id,
        decision=decision,
    )
    _close(
        booking, decision, ChargeKind.late_cancellation_fee, decision.counts_as_late_cancellation
    )
    events.announce("clinic_booking_cancelled", clinic=clinic, booking=booking, decision=decision)
    return decision


def _close(booking: Booking, decision: Any, fee_kind: ChargeKind, incident: bool) -> None:
    """Apply what a cancellation or no-show decided: the incident, the fee, the deposit, the reminders."""
    booking.policy_incident = bool(incident)
    _owe(booking, fee_kind, decision.fee, decision.clause)
    _settle_deposit(booking, decision.deposit)
    reminders.withdraw(booking)
    what = "was cancelled" if booking.status == BookingStatus.cancelled else "was missed"
    tell_client(booking, f"Your appointment {what}", decision)
    db.session.flush()


#: What the client is told of their money, by what the policy decided for it.
DEPOSIT_TOLD = {
    DepositOutcome.kept: "The amount you paid ahead stays with this appointment.",
    DepositOutcome.moved: "The amount you paid ahead moves to your new time.",
    DepositOutcome.refunded: "The amount you paid ahead will be refunded to your card.",
    DepositOutcome.forfeited: "The amount you paid ahead is kept under the clinic's policy.",
    DepositOutcome.credited: "The amount you paid ahead becomes credit for future services.",
}


def tell_client(booking: Booking, subject: str, decision: Any) -> None:
    """Email the client what a policy decision means for them, in the clinic's own words."""
    lines = [f"{subject}: {booking.service.name} on {clock.as_utc(booking.starts_at):%Y-%m-%d}."]
    fee = getattr(decision, "fee", None)
    if fee:
        lines.append(f"A fee of {fee.format()} applies and is charged to the card on file.")
    told = DEPOSIT_TOLD.get(getattr(decision, "deposit", None))
    if told:
        lines.append(told)
    lines.append(f'Why: "{decision.clause.text}"')
    outbox.queue(
        "booking_notice",
        client_id=booking.client_id,
        booking_id=booking.id,
        dedupe_key=f"notice:{booking.id}:{len(booking.events)}",
        subject=subject,
        body=" ".join(lines),
        clause=decision.clause.id,
    )


def _settle_deposit(booking: Booking, outcome: DepositOutcome) -> None:
    # What happens to money already paid is the payments capability's to
    # carry out; here the booking records what the policy decided.
    for charge in booking.charges:
        if charge.kind in (ChargeKind.deposit, ChargeKind.prepayment) and charge.status == "owed":
            charge.status = "waived"
    booking.requirements = {**booking.requirements, "deposit_outcome": outcome.value}


@transaction
def reschedule(
    clinic: Clinic,
    booking: Booking,
    new_starts_at: datetime,
    *,
    by: str,
    actor_user_id: int | None,
    provider_id: int | None = None,
    online: bool,
    decision: Any = None,
) -> Any:
    """Move a booking to a new time under the clinic's policy; the booking keeps its identity."""
    _require(booking, BookingStatus.held, BookingStatus.confirmed)
    now = clock.now()
    new_starts_at = clock.as_utc(new_starts_at)
    decision = decision or hooks_for(clinic).clinic_reschedule_decision(
        clinic=clinic, booking=booking, new_starts_at=new_starts_at, at=now
    )
    if not decision.allowed:
        raise Problem(
            409,
            decision.refusal_reason or decision.clause.text,
            kind="reschedule-refused",
            clause=decision.clause.id,
        )
    service = db.session.get(Service, booking.service_id)
    target = provider_id or booking.provider_id
    location = db.session.get(Location, booking.location_id)
    lock = _lock_provider(target, service.id, location, new_starts_at)
    if not lock.performs_service:
        raise Problem(409, "That provider does not perform this service.", kind="not-offered-here")
    if not lock.takes_bookings:
        raise Problem(409, "That provider is not taking bookings.", kind="not-offered-here")
    check = check_slot(
        clinic,
        service,
        target,
        location,
        new_starts_at,
        online=online,
        now=now,
        exclude_booking_id=booking.id,
        hours=lock.hours,
    )
    expire_holds(now, booking_ids=check.lapsed_holds)
    if check.reason is not None:
        raise refusal(check.reason)
    old = booking.starts_at
    booking.provider_id = target
    booking.starts_at = new_starts_at
    booking.ends_at = new_starts_at + timedelta(minutes=service.duration_minutes)
    booking.blocks_until = booking.ends_at + timedelta(minutes=service.buffer_minutes)
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError:
        raise refusal("slot_taken") from None
    _event(
        booking,
        "rescheduled",
        booking.status,
        actor=by,
        actor_user_id=actor_user_id,
        decision=decision,
        details={"from": clock.as_utc(old).isoformat(), "to": new_starts_at.isoformat()},
    )
    if decision.counts_as_late_cancellation:
        booking.policy_incident = True
    _owe(
        booking,
        ChargeKind.late_cancellation_fee,
        decision.fee,
        decision.clause,
        reference=f"reschedule:{new_starts_at.isoformat()}",
    )
    booking.requirements = {**booking.requirements, "deposit_outcome": decision.deposit.value}
    _carry_deposit(booking, decision, old)
    if decision.fee or decision.deposit not in (DepositOutcome.none, DepositOutcome.kept):
        tell_client(booking, "Your appointment was moved", decision)
    reminders.withdraw(booking)
    if booking.status == BookingStatus.confirmed:
        reminders.schedule(clinic, booking)
    db.session.flush()
    return decision


def _carry_deposit(booking: Booking, decision: Any, old_starts_at: datetime) -> None:
    """Move a paid deposit to the new time, or forfeit it, as the policy decided; never charge again."""
    for charge in booking.charges:
        if (
            charge.kind not in (ChargeKind.deposit, ChargeKind.prepayment)
            or charge.status != "paid"
        ):
            continue
        moves = {
            "from": clock.as_utc(old_starts_at).isoformat(),
            "to": clock.as_utc(booking.starts_at).isoformat(),
            "purpose": charge.kind,
            "clause": decision.clause.id,
        }
        if decision.deposit == DepositOutcome.forfeited:
            charge.status = "forfeited"
            kind = LedgerKind.deposit_forfeited
        elif decision.deposit == DepositOutcome.moved:
            kind = LedgerKind.deposit_moved
        else:
            continue  # kept with the booking as it is: nothing moves
        ledger.record(
            kind, charge.amount, booking_id=booking.id, client_id=booking.client_id, **moves
        )


@transaction
def check_in(
    clinic: Clinic, booking: Booking, actor_user_id: int | None, arrived_at: datetime | None = None
) -> Any:
    """Check a client in; if late, return the policy's options instead of checking in."""
    _require(booking, BookingStatus.confirmed)
    arrived_at = arrived_at or clock.now()
    decision = hooks_for(clinic).clinic_late_arrival_decision(
        clinic=clinic, booking=booking, arrived_at=arrived_at
    )
    if decision.options == (LateArrivalOption.proceed,):
        _event(
            booking,
            "checked_in",
            BookingStatus.checked_in,
            actor="staff",
            actor_user_id=actor_user_id,
            decision=decision,
            details={"arrived_at": arrived_at.isoformat()},
        )
        db.session.flush()
    else:
        booking.requirements = {**booking.requirements, "late_arrival": as_record(decision)}
        db.session.flush()
    return decision


@transaction
def resolve_late_arrival(
    clinic: Clinic,
    booking: Booking,
    option: LateArrivalOption,
    actor_user_id: int | None,
    new_starts_at: datetime | None = None,
    arrived_at: datetime | None = None,
) -> Any:
    """Carry out the option a late client chose among those the policy offered."""
    _require(booking, BookingStatus.confirmed)
    arrived_at = arrived_at or clock.now()
    decision = hooks_for(clinic).clinic_late_arrival_decision(
        clinic=clinic, booking=booking, arrived_at=arrived_at
    )
    if option not in decision.options:
        raise Problem(
            409,
            f"The clinic's policy does not offer '{option.value}' now.",
            kind="option-not-offered",
            clause=decision.clause.id,
        )
    if option in (LateArrivalOption.proceed, LateArrivalOption.shorten_full_price):
        _event(
            booking,
            f"checked_in_{option.value}",
            BookingStatus.checked_in,
            actor="staff",
            actor_user_id=actor_user_id,
            decision=decision,
            details={"arrived_at": arrived_at.isoformat()},
        )
        db.session.flush()
        return decision
    if new_starts_at is None:
        raise Problem(
            422,
            "Give the new time to reschedule to.",
            errors=[
                {
                    "field": "new_starts_at",
                    "pointer": "#/new_starts_at",
                    "detail": "required to reschedule",
                    "location": "json",
                }
            ],
        )
    same_day = option == LateArrivalOption.reschedule_same_day_free
    if same_day:
        tz = db.session.get(Location, booking.location_id).timezone
        from zoneinfo import ZoneInfo

        if (
            clock.as_utc(new_starts_at).astimezone(ZoneInfo(tz)).date()
            != clock.as_utc(booking.starts_at).astimezone(ZoneInfo(tz)).date()
        ):
            raise Problem(
                409,
                "A free reschedule must be later the same day.",
                kind="option-not-offered",
                clause=decision.clause.id,
            )
    from core.hooks.decisions import RescheduleDecision

    fee = Money.zero(booking.currency) if same_day else decision.reschedule_fee
    as_reschedule = RescheduleDecision(
        clause=decision.clause,
        allowed=True,
        fee=fee,
        deposit=DepositOutcome.moved if booking.deposit_paid else DepositOutcome.none,
        counts_as_late_cancellation=not same_day,
    )
    return reschedule(
        clinic,
        booking,
        new_starts_at,
        by="staff",
        actor_user_id=actor_user_id,
        online=False,
        decision=as_reschedule,
    )


@transaction
def turn_away(
    clinic: Clinic,
    booking: Booking,
    reason: str,
    new_starts_at: datetime,
    actor_user_id: int | None,
) -> Any:
    """Reschedule a client the clinic cannot see as they came (children, pets), as its policy says."""
    _require(booking, BookingStatus.confirmed)
    decision = hooks_for(clinic).clinic_turned_away_decision(
        clinic=clinic, booking=booking, reason=reason
    )
    if decision is None:
        raise Problem(
            409,
            "This clinic's policy does not turn visits away; reschedule the booking instead.",
            kind="option-not-offered",
        )
    return reschedule(
        clinic,
        booking,
        new_starts_at,
        by="staff",
        actor_user_id=actor_user_id,
        online=False,
        decision=decision,
    )


@transaction
def complete(booking: Booking, actor_user_id: int | None) -> Booking:
    """Mark a checked-in booking's treatment done."""
    _require(booking, BookingStatus.checked_in)
    _event(
        booking, "completed", BookingStatus.completed, actor="staff", actor_user_id=actor_user_id
    )
    db.session.flush()
    return booking


@transaction
def mark_no_show(clinic: Clinic, booking: Booking, actor_user_id: int | None) -> Any:
    """Record that the client did not come, with the policy's fee and deposit outcome."""
    _require(booking, BookingStatus.confirmed)
    if clock.now() < clock.as_utc(booking.starts_at):
        raise Problem(
            409, "A booking cannot be a no-show before it starts.", kind="invalid-transition"
        )
    decision = hooks_for(clinic).clinic_no_show_decision(clinic=clinic, booking=booking)
    _event(
        booking,
        "no_show",
        BookingStatus.no_show,
        actor="staff",
        actor_user_id=actor_user_id,
        decision=decision,
    )
    _close(booking, decision, ChargeKind.no_show_fee, decision.counts_toward_prepayment)
    return decision
