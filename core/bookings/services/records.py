"""Booking records: finding bookings, checking their state, writing their events and charges."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from core import clock
from core.bookings.models import (
    Booking,
    BookingCharge,
    BookingEvent,
    BookingStatus,
    ChargeKind,
    PolicyVersion,
)
from core.errors import NotFound, Refused
from core.extensions import db
from core.hooks.decisions import Clause
from core.money import Money
from core.tenancy.scope import require_clinic_ref


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


def booking(booking_id: int) -> Booking:
    """Return booking ``booking_id`` of the current clinic, or raise 404."""
    found = db.session.get(Booking, booking_id)
    if found is None:
        raise NotFound("No such booking at this clinic.")
    return found


def bookings(
    *,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
    provider_id: int | None = None,
    client_id: int | None = None,
    status: BookingStatus | None = None,
    limit: int = 200,
    after: tuple[datetime, int] | None = None,
) -> list[Booking]:
    """Return the current clinic's bookings matching the filters, by start time, then id.

    ``after`` is the (start, id) of the last booking of the page before.

    Each comes with its location (its times are shown in the location's zone) and
    its charges, joined in the page's one statement rather than read booking by
    booking (or in a second statement: for a page of bookings with a charge or
    none, the join costs less).
    """
    statement = (
        select(Booking)
        .options(joinedload(Booking.location), joinedload(Booking.charges))
        .order_by(Booking.starts_at, Booking.id)
        .limit(limit)
    )
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
    if after is not None:
        statement = statement.where(tuple_(Booking.starts_at, Booking.id) > tuple_(*after))
    return list(db.session.scalars(statement).unique())


def _require(booking: Booking, *allowed: BookingStatus) -> None:
    if booking.status not in allowed:
        raise Refused(
            f"A {booking.status.value} booking cannot do that.",
            kind="invalid-transition",
            status_now=booking.status.value,
        )
