"""Money received: a PaymentIntent's state applied to its payment, once, as its purpose says."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import events, ledger
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeKind, ChargeStatus
from core.clients.models import Client
from core.errors import DomainError
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.payments import handlers, stripe_api
from core.payments.models import FORWARD, Payment, PaymentStatus
from core.payments.services.cards import keep_card
from core.payments.services.common import FEES, PAID_UP_FRONT, _tell_clinic, alert_clinic
from core.tenancy.models import Clinic

#: Stripe's PaymentIntent statuses, as the platform reads them.
INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.pending,
    "requires_confirmation": PaymentStatus.pending,
    "processing": PaymentStatus.pending,
    "requires_capture": PaymentStatus.pending,
    "requires_action": PaymentStatus.requires_action,
    "succeeded": PaymentStatus.succeeded,
    "canceled": PaymentStatus.canceled,
}


def _sync_intent(clinic: Clinic, intent_id: str | None) -> str:
    if not intent_id:
        return "no payment intent"
    payment = db.session.scalar(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    )
    intent = stripe_api.retrieve("payment_intents", intent_id, stripe_api.account_of(clinic))
    if payment is None:
        # A charge whose answer we never recorded (the worker died after Stripe
        # said yes): its row was written first, under the key in the metadata.
        key = intent.metadata.to_dict().get("payment_key") if intent.metadata else None
        payment = (
            db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
            if key
            else None
        )
        if payment is None or payment.stripe_payment_intent_id not in (None, intent_id):
            return "not a payment of this clinic"
        payment.stripe_payment_intent_id = intent_id
    return _apply_intent(clinic, payment, intent)


def _apply_intent(clinic: Clinic, payment: Payment, intent: Any) -> str:
    """Move the payment to the intent's state if that is forward; act on success once.

    The fee job, a webhook and reconciliation may all learn of one success at
    once: the row is locked and read again first, so only one records it.
    """
    db.session.flush()
    db.session.execute(
        select(Payment)
        .where(Payment.id == payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    status = INTENT_STATUS.get(intent.status, PaymentStatus.pending)
    if intent.status == "requires_payment_method" and getattr(intent, "last_payment_error", None):
        status = PaymentStatus.failed
    if FORWARD[status] < FORWARD[payment.status] or status == payment.status:
        return f"unchanged ({payment.status.value})"
    payment.status = status
    if status == PaymentStatus.succeeded:
        # Once per payment: the row is locked and the state only moves forward.
        events.publish("payment.succeeded", payment)
        events.announce("clinic_payment_received", clinic=clinic, payment=payment)
        _platform_fee(payment, intent)
    if payment.purpose == SALE:
        _sale_payment_moved(clinic, payment, status, intent)
        return status.value
    if status == PaymentStatus.failed and payment.purpose in FEES:
        charge = db.session.get_one(BookingCharge, payment.booking_charge_id)
        charge.status = ChargeStatus.declined
        error = getattr(intent, "last_payment_error", None)
        _tell_clinic(clinic, charge, f"the card was declined ({getattr(error, 'message', '')})")
    if status == PaymentStatus.succeeded:
        _received(clinic, payment, getattr(intent, "latest_charge", None))
        method = getattr(intent, "payment_method", None)
        if isinstance(method, str):
            client = db.session.get_one(
                Client, db.session.get_one(Booking, payment.booking_id).client_id
            )
            # The card just used is the one kept for fees the policy may make due.
            keep_card(clinic, client, method)
    return status.value


def _platform_fee(payment: Payment, intent: Any) -> None:
    """Record the platform's fee on a payment that succeeded, as the intent asked for it."""
    metadata = getattr(intent, "metadata", None)
    if metadata is not None and hasattr(metadata, "to_dict"):
        metadata = metadata.to_dict()
    fee = int((metadata or {}).get("platform_fee") or 0) if isinstance(metadata, dict) else 0
    if fee:
        ledger.record(
            LedgerKind.platform_fee,
            Money(fee, payment.currency),
            booking_id=payment.booking_id,
            payment_id=payment.id,
            reference=payment.stripe_payment_intent_id,
            purpose=payment.purpose,
        )


#: A card payment toward a bill at checkout (core.sales).
SALE = "sale"


def _sale_payment_moved(
    clinic: Clinic, payment: Payment, status: PaymentStatus, intent: Any
) -> None:
    # A bill is the sales capability's: it says what its card payment means (handlers).
    if status == PaymentStatus.succeeded:
        handlers.handler("sale_paid")(clinic, payment, getattr(intent, "latest_charge", None))
    elif status in (PaymentStatus.failed, PaymentStatus.canceled):
        handlers.handler("sale_failed")(payment)


LEDGER_KIND = {
    ChargeKind.deposit: LedgerKind.deposit_received,
    ChargeKind.prepayment: LedgerKind.prepayment_received,
}


def _received(clinic: Clinic, payment: Payment, stripe_charge: Any) -> None:
    """Record money received for a booking's charge; a payment up front confirms the booking."""
    booking = db.session.get_one(Booking, payment.booking_id)
    charge = db.session.get_one(BookingCharge, payment.booking_charge_id)
    charge.status = ChargeStatus.paid
    ledger.record(
        LEDGER_KIND.get(payment.purpose, LedgerKind.fee_charged),
        payment.amount,
        booking_id=booking.id,
        client_id=booking.client_id,
        payment_id=payment.id,
        reference=stripe_charge
        if isinstance(stripe_charge, str)
        else payment.stripe_payment_intent_id,
        purpose=payment.purpose,
        clause=charge.clause_id,
    )
    if payment.purpose not in PAID_UP_FRONT:
        return
    refused = None
    if booking.status == BookingStatus.held:
        method = "prepaid" if payment.purpose == ChargeKind.prepayment else "deposit_paid"
        try:
            with db.session.begin_nested():
                bookings.confirm(clinic, booking, method, actor_user_id=None)
        except DomainError as problem:
            refused = problem.detail  # e.g. the hold lapsed as the money arrived
    else:
        refused = f"the booking is {booking.status.value}"
    if refused:
        # The money is recorded either way; a person decides to apply or refund it.
        alert_clinic(
            clinic,
            f"payment-unapplied:{payment.id}",
            f"A payment of {payment.amount.format()} arrived for booking {booking.id}",
            f"It could not confirm the booking ({refused}). Apply it or refund it.",
        )
