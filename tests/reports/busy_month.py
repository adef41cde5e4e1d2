"""A busy generated month at a clinic: bookings that go every way, and money of every kind in the ledger.

Bookings are made and moved through the real booking services on a travelling
clock; the money is written to the ledger as the payment and sales services
would write it (the reports read the ledger, whoever wrote it), at moments
spread over the month and a little outside it, so the edges of the span count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from sqlalchemy import select

from core import ledger
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeStatus
from core.extensions import db
from core.hooks.decisions import LateArrivalOption
from core.ledger import LedgerKind
from core.money import Money
from core.payments.models import Payment, PaymentStatus
from core.schedules.models import WorkingHours
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope

#: Kinds written with a booking, and with the purpose their entry names.
WITH_BOOKING: list[tuple[LedgerKind, str | None]] = [
    (LedgerKind.deposit_received, "deposit"),
    (LedgerKind.prepayment_received, "prepayment"),
    (LedgerKind.fee_charged, "no_show_fee"),
    (LedgerKind.fee_charged, "late_cancellation_fee"),
    (LedgerKind.deposit_forfeited, "deposit"),
    (LedgerKind.deposit_moved, "deposit"),
    (LedgerKind.deposit_applied, "deposit"),
    (LedgerKind.deposit_unapplied, "deposit"),
    (LedgerKind.refund, "deposit"),
    (LedgerKind.refund, "prepayment"),
    (LedgerKind.refund, "no_show_fee"),
    (LedgerKind.refund, "late_arrival_fee"),
    (LedgerKind.refund, "late_cancellation_fee"),
    (LedgerKind.refund, "membership"),  # a purpose the reports name "other"
    (LedgerKind.card_payment, None),
    (LedgerKind.gratuity, None),
    (LedgerKind.platform_fee, "deposit"),
    (LedgerKind.dispute_opened, None),
    (LedgerKind.dispute_lost, None),
    (LedgerKind.dispute_won, None),
]
#: Kinds written at the desk, with the account they move.
WITHOUT_BOOKING: list[tuple[LedgerKind, str | None, str | None]] = [
    (LedgerKind.gift_certificate_sold, None, "gift_certificate"),
    (LedgerKind.gift_certificate_redeemed, None, "gift_certificate"),
    (LedgerKind.store_credit_issued, None, "store_credit"),
    (LedgerKind.store_credit_used, None, "store_credit"),
    (LedgerKind.store_credit_expired, None, "store_credit"),
    (LedgerKind.package_sold, None, "package"),
    (LedgerKind.package_session_used, None, "package"),
    (LedgerKind.package_closed, None, "package"),
    (LedgerKind.refund, "sale", None),
    (LedgerKind.product_sold, None, None),
    (LedgerKind.product_returned, None, None),
    (LedgerKind.membership_payment, None, None),
    (LedgerKind.external_tender, None, None),
]


@dataclass
class Month:
    """What was generated: the bookings by outcome, so a test can check they all occurred."""

    outcomes: dict[str, int] = field(default_factory=dict)
    entries: int = 0


def local(zone: str, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(zone))


def generate(
    slug: str,
    *,
    year: int,
    month: int,
    service_id: int,
    provider_ids: list[int],
    seed: int,
    visits_per_day: int = 3,
) -> Month:
    """Fill clinic ``slug``'s ``month`` with bookings that end every way, and a ledger to match."""
    rng = random.Random(seed)
    made = Month()
    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
    assert clinic is not None
    zone = clinic.timezone
    first = date(year, month, 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    planned: list[tuple[int, str]] = []
    with clinic_scope(clinic):
        # Each provider is booked where they work.
        works_at = dict(
            db.session.execute(select(WorkingHours.provider_id, WorkingHours.location_id)).all()
        )
        with time_machine.travel(local(zone, first - timedelta(days=10), 8), tick=False):
            day = first
            while day <= last:
                for slot in range(visits_per_day):
                    provider = provider_ids[slot % len(provider_ids)]
                    guest = bookings.guest_client(
                        {
                            "legal_first_name": f"Guest{day.day}",
                            "legal_last_name": f"Slot{slot}",
                            "email": f"g{day.day}s{slot}-{seed}@example.com",
                            "date_of_birth": date(1990, 1, 1),
                        }
                    )
                    booking = bookings.book(
                        clinic,
                        client=guest,
                        service_id=service_id,
                        location_id=works_at[provider],
                        provider_id=provider,
                        starts_at=local(zone, day, 10 + 2 * slot),
                        online=rng.random() < 0.5,
                    )
                    assert booking.status == BookingStatus.confirmed
                    outcome = rng.choice(
                        [
                            "completed",
                            "completed",
                            "early",
                            "late",
                            "no_show",
                            "late_arrival",
                            "late_moved",
                            "kept",
                        ]
                    )
                    planned.append((booking.id, outcome))
                day += timedelta(days=1)
        for booking_id, outcome in planned:
            booking = db.session.get_one(Booking, booking_id)
            starts = booking.starts_at
            if outcome == "early":
                with time_machine.travel(starts - timedelta(days=5), tick=False):
                    bookings.cancel(clinic, booking, by="client", actor_user_id=None)
            elif outcome == "late":
                with time_machine.travel(starts - timedelta(hours=2), tick=False):
                    bookings.cancel(clinic, booking, by="client", actor_user_id=None)
            elif outcome == "no_show":
                with time_machine.travel(starts + timedelta(hours=1), tick=False):
                    bookings.mark_no_show(clinic, booking, actor_user_id=None)
            elif outcome == "late_moved":
                # Twenty minutes late, moved an hour on: the hour after is always free.
                arrived = starts + timedelta(minutes=20)
                with time_machine.travel(arrived, tick=False):
                    decision = bookings.check_in(clinic, booking, None, arrived_at=arrived)
                    option = next(o for o in decision.options if o.value.startswith("reschedule"))
                    bookings.resolve_late_arrival(
                        clinic,
                        booking,
                        option,
                        None,
                        new_starts_at=starts + timedelta(hours=1),
                        arrived_at=arrived,
                    )
            elif outcome in ("completed", "late_arrival"):
                arrived = starts + timedelta(minutes=20 if outcome == "late_arrival" else 0)
                with time_machine.travel(arrived, tick=False):
                    decision = bookings.check_in(clinic, booking, None, arrived_at=arrived)
                    if db.session.get_one(Booking, booking_id).status != BookingStatus.checked_in:
                        option = (
                            LateArrivalOption.shorten_full_price
                            if LateArrivalOption.shorten_full_price in decision.options
                            else decision.options[0]
                        )
                        bookings.resolve_late_arrival(
                            clinic, booking, option, None, arrived_at=arrived
                        )
                    if db.session.get_one(Booking, booking_id).status == BookingStatus.checked_in:
                        bookings.complete(booking, None)
            made.outcomes[outcome] = made.outcomes.get(outcome, 0) + 1
        _fee_outcomes(rng)
        made.entries = _ledger(rng, clinic, first, last, [b for b, _ in planned])
        db.session.commit()
    return made


def _fee_outcomes(rng: random.Random) -> None:
    """Give the fees owed every ending: waived, declined, paid at once, paid after a failure."""
    for charge in db.session.scalars(select(BookingCharge).order_by(BookingCharge.id)):
        if not charge.kind.endswith("_fee"):
            continue
        ending = rng.choice(["owed", "waived", "declined", "paid", "recovered"])
        if ending == "owed":
            continue
        charge.status = {
            "waived": ChargeStatus.waived,
            "declined": ChargeStatus.declined,
        }.get(ending, ChargeStatus.paid)
        if ending == "recovered":
            db.session.add(_payment(charge, PaymentStatus.failed, "first"))
        if ending in ("paid", "recovered"):
            db.session.add(_payment(charge, PaymentStatus.succeeded, "second"))
    db.session.flush()


def _payment(charge: BookingCharge, status: PaymentStatus, attempt: str) -> Payment:
    return Payment(
        booking_id=charge.booking_id,
        booking_charge_id=charge.id,
        purpose=charge.kind,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        status=status,
        stripe_account="acct_generated",
        idempotency_key=f"generated:{charge.id}:{attempt}",
    )


def _ledger(
    rng: random.Random, clinic: Clinic, first: date, last: date, booking_ids: list[int]
) -> int:
    """Write money of every kind at moments through the month, and a few just outside it."""
    span_start = local(clinic.timezone, first, 0)
    span_end = local(clinic.timezone, last + timedelta(days=1), 0)
    moments = [span_start, span_end - timedelta(seconds=1)]  # the span's own edges
    moments += [span_start - timedelta(seconds=1), span_end]  # just outside
    seconds = int((span_end - span_start).total_seconds())
    moments += [span_start + timedelta(seconds=rng.randrange(seconds)) for _ in range(160)]
    # Every kind at least once inside the month, then a random mix.
    plan: list[tuple[LedgerKind, str | None, bool, str | None]] = [
        (kind, purpose, True, None) for kind, purpose in WITH_BOOKING
    ] + [(kind, purpose, False, prefix) for kind, purpose, prefix in WITHOUT_BOOKING]
    for _ in range(len(moments) - len(plan)):
        if rng.random() < 0.6:
            plan.append((*rng.choice(WITH_BOOKING), True, None))
        else:
            kind, purpose, prefix = rng.choice(WITHOUT_BOOKING)
            plan.append((kind, purpose, False, prefix))
    moments = moments[4:] + moments[:4]  # the edges take random kinds
    written = 0
    for index, (moment, (kind, purpose, with_booking, prefix)) in enumerate(
        zip(moments, plan, strict=True)
    ):
        details: dict[str, Any] = {}
        booking_id = rng.choice(booking_ids) if with_booking else None
        account = f"{prefix}:{rng.randrange(1, 6)}" if prefix else None
        if purpose is not None:
            details["purpose"] = purpose
        entry = ledger.record(
            kind,
            Money(rng.randrange(500, 40_000), clinic.currency),
            booking_id=booking_id,
            account=account,
            reference=f"gen_{index}",
            **details,
        )
        entry.at = moment.astimezone(UTC)
        written += 1
    db.session.flush()
    return written
