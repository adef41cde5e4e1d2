"""Arrival: checking clients in, late arrivals, and visits the clinic turns away."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import clock
from core.bookings.models import Booking, BookingStatus
from core.bookings.services.records import _event, _require, as_record
from core.bookings.services.rescheduling import reschedule
from core.errors import Invalid, Refused
from core.extensions import db
from core.hooks.decisions import DepositOutcome, LateArrivalOption
from core.money import Money
from core.tenancy.models import Clinic, Location
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


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
        booking.note(late_arrival=as_record(decision))
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
        raise Refused(
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
        raise Invalid(
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
        tz = db.session.get_one(Location, booking.location_id).timezone
        from zoneinfo import ZoneInfo

        if (
            clock.as_utc(new_starts_at).astimezone(ZoneInfo(tz)).date()
            != clock.as_utc(booking.starts_at).astimezone(ZoneInfo(tz)).date()
        ):
            raise Refused(
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
        because="late_arrival",
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
        raise Refused(
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
        because="turned_away",
    )
