"""Moving a booking to a new time, with the fee and the deposit's fate the policy decides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from core import clock, events, ledger
from core.bookings.availability import check_slot
from core.bookings.models import Booking, BookingStatus, ChargeKind, ChargeStatus
from core.bookings.services.notices import tell_client
from core.bookings.services.records import _event, _owe, _require
from core.bookings.services.slots import _lock_provider, expire_holds, refusal
from core.catalog.models import Service
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import DepositOutcome
from core.ledger import LedgerKind
from core.messaging import reminders
from core.tenancy.models import Clinic, Location
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


def preview_reschedule(clinic: Clinic, booking: Booking, new_starts_at: datetime) -> Any:
    """Say on what terms the booking could move to ``new_starts_at``, without moving it."""
    _require(booking, BookingStatus.held, BookingStatus.confirmed)
    return hooks_for(clinic).clinic_reschedule_decision(
        clinic=clinic, booking=booking, new_starts_at=clock.as_utc(new_starts_at), at=clock.now()
    )


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
    because: str | None = None,
) -> Any:
    """Move a booking to a new time under the clinic's policy; the booking keeps its identity.

    ``because`` names what moved it when it was not simply asked for (``late_arrival``,
    ``turned_away``): it is kept with the booking's event, for the clinic's reports.
    """
    _require(booking, BookingStatus.held, BookingStatus.confirmed)
    now = clock.now()
    new_starts_at = clock.as_utc(new_starts_at)
    decision = decision or hooks_for(clinic).clinic_reschedule_decision(
        clinic=clinic, booking=booking, new_starts_at=new_starts_at, at=now
    )
    if not decision.allowed:
        raise Refused(
            decision.refusal_reason or decision.clause.text,
            kind="reschedule-refused",
            clause=decision.clause.id,
        )
    service = db.session.get_one(Service, booking.service_id)
    target = provider_id or booking.provider_id
    location = db.session.get_one(Location, booking.location_id)
    lock = _lock_provider(target, service.id, location, new_starts_at)
    if not lock.performs_service:
        raise Refused("That provider does not perform this service.", kind="not-offered-here")
    if not lock.takes_bookings:
        raise Refused("That provider is not taking bookings.", kind="not-offered-here")
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
        details={
            "from": clock.as_utc(old).isoformat(),
            "to": new_starts_at.isoformat(),
            **({"because": because} if because else {}),
        },
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
    booking.note(deposit_outcome=decision.deposit)
    _carry_deposit(booking, decision, old)
    if decision.fee or decision.deposit not in (DepositOutcome.none, DepositOutcome.kept):
        tell_client(booking, "Your appointment was moved", decision)
    reminders.withdraw(booking)
    if booking.status == BookingStatus.confirmed:
        reminders.schedule(clinic, booking)
    events.publish("booking.rescheduled", booking, previous_starts_at=old)
    db.session.flush()
    return decision


def _carry_deposit(booking: Booking, decision: Any, old_starts_at: datetime) -> None:
    """Move a paid deposit to the new time, or forfeit it, as the policy decided; never charge again."""
    for charge in booking.charges:
        if (
            charge.kind not in (ChargeKind.deposit, ChargeKind.prepayment)
            or charge.status != ChargeStatus.paid
        ):
            continue
        moves = {
            "from": clock.as_utc(old_starts_at).isoformat(),
            "to": clock.as_utc(booking.starts_at).isoformat(),
            "purpose": charge.kind,
            "clause": decision.clause.id,
        }
        if decision.deposit == DepositOutcome.forfeited:
            charge.status = ChargeStatus.forfeited
            kind = LedgerKind.deposit_forfeited
        elif decision.deposit == DepositOutcome.moved:
            kind = LedgerKind.deposit_moved
        else:
            continue  # kept with the booking as it is: nothing moves
        ledger.record(
            kind, charge.amount, booking_id=booking.id, client_id=booking.client_id, **moves
        )
