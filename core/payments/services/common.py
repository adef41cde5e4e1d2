"""What the payments topics share: up-front and fee kinds, Stripe.js details, money notices."""

from __future__ import annotations

from typing import Any

from flask import current_app

from core.bookings import links
from core.bookings.models import Booking, BookingCharge, ChargeKind
from core.clients.models import Client
from core.extensions import db
from core.messaging import outbox
from core.payments import stripe_api
from core.payments.models import Payment
from core.tenancy.models import Clinic

#: The amounts a client pays online before the appointment.
PAID_UP_FRONT = (ChargeKind.deposit, ChargeKind.prepayment)


def customer_for(clinic: Clinic, client: Client) -> str:
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


def for_stripe_js(client_secret: str, account: str, **details: Any) -> dict[str, Any]:
    """Return what the browser's Stripe.js needs to act on an intent on the clinic's account."""
    return {
        "client_secret": client_secret,
        "publishable_key": current_app.config.get("STRIPE_PUBLISHABLE_KEY"),
        "stripe_account": account,
        **details,
    }


#: Charges taken off-session from the card on file when a policy decision makes them due.
FEES = (ChargeKind.late_cancellation_fee, ChargeKind.no_show_fee, ChargeKind.late_arrival_fee)


def alert_clinic(clinic: Clinic, key: str, subject: str, body: str) -> None:
    """Email the clinic about money that needs a person, once per ``key``."""
    outbox.queue("staff_alert", dedupe_key=key, to=clinic.contact_email, subject=subject, body=body)


def _tell_clinic(clinic: Clinic, charge: BookingCharge, why: str) -> None:
    alert_clinic(
        clinic,
        f"fee-unpaid:{charge.id}",
        f"A fee of {charge.amount.format()} is still owed (booking {charge.booking_id})",
        f"The {charge.kind.replace('_', ' ')} could not be charged: {why}. "
        f"It is still owed ({charge.clause_text or charge.clause_id or ''}).",
    )


def _ask_client(clinic: Clinic, booking: Booking, client: Client, payment: Payment) -> None:
    """Send the client a link to pay a fee their bank wants them to approve themselves."""
    token = links.token_for(booking)
    charge = db.session.get_one(BookingCharge, payment.booking_charge_id)
    outbox.queue(
        "payment_request",
        client_id=client.id,
        booking_id=booking.id,
        dedupe_key=f"fee-approval:{payment.id}",
        subject=f"Please approve a payment to {clinic.name}",
        body=f"Your bank asks you to approve the {charge.kind.replace('_', ' ')} of "
        f"{charge.amount.format()} ({charge.clause_text or ''}). Approve it here: "
        f"/api/v1/clinics/{clinic.slug}/self-service/{token}/payments/{payment.id}",
    )


def charge_payment(
    charge: BookingCharge, *, account: str, key: str, intent_id: str | None = None
) -> Payment:
    """A new payment of one booking charge (a deposit, a prepayment, a fee), under its key."""
    return Payment(
        booking_id=charge.booking_id,
        booking_charge_id=charge.id,
        purpose=charge.kind,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        stripe_account=account,
        stripe_payment_intent_id=intent_id,
        idempotency_key=key,
    )
