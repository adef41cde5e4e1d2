"""Taking money through Stripe: online deposits, and applying Stripe's webhooks to the clinic.

A booking that owes a deposit gets a PaymentIntent on the clinic's connected
account; the browser pays it with Stripe.js, and only the signed webhook,
re-checked against Stripe, marks it paid and confirms the booking.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeKind
from core.clients.models import Client
from core.errors import Problem
from core.extensions import db
from core.payments import stripe_api
from core.payments.models import (
    FORWARD,
    LedgerEntry,
    LedgerKind,
    Payment,
    PaymentStatus,
    StripeEvent,
)
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope

log = logging.getLogger(__name__)

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
#: The amounts a client pays online before the appointment.
PAID_UP_FRONT = (ChargeKind.deposit, ChargeKind.prepayment)


def _customer(clinic: Clinic, client: Client) -> str:
    """Return the client's Stripe customer on the clinic's account, creating it once."""
    if client.stripe_customer_id:
        return client.stripe_customer_id
    customer = stripe_api.client().v1.customers.create(
        {
            "name": client.display_name,
            "email": client.email or "",
            "metadata": {"client_id": str(client.id)},
        },
        stripe_api.on(clinic, f"customer:{client.id}"),
    )
    client.stripe_customer_id = customer.id
    return customer.id


def deposit_payment(clinic: Clinic, booking: Booking) -> dict[str, Any]:
    """Return what Stripe.js needs to pay what the held booking owes up front.

    The same PaymentIntent on every call (its idempotency key is the
    booking's charge), so a double click or a retry never asks for a second
    deposit. The card is saved for later fees (``setup_future_usage``).
    """
    if booking.status != BookingStatus.held:
        raise Problem(409, "This booking is not waiting for a payment.", kind="nothing-to-pay")
    charge = next(
        (c for c in booking.charges if c.kind in PAID_UP_FRONT and c.status == "owed"), None
    )
    if charge is None:
        raise Problem(409, "This booking owes nothing up front.", kind="nothing-to-pay")
    account = stripe_api.account_of(clinic)
    key = f"{charge.kind}:{booking.id}:{charge.id}"
    payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    api = stripe_api.client()
    if payment is None:
        client = db.session.get(Client, booking.client_id)
        intent = api.v1.payment_intents.create(
            {
                "amount": charge.amount_minor,
                "currency": charge.currency.lower(),
                "customer": _customer(clinic, client),
                "setup_future_usage": "off_session",
                "metadata": {
                    "booking_id": str(booking.id),
                    "booking_charge_id": str(charge.id),
                    "clinic": clinic.slug,
                },
            },
            stripe_api.on(clinic, key),
        )
        payment = Payment(
            booking_id=booking.id,
            booking_charge_id=charge.id,
            purpose=charge.kind,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            stripe_account=account,
            stripe_payment_intent_id=intent.id,
            idempotency_key=key,
        )
        try:
            with db.session.begin_nested():
                db.session.add(payment)
        except IntegrityError:
            # Another request recorded it first; Stripe gave both the same intent.
            payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    else:
        intent = api.v1.payment_intents.retrieve(
            payment.stripe_payment_intent_id, options={"stripe_account": account}
        )
    return {
        "client_secret": intent.client_secret,
        "publishable_key": current_app.config.get("STRIPE_PUBLISHABLE_KEY"),
        "stripe_account": account,
        "amount": charge.amount.to_dict(),
        "purpose": charge.kind,
    }


# --- webhooks ----------------------------------------------------------------------------------


def verified_event(payload: bytes, signature: str) -> dict[str, Any]:
    """Return the event if Stripe signed this exact body within the last 300 seconds."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise Problem(503, "Stripe webhooks are not configured.", kind="payments-not-configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except (ValueError, stripe.SignatureVerificationError):
        raise Problem(400, "The event is not signed by Stripe.", kind="bad-signature") from None
    return event.to_dict()


def apply_event(event: dict[str, Any]) -> str:
    """Apply one Stripe event to the clinic whose account it came from, once; return what it did.

    The event id is recorded in the same transaction as its effect, so a
    repeated delivery does nothing; the object is fetched again from Stripe
    and moved only forward, so an event arriving late or out of order
    cannot undo a later one.
    """
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise Problem(400, "The event has no id or type.", kind="bad-event")
    account = event.get("account")
    clinic = (
        db.session.scalar(select(Clinic).where(Clinic.stripe_account_id == account))
        if account
        else None
    )
    if clinic is None:
        raise Problem(
            400, "The event's account is not a clinic of this platform.", kind="unknown-account"
        )
    obj = (event.get("data") or {}).get("object") or {}
    with clinic_scope(clinic):
        record = StripeEvent(
            event_id=event["id"], type=event.get("type", ""), object_id=obj.get("id"), outcome=""
        )
        try:
            with db.session.begin_nested():
                db.session.add(record)
        except IntegrityError:
            db.session.rollback()
            return "already applied"
        if event.get("type", "").startswith("payment_intent."):
            record.outcome = _sync_intent(clinic, obj.get("id"))
        else:
            record.outcome = "ignored"
        db.session.commit()
        return record.outcome


def _sync_intent(clinic: Clinic, intent_id: str | None) -> str:
    payment = db.session.scalar(
        select(Payment).where(Payment.stripe_payment_intent_id == intent_id)
    )
    if payment is None:
        return "not a payment of this clinic"
    intent = stripe_api.client().v1.payment_intents.retrieve(
        intent_id, options={"stripe_account": payment.stripe_account}
    )
    status = INTENT_STATUS.get(intent.status, PaymentStatus.pending)
    if intent.status == "requires_payment_method" and getattr(intent, "last_payment_error", None):
        status = PaymentStatus.failed
    if FORWARD[status] < FORWARD[payment.status] or status == payment.status:
        return f"unchanged ({payment.status.value})"
    payment.status = status
    if status == PaymentStatus.succeeded:
        _received(clinic, payment, intent.latest_charge)
    return status.value


def _received(clinic: Clinic, payment: Payment, stripe_charge: Any) -> None:
    """Record money received for a booking and confirm the booking it secured."""
    booking = db.session.get(Booking, payment.booking_id)
    charge = db.session.get(BookingCharge, payment.booking_charge_id)
    charge.status = "paid"
    db.session.add(
        LedgerEntry(
            kind=LedgerKind.deposit_received,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            booking_id=booking.id,
            client_id=booking.client_id,
            payment_id=payment.id,
            reference=stripe_charge
            if isinstance(stripe_charge, str)
            else payment.stripe_payment_intent_id,
            details={"purpose": payment.purpose},
        )
    )
    if booking.status == BookingStatus.held:
        method = "prepaid" if payment.purpose == ChargeKind.prepayment else "deposit_paid"
        bookings.confirm(clinic, booking, method, actor_user_id=None)
    else:
        # Paid after the hold lapsed: the money is recorded for the clinic to apply or refund.
        log.warning(
            "payment %s arrived for booking %s in status %s", payment.id, booking.id, booking.status
        )
