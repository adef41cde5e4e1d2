"""Fees the clinic's policy made due: charged to the card on file, or approved by the client."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import stripe
from sqlalchemy import select

from core import clock
from core.bookings.models import Booking, BookingCharge, ChargeStatus
from core.clients.models import Client
from core.errors import NotFound, Refused
from core.extensions import db
from core.payments import charges, stripe_api
from core.payments.charges import ChargeOutcome
from core.payments.models import Payment, PaymentStatus
from core.payments.services.common import (
    FEES,
    _ask_client,
    _tell_clinic,
    charge_payment,
    for_stripe_js,
)
from core.payments.services.received import _apply_intent
from core.tenancy.models import Clinic
from core.unit_of_work import unit_of_work

log = logging.getLogger(__name__)


def charge_owed_fees(clinic: Clinic) -> int:
    """Charge every fee the clinic's bookings owe to the client's card on file; call in its scope.

    Each fee is charged with a key made of its booking and charge, and its
    row is committed before Stripe is called: a retry, or another worker,
    asks Stripe for the same charge again and gets the first answer.
    """
    with unit_of_work():
        owed = list(
            db.session.scalars(
                select(BookingCharge.id).where(
                    BookingCharge.kind.in_([k.value for k in FEES]),
                    BookingCharge.status == ChargeStatus.owed,
                )
            )
        )
    charged = 0
    for charge_id in owed:
        try:
            payment = charge_fee(clinic, charge_id)
        except stripe.StripeError:
            # One fee Stripe will not talk about must not hold up the others.
            log.exception("fee charge %s failed; retried next run", charge_id)
            continue
        charged += payment is not None and payment.status == PaymentStatus.succeeded
    return charged


def charge_fee(clinic: Clinic, charge_id: int) -> Payment | None:
    """Charge one fee off-session; on a card needing the client, send them a link; on a decline, tell the clinic.

    Three short units of work: what to charge, Stripe asked with none open, its answer recorded.
    """
    with unit_of_work():
        charge = db.session.get_one(BookingCharge, charge_id)
        payment, client = _fee_payment(clinic, charge)
    if payment is None or client is None:
        return payment  # answered already, or nothing to charge
    booking = db.session.get_one(Booking, charge.booking_id)
    if payment.stripe_payment_intent_id:
        # Stripe answered before (processing, or its webhook was lost): ask it, never charge again.
        intent = stripe_api.client().v1.payment_intents.retrieve(
            payment.stripe_payment_intent_id, options=stripe_api.on_account(payment.stripe_account)
        )
        read = charges.read_ahead(intent, payment.stripe_account)
        with stripe_api.fetched(read), unit_of_work():
            recorded(clinic, payment, intent)
        return payment
    result = charges.charge_saved_card(
        clinic,
        payment,
        client,
        {
            "clinic": clinic.slug,
            "booking_id": str(booking.id),
            "booking_charge_id": str(charge.id),
            "clause": charge.clause_id or "",
        },
    )
    with stripe_api.fetched(result.read), unit_of_work():
        if result.outcome == ChargeOutcome.accepted:
            recorded(clinic, payment, result.intent)
        elif result.outcome == ChargeOutcome.needs_authentication:
            _ask_client(clinic, booking, client, payment)
        elif result.outcome == ChargeOutcome.declined:
            charge.status = ChargeStatus.declined
            _tell_clinic(clinic, charge, f"the card was declined ({payment.last_error})")
        elif result.outcome == ChargeOutcome.refused:
            charge.status = ChargeStatus.declined
            _tell_clinic(clinic, charge, f"Stripe refused the charge ({payment.last_error})")
        # No answer: Stripe may or may not have charged; the same key next run gets its answer.
    return payment


def _fee_payment(clinic: Clinic, charge: BookingCharge) -> tuple[Payment | None, Client | None]:
    """The fee's payment and the client whose card to charge; no client when there is nothing to ask."""
    key = f"fee:{charge.booking_id}:{charge.kind}:{charge.id}"
    payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    if payment is not None and payment.status != PaymentStatus.pending:
        return payment, None  # answered already: paid, waiting for the client, or declined
    if (
        payment is not None
        and not payment.stripe_payment_intent_id
        and clock.as_utc(payment.created_at) < clock.now() - timedelta(hours=23)
    ):
        # Stripe keeps idempotency keys for 24 hours: past that, a retry could charge twice.
        payment.status = PaymentStatus.failed
        payment.last_error = "no answer from Stripe within a day; check the account before retrying"
        charge.status = ChargeStatus.declined
        _tell_clinic(clinic, charge, payment.last_error)
        return payment, None
    booking = db.session.get_one(Booking, charge.booking_id)
    client = db.session.get_one(Client, booking.client_id)
    if payment is not None and payment.stripe_payment_intent_id:
        return payment, client  # Stripe answered before: its answer is read, nothing charged
    if not (client.stripe_customer_id and client.stripe_payment_method_id):
        charge.status = ChargeStatus.no_card
        _tell_clinic(clinic, charge, "there is no card on file to charge")
        return None, None
    if payment is None:
        payment = charge_payment(charge, account=stripe_api.charging_account(clinic), key=key)
        db.session.add(payment)
    return payment, client


def recorded(clinic: Clinic, payment: Payment, intent: Any) -> None:
    """Apply Stripe's answer to a charge we asked for (the webhook would do it too, once)."""
    if intent.status == "requires_action":
        # localstripe answers so where Stripe raises authentication_required.
        payment.status = PaymentStatus.requires_action
        booking = db.session.get_one(Booking, payment.booking_id)
        _ask_client(clinic, booking, db.session.get_one(Client, booking.client_id), payment)
        return
    _apply_intent(clinic, payment, intent)


def payment_to_approve(clinic: Clinic, booking: Booking, payment_id: int) -> dict[str, Any]:
    """Return what Stripe.js needs for the client to approve a fee on their own card."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.booking_id != booking.id:
        raise NotFound("No such payment for this booking.")
    if payment.status != PaymentStatus.requires_action or not payment.stripe_payment_intent_id:
        raise Refused("This payment needs nothing from you.", kind="nothing-to-approve")
    intent = stripe_api.client().v1.payment_intents.retrieve(
        payment.stripe_payment_intent_id, options=stripe_api.on_account(payment.stripe_account)
    )
    return for_stripe_js(
        intent.client_secret,
        payment.stripe_account,
        amount=payment.amount.to_dict(),
        purpose=payment.purpose,
    )
