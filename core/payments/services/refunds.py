"""Refunds of card payments: each payment locked, and refunds made on Stripe recorded once."""

from __future__ import annotations

from sqlalchemy import select, update

from core import clock, events, ledger
from core.bookings.models import Booking
from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind
from core.money import Money
from core.payments import stripe_api
from core.payments.models import Payment
from core.tenancy.models import Clinic


def locked(payment_id: int) -> Payment:
    """Lock a payment's row (on SQLite, the database) and read it again.

    Whatever refunds it (a refund we make, Stripe's charge.refunded webhook)
    takes this first, so each sees the others' ledger entries and no refund
    is recorded twice.
    """
    db.session.flush()
    db.session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    return db.session.scalars(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).one()


def refunded_so_far(payment: Payment) -> int:
    return sum(
        e.amount_minor
        for e in db.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.kind == LedgerKind.refund, LedgerEntry.payment_id == payment.id
            )
        )
    )


def _sync_refunds(clinic: Clinic, charge_id: str | None) -> str:
    """Record refunds made outside the platform (the Stripe dashboard), never beyond what was paid."""
    if not charge_id:
        return "no charge"
    charge = stripe_api.retrieve("charges", charge_id, stripe_api.account_of(clinic))
    intent = getattr(charge, "payment_intent", None)
    intent_id = intent if isinstance(intent, str) or intent is None else intent.id
    if not intent_id:
        return "not a payment of this clinic"
    payment = db.session.scalar(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    )
    if payment is None:
        return "not a payment of this clinic"
    payment = locked(payment.id)
    missing = min(charge.amount_refunded, payment.amount_minor) - refunded_so_far(payment)
    if missing <= 0:
        return "unchanged (refunds recorded)"
    booking = db.session.get_one(Booking, payment.booking_id)
    ledger.record(
        LedgerKind.refund,
        Money(missing, payment.currency),
        booking_id=booking.id if booking else None,
        client_id=booking.client_id if booking else None,
        payment_id=payment.id,
        reference=charge_id,
        purpose=payment.purpose,
        outcome="refunded on Stripe",
    )
    events.publish("payment.refunded", payment, refunded=missing, refund_id=None)
    return f"refund of {missing} recorded"
