"""Cancellations and no-shows: the fee, the deposit's fate and the incident, as policy decides."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import clock, events
from core.bookings.models import Booking, BookingStatus, ChargeKind, ChargeStatus
from core.bookings.services.notices import tell_client
from core.bookings.services.records import _event, _owe, _require
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import DepositOutcome
from core.messaging import reminders
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


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
    events.publish("booking.cancelled", booking, cancelled_by=by)
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


def _settle_deposit(booking: Booking, outcome: DepositOutcome) -> None:
    # What happens to money already paid is the payments capability's to
    # carry out; here the booking records what the policy decided.
    for charge in booking.charges:
        if (
            charge.kind in (ChargeKind.deposit, ChargeKind.prepayment)
            and charge.status == ChargeStatus.owed
        ):
            charge.status = ChargeStatus.waived
    booking.note(deposit_outcome=outcome)


@transaction
def mark_no_show(clinic: Clinic, booking: Booking, actor_user_id: int | None) -> Any:
    """Record that the client did not come, with the policy's fee and deposit outcome."""
    _require(booking, BookingStatus.confirmed)
    if clock.now() < clock.as_utc(booking.starts_at):
        raise Refused("A booking cannot be a no-show before it starts.", kind="invalid-transition")
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
    events.publish("booking.no_show", booking)
    return decision
