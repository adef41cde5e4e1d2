"""Confirming a held booking once its guarantee is in, and completing a treated one."""

from __future__ import annotations

from core import clock, events
from core.bookings.models import Booking, BookingStatus
from core.bookings.services.records import _event, _require
from core.bookings.services.slots import expire_holds
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import Guarantee
from core.messaging import reminders
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


def _confirmed(clinic: Clinic, booking: Booking) -> None:
    # book() does the same, writing the reminders with the booking.
    reminders.schedule(clinic, booking)
    events.publish("booking.confirmed", booking)
    events.announce("clinic_booking_confirmed", clinic=clinic, booking=booking)


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
    needs = booking.needs
    if method != "waived_by_staff":
        if needs.prepayment and method != "prepaid":
            raise Refused(
                "This booking must be prepaid before it is confirmed.",
                kind="prepayment-required",
                clauses=[c.id for c in needs.clauses],
            )
        if needs.deposit and method not in ("deposit_paid", "prepaid"):
            raise Refused(
                "This booking needs its deposit before it is confirmed.",
                kind="deposit-required",
                clauses=[c.id for c in needs.clauses],
            )
        if needs.guarantee == Guarantee.card_on_file and method not in (
            "card_on_file",
            "deposit_paid",
            "prepaid",
        ):
            raise Refused("This booking needs a card on file.", kind="guarantee-required")
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


@transaction
def complete(booking: Booking, actor_user_id: int | None) -> Booking:
    """Mark a checked-in booking's treatment done."""
    _require(booking, BookingStatus.checked_in)
    _event(
        booking, "completed", BookingStatus.completed, actor="staff", actor_user_id=actor_user_id
    )
    db.session.flush()
    return booking
