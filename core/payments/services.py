"""Taking money through Stripe: online deposits, and applying Stripe's webhooks to the clinic.

A booking that owes a deposit gets a PaymentIntent on the clinic's connected
account; the browser pays it with Stripe.js, and only the signed webhook,
re-checked against Stripe, marks it paid and confirms the booking.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, timedelta
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import clock, events, ledger
from core.bookings import links
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeKind
from core.clients.models import Client
from core.errors import Problem
from core.extensions import db
from core.hooks.decisions import Clause
from core.ledger import LedgerEntry, LedgerKind
from core.messaging import outbox
from core.money import Money
from core.payments import charges, handlers, stripe_api
from core.payments.charges import ChargeOutcome
from core.payments.models import (
    FORWARD,
    CardAgreement,
    Payment,
    PaymentStatus,
    StripeEvent,
)
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from core.unit_of_work import transaction, unit_of_work

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


@transaction
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
    account = stripe_api.charging_account(clinic)
    key = f"{charge.kind}:{booking.id}:{charge.id}"
    payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    api = stripe_api.client()
    if payment is None:
        client = db.session.get(Client, booking.client_id)
        intent = charges.start_payment(
            clinic,
            key,
            {
                "amount": charge.amount_minor,
                "currency": charge.currency.lower(),
                "customer": customer_for(clinic, client),
                "setup_future_usage": "off_session",
                "metadata": {
                    "payment_key": key,
                    "booking_id": str(booking.id),
                    "booking_charge_id": str(charge.id),
                    "clinic": clinic.slug,
                },
            },
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
            payment.stripe_payment_intent_id, options=stripe_api.on_account(account)
        )
    return for_stripe_js(
        intent.client_secret, account, amount=charge.amount.to_dict(), purpose=charge.kind
    )


# --- webhooks ----------------------------------------------------------------------------------


def verified_event(payload: bytes, signature: str) -> dict[str, Any]:
    """Return the event if Stripe signed this exact body within the last 300 seconds."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise Problem(503, "Stripe webhooks are not configured.", kind="payments-not-configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        raise Problem(400, "The event is not signed by Stripe.", kind="bad-signature") from None
    except (ValueError, TypeError, AttributeError):
        # Signed, but not a JSON object (the SDK fails on lists and scalars).
        raise Problem(400, "The event is not a JSON object.", kind="bad-event") from None
    return event.to_dict()


def apply_event(event: dict[str, Any]) -> str:
    """Apply one Stripe event to the clinic whose account it came from, once; return what it did.

    The event id is recorded in the same transaction as its effect, so a
    repeated delivery does nothing; the object is fetched again from Stripe
    and moved only forward, so an event arriving late or out of order
    cannot undo a later one.
    """
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if (
        not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(obj, dict)
        or not isinstance(obj.get("id"), str | None)
    ):
        raise Problem(400, "The event has no id, type or object.", kind="bad-event")
    account = event.get("account")
    clinic = (
        db.session.scalar(select(Clinic).where(Clinic.stripe_account_id == account))
        if isinstance(account, str)
        else None
    )
    if clinic is None:
        raise Problem(
            400, "The event's account is not a clinic of this platform.", kind="unknown-account"
        )
    kind = event["type"]
    with clinic_scope(clinic):
        applied = select(StripeEvent.id).where(StripeEvent.event_id == event["id"])
        if db.session.scalar(applied) is not None:
            return "already applied"
        # Read from Stripe first, with no transaction open; then record in a short one.
        with stripe_api.fetched(_read_for_event(clinic, kind, obj)):
            return _record_event(clinic, event, kind, obj)


def _read_for_event(clinic: Clinic, kind: str, obj: dict[str, Any]) -> dict[tuple[str, str], Any]:
    """Read from Stripe what applying this event will need, outside any transaction."""
    object_id = obj.get("id")
    account = clinic.stripe_account_id or ""
    with unit_of_work():  # a read only, ended before Stripe is asked: nothing is held meanwhile
        if kind.startswith("setup_intent.") and object_id:
            # The card's account is the one it was saved on, which the clinic may have changed.
            account = (
                db.session.scalar(
                    select(CardAgreement.stripe_account).where(
                        CardAgreement.stripe_setup_intent_id == object_id
                    )
                )
                or account
            )
    found: dict[tuple[str, str], Any] = {}

    def read(resource: str, read_id: Any) -> Any:
        if not isinstance(read_id, str):
            return None
        try:
            found[(resource, read_id)] = stripe_api.retrieve(resource, read_id, account)
        except stripe.InvalidRequestError:
            return None  # applying the event says what a missing object means
        return found[(resource, read_id)]

    if kind.startswith(("payment_intent.", "setup_intent.")):
        resource = "payment_intents" if kind.startswith("payment_intent.") else "setup_intents"
        intent = read(resource, object_id)
        read("payment_methods", getattr(intent, "payment_method", None))
    elif kind == "charge.refunded":
        read("charges", object_id)
    elif kind.startswith(("customer.subscription.", "invoice.")):
        subscription = object_id if kind.startswith("customer.subscription.") else None
        read("subscriptions", subscription or obj.get("subscription"))
        if kind == "invoice.payment_succeeded":
            read("invoices", object_id)
    return found


@transaction
def _record_event(clinic: Clinic, event: dict[str, Any], kind: str, obj: dict[str, Any]) -> str:
    """Record the event and apply its effect in one unit of work; a repeat does nothing."""
    record = StripeEvent(event_id=event["id"], type=kind, object_id=obj.get("id"), outcome="")
    try:
        with db.session.begin_nested():
            db.session.add(record)
    except IntegrityError:
        return "already applied"  # applied by another delivery meanwhile
    if kind.startswith("payment_intent."):
        record.outcome = _sync_intent(clinic, obj.get("id"))
    elif kind.startswith("setup_intent."):
        record.outcome = _sync_setup(clinic, obj.get("id"))
    elif kind == "charge.refunded":
        record.outcome = _sync_refunds(clinic, obj.get("id"))
    elif kind.startswith("charge.dispute."):
        record.outcome = _sync_dispute(clinic, obj)
    elif kind == "account.updated":
        record.outcome = _account_updated(clinic, obj, event.get("created"))
    elif kind.startswith(("customer.subscription.", "invoice.")):
        record.outcome = _sync_membership(clinic, kind, obj)
    else:
        record.outcome = "ignored"
    return record.outcome


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
        events.announce("clinic_payment_received", clinic=clinic, payment=payment)
    if payment.purpose == SALE:
        _sale_payment_moved(clinic, payment, status, intent)
        return status.value
    if status == PaymentStatus.failed and payment.purpose in FEES:
        charge = db.session.get(BookingCharge, payment.booking_charge_id)
        charge.status = "declined"
        error = getattr(intent, "last_payment_error", None)
        _tell_clinic(clinic, charge, f"the card was declined ({getattr(error, 'message', '')})")
    if status == PaymentStatus.succeeded:
        _received(clinic, payment, getattr(intent, "latest_charge", None))
        method = getattr(intent, "payment_method", None)
        if isinstance(method, str):
            client = db.session.get(Client, db.session.get(Booking, payment.booking_id).client_id)
            # The card just used is the one kept for fees the policy may make due.
            keep_card(clinic, client, method)
    return status.value


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
    booking = db.session.get(Booking, payment.booking_id)
    charge = db.session.get(BookingCharge, payment.booking_charge_id)
    charge.status = "paid"
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
        except Problem as problem:
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


# --- fees the policy made due ------------------------------------------------------------------

#: Charges taken off-session from the card on file when a policy decision makes them due.
FEES = (ChargeKind.late_cancellation_fee, ChargeKind.no_show_fee, ChargeKind.late_arrival_fee)


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
                    BookingCharge.status == "owed",
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
        charge = db.session.get(BookingCharge, charge_id)
        payment, client = _fee_payment(clinic, charge)
    if client is None:
        return payment  # answered already, or nothing to charge
    booking = db.session.get(Booking, charge.booking_id)
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
            charge.status = "declined"
            _tell_clinic(clinic, charge, f"the card was declined ({payment.last_error})")
        elif result.outcome == ChargeOutcome.refused:
            charge.status = "declined"
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
        charge.status = "declined"
        _tell_clinic(clinic, charge, payment.last_error)
        return payment, None
    booking = db.session.get(Booking, charge.booking_id)
    client = db.session.get(Client, booking.client_id)
    if payment is not None and payment.stripe_payment_intent_id:
        return payment, client  # Stripe answered before: its answer is read, nothing charged
    if not (client.stripe_customer_id and client.stripe_payment_method_id):
        charge.status = "no_card"
        _tell_clinic(clinic, charge, "there is no card on file to charge")
        return None, None
    if payment is None:
        payment = Payment(
            booking_id=booking.id,
            booking_charge_id=charge.id,
            purpose=charge.kind,
            amount_minor=charge.amount_minor,
            currency=charge.currency,
            stripe_account=stripe_api.charging_account(clinic),
            idempotency_key=key,
        )
        db.session.add(payment)
    return payment, client


def recorded(clinic: Clinic, payment: Payment, intent: Any) -> None:
    """Apply Stripe's answer to a charge we asked for (the webhook would do it too, once)."""
    if intent.status == "requires_action":
        # localstripe answers so where Stripe raises authentication_required.
        payment.status = PaymentStatus.requires_action
        booking = db.session.get(Booking, payment.booking_id)
        _ask_client(clinic, booking, db.session.get(Client, booking.client_id), payment)
        return
    _apply_intent(clinic, payment, intent)


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
    charge = db.session.get(BookingCharge, payment.booking_charge_id)
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


def payment_to_approve(clinic: Clinic, booking: Booking, payment_id: int) -> dict[str, Any]:
    """Return what Stripe.js needs for the client to approve a fee on their own card."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.booking_id != booking.id:
        raise Problem(404, "No such payment for this booking.")
    if payment.status != PaymentStatus.requires_action or not payment.stripe_payment_intent_id:
        raise Problem(409, "This payment needs nothing from you.", kind="nothing-to-approve")
    intent = stripe_api.client().v1.payment_intents.retrieve(
        payment.stripe_payment_intent_id, options=stripe_api.on_account(payment.stripe_account)
    )
    return for_stripe_js(
        intent.client_secret,
        payment.stripe_account,
        amount=payment.amount.to_dict(),
        purpose=payment.purpose,
    )


# --- disputes and the account ------------------------------------------------------------------

#: How a dispute's final status is recorded.
DISPUTE_CLOSED = {"won": LedgerKind.dispute_won, "lost": LedgerKind.dispute_lost}


def _sync_dispute(clinic: Clinic, dispute: dict[str, Any]) -> str:
    """Record a card dispute: the money withdrawn when opened, and how it ended, each once.

    Stripe may tell of the end before the start: whichever arrives first
    records the opening too, and the database refuses a second of either.
    """
    amount, currency = dispute.get("amount"), dispute.get("currency")
    if not isinstance(amount, int) or not isinstance(currency, str) or not dispute.get("id"):
        raise Problem(400, "The dispute has no id, amount or currency.", kind="bad-event")
    intent = dispute.get("payment_intent")
    payment = (
        db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent))
        if isinstance(intent, str)
        else None
    )
    money = Money(amount, currency.upper())
    found = {
        "booking_id": payment.booking_id if payment else None,
        "payment_id": payment.id if payment else None,
        "reference": dispute["id"],
        "charge": dispute.get("charge"),
        "reason": dispute.get("reason"),
    }
    done = []
    if _once(LedgerKind.dispute_opened, money, found):
        done.append("opened")
        alert_clinic(
            clinic,
            f"dispute:{dispute['id']}",
            f"A card payment of {money.format()} is disputed",
            f"The client's bank withdrew {money.format()} (reason: {dispute.get('reason')}). "
            "Send your evidence from the Stripe dashboard before its deadline.",
        )
    closed = DISPUTE_CLOSED.get(dispute.get("status", ""))
    if closed is not None and _once(closed, money, found):
        done.append(dispute["status"])
    return "dispute " + ", ".join(done) if done else "unchanged (dispute recorded)"


def _once(kind: LedgerKind, amount: Money, found: dict[str, Any]) -> bool:
    try:
        with db.session.begin_nested():
            ledger.record(
                kind,
                amount,
                booking_id=found["booking_id"],
                payment_id=found["payment_id"],
                reference=found["reference"],
                charge=found["charge"],
                reason=found["reason"],
            )
    except IntegrityError:
        return False
    return True


def _account_updated(clinic: Clinic, account: dict[str, Any], created: Any) -> str:
    """Remember whether Stripe lets the clinic take charges; an older event never wins."""
    at = clock.from_timestamp(created) if isinstance(created, int) else clock.now()
    if clinic.stripe_account_updated_at and clock.as_utc(clinic.stripe_account_updated_at) > at:
        return "unchanged (older than what is recorded)"
    enabled = account.get("charges_enabled")
    if not isinstance(enabled, bool):
        raise Problem(400, "The account has no charges_enabled.", kind="bad-event")
    clinic.stripe_charges_enabled = enabled
    clinic.stripe_account_updated_at = at
    if not enabled:
        alert_clinic(
            clinic,
            f"charges-disabled:{int(at.timestamp())}",
            "Stripe has paused payments on your account",
            "Online deposits, fees and card payments are refused until Stripe re-enables "
            "charges. Check the requirements in your Stripe dashboard.",
        )
    return "charges enabled" if enabled else "charges disabled"


def _sync_membership(clinic: Clinic, kind: str, obj: dict[str, Any]) -> str:
    return str(handlers.handler("membership_event")(clinic, kind, obj))


# --- deposits after a cancellation or no-show ----------------------------------------------------


def settle_deposits(clinic: Clinic) -> int:
    """Carry out what the policy decided for deposits of cancelled and missed bookings.

    ``refunded``: returned to the card it came from, under a key made of the
    charge, never more than was paid. ``forfeited``: kept, and recorded as the
    clinic's. The charge's status records that it is settled, so each is
    done once.
    """
    with unit_of_work():
        paid = list(
            db.session.scalars(
                select(BookingCharge)
                .join(Booking, Booking.id == BookingCharge.booking_id)
                .where(
                    BookingCharge.kind.in_([k.value for k in PAID_UP_FRONT]),
                    BookingCharge.status == "paid",
                    Booking.status.in_([BookingStatus.cancelled, BookingStatus.no_show]),
                )
            )
        )
    settled = 0
    for charge in paid:
        try:
            settled += _settle_deposit(clinic, charge)
        except stripe.StripeError:
            log.exception("refund of deposit %s failed; retried next run", charge.id)
    return settled


@transaction
def _settle_deposit(clinic: Clinic, charge: BookingCharge) -> bool:
    """Settle one deposit as the policy decided; False when there was nothing to do."""
    # Claimed under its row's lock (the database's on SQLite): a second run at the same
    # time finds it settled and leaves it.
    claimed = db.session.execute(
        update(BookingCharge)
        .where(BookingCharge.id == charge.id, BookingCharge.status == "paid")
        .values(status="paid")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(charge)
    if not claimed or charge.status != "paid":
        return False
    booking = db.session.get(Booking, charge.booking_id)
    outcome = (booking.requirements or {}).get("deposit_outcome")
    if outcome == "refunded":
        _refund(clinic, booking, charge)
    elif outcome == "forfeited":
        charge.status = "forfeited"
        _ledger(LedgerKind.deposit_forfeited, booking, charge, None, outcome)
    elif outcome == "credited":
        _credit(clinic, booking, charge)
    else:
        return False  # kept, moved or credited: nothing leaves the booking here
    return True


def _credit(clinic: Clinic, booking: Booking, charge: BookingCharge) -> None:
    """Turn money paid up front into store credit for future services, as the policy decided."""
    charge.status = "credited"
    event = booking.events[-1] if booking.events else None
    clause = Clause(
        (event.clause_id if event else None) or "policy", (event.clause_text if event else "") or ""
    )
    handlers.handler("issue_store_credit")(
        clinic,
        booking.client_id,
        charge.amount,
        reason=f"{charge.kind}_credited",
        clause=clause,
        source=f"booking_charge:{charge.id}",
    )


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
    return db.session.scalar(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    )


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
    booking = db.session.get(Booking, payment.booking_id)
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
    return f"refund of {missing} recorded"


def _refund(clinic: Clinic, booking: Booking, charge: BookingCharge) -> None:
    payment = db.session.scalar(
        select(Payment).where(
            Payment.booking_charge_id == charge.id, Payment.status == PaymentStatus.succeeded
        )
    )
    if payment is None:
        charge.status = "refund_due"
        alert_clinic(
            clinic,
            f"refund-due:{charge.id}",
            f"Refund {charge.amount.format()} to the client of booking {booking.id}",
            "The policy refunds this deposit, which was not paid online: refund it by hand.",
        )
        return
    payment = locked(payment.id)
    amount = min(charge.amount_minor, payment.amount_minor - refunded_so_far(payment))
    if amount > 0:
        refund = stripe_api.client().v1.refunds.create(
            {"payment_intent": payment.stripe_payment_intent_id, "amount": amount},
            stripe_api.on(clinic, f"refund:{charge.id}"),
        )
        _ledger(LedgerKind.refund, booking, charge, payment, "refunded", amount, refund.id)
    charge.status = "refunded"


def _ledger(
    kind: LedgerKind,
    booking: Booking,
    charge: BookingCharge,
    payment: Payment | None,
    outcome: str,
    amount: int | None = None,
    reference: str | None = None,
) -> None:
    ledger.record(
        kind,
        Money(charge.amount_minor if amount is None else amount, charge.currency),
        booking_id=booking.id,
        client_id=booking.client_id,
        payment_id=payment.id if payment else None,
        reference=reference,
        purpose=charge.kind,
        outcome=outcome,
    )


# --- reconciliation --------------------------------------------------------------------------------


@dataclasses.dataclass
class Reconciliation:
    """What comparing the clinic's ledger with its Stripe account found, and what it mended."""

    differences: list[str] = dataclasses.field(default_factory=list)
    healed: list[str] = dataclasses.field(default_factory=list)


@transaction
def reconcile(clinic: Clinic) -> Reconciliation:
    """Compare the clinic's payments and ledger with its Stripe account; call in its scope.

    A payment Stripe took that the platform never recorded (its worker died
    and its webhook was lost) is applied now, as the webhook would have.
    Anything else that disagrees is listed for a person to look at.
    """
    report = Reconciliation()
    account = stripe_api.account_of(clinic)
    payments = list(db.session.scalars(select(Payment)))
    by_intent = {p.stripe_payment_intent_id: p for p in payments if p.stripe_payment_intent_id}
    by_key = {p.idempotency_key: p for p in payments}
    seen = set()
    listing = stripe_api.client().v1.payment_intents.list(
        {"limit": 100}, stripe_api.on_account(account)
    )
    for intent in listing.auto_paging_iter():
        metadata = intent.metadata.to_dict() if intent.metadata else {}
        payment = by_intent.get(intent.id) or by_key.get(metadata.get("payment_key", ""))
        if payment is None:
            if intent.status == "succeeded":
                report.differences.append(
                    f"Stripe took {intent.amount} {intent.currency.upper()} ({intent.id}) "
                    "that the platform has no record of"
                )
            continue
        seen.add(payment.id)
        if payment.stripe_payment_intent_id is None:
            payment.stripe_payment_intent_id = intent.id
        before = payment.status
        outcome = _apply_intent(clinic, payment, intent)
        if payment.status != before:
            report.healed.append(f"payment {payment.id} ({payment.purpose}): {outcome}")
        elif intent.status != "succeeded" and payment.status == PaymentStatus.succeeded:
            report.differences.append(
                f"payment {payment.id} is recorded as paid but Stripe says {intent.status}"
            )
    received = {
        e.payment_id
        for e in db.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.kind.in_(
                    [
                        LedgerKind.deposit_received,
                        LedgerKind.prepayment_received,
                        LedgerKind.fee_charged,
                        LedgerKind.card_payment,
                    ]
                )
            )
        )
    }
    for payment in payments:
        if payment.status == PaymentStatus.succeeded and payment.id not in received:
            report.differences.append(f"payment {payment.id} succeeded but is not in the ledger")
        if payment.stripe_payment_intent_id and payment.id not in seen:
            report.differences.append(
                f"payment {payment.id} ({payment.stripe_payment_intent_id}) is not on the Stripe account"
            )
    return report


# --- a card on file without a deposit --------------------------------------------------------------

#: Guarantees a saved card satisfies.
CARD_GUARANTEES = ("card_on_file", "card_or_gift_certificate")


@transaction
def card_setup(clinic: Clinic, booking: Booking) -> dict[str, Any]:
    """Return what Stripe.js needs to save the client's card for the booking's guarantee.

    The client agrees to the clinic's policy by doing so: the agreement is
    recorded with the policy version the booking carries and the time.
    """
    requirements = booking.requirements or {}
    client = db.session.get(Client, booking.client_id)
    replacing = booking.status == BookingStatus.confirmed and card_expires_before(client, booking)
    if not replacing and (
        booking.status != BookingStatus.held or requirements.get("guarantee") not in CARD_GUARANTEES
    ):
        raise Problem(409, "This booking does not need a card on file.", kind="nothing-to-pay")
    account = stripe_api.charging_account(clinic)
    # One setup per card being replaced: a new card after this one expires is a new setup.
    key = f"card:{booking.id}:{client.stripe_payment_method_id or 'first'}"
    agreement = db.session.scalar(select(CardAgreement).where(CardAgreement.idempotency_key == key))
    api = stripe_api.client()
    if agreement is None:
        setup = api.v1.setup_intents.create(
            {
                "customer": customer_for(clinic, client),
                "usage": "off_session",
                "metadata": {"booking_id": str(booking.id), "clinic": clinic.slug, "card_key": key},
            },
            stripe_api.on(clinic, key),
        )
        agreement = CardAgreement(
            booking_id=booking.id,
            client_id=client.id,
            policy_version_id=booking.policy_version_id,
            agreed_at=clock.now(),
            stripe_account=account,
            stripe_setup_intent_id=setup.id,
            idempotency_key=key,
        )
        try:
            with db.session.begin_nested():
                db.session.add(agreement)
        except IntegrityError:
            pass  # a second click recorded it first; Stripe gave both the same setup
    else:
        setup = api.v1.setup_intents.retrieve(
            agreement.stripe_setup_intent_id, options=stripe_api.on_account(account)
        )
    return for_stripe_js(setup.client_secret, account, policy_version_id=booking.policy_version_id)


SETUP_STATUS = {
    "succeeded": PaymentStatus.succeeded,
    "requires_action": PaymentStatus.requires_action,
    "canceled": PaymentStatus.canceled,
}


def _sync_setup(clinic: Clinic, setup_id: str | None) -> str:
    agreement = db.session.scalar(
        select(CardAgreement).where(CardAgreement.stripe_setup_intent_id == setup_id)
    )
    if agreement is None:
        return "not a card of this clinic"
    setup = stripe_api.retrieve("setup_intents", setup_id, agreement.stripe_account)
    status = SETUP_STATUS.get(setup.status, PaymentStatus.pending)
    if FORWARD[status] < FORWARD[agreement.status] or status == agreement.status:
        return f"unchanged ({agreement.status.value})"
    agreement.status = status
    if status == PaymentStatus.succeeded:
        keep_card(clinic, db.session.get(Client, agreement.client_id), setup.payment_method)
        booking = db.session.get(Booking, agreement.booking_id)
        if booking.status == BookingStatus.held:
            bookings.confirm(clinic, booking, "card_on_file", actor_user_id=None)
    return status.value


# --- cards that will expire before the appointment ------------------------------------------------


def keep_card(clinic: Clinic, client: Client, method_id: str) -> None:
    """Keep ``method_id`` as the client's card on file, with the month it expires."""
    client.stripe_payment_method_id = method_id
    method = stripe_api.retrieve("payment_methods", method_id, stripe_api.account_of(clinic))
    card = getattr(method, "card", None)
    if card is not None and card.exp_year and card.exp_month:
        # A card is good through the last day of its expiry month.
        first_of_next = date(card.exp_year + card.exp_month // 12, card.exp_month % 12 + 1, 1)
        client.card_expires_on = first_of_next - timedelta(days=1)


def card_expires_before(client: Client, booking: Booking) -> bool:
    """Return whether the client's card on file will have expired by the appointment."""
    if not client.stripe_payment_method_id or client.card_expires_on is None:
        return False
    return client.card_expires_on < clock.as_utc(booking.starts_at).date()


@transaction
def flag_expiring_cards(clinic: Clinic) -> int:
    """Ask clients whose saved card expires before their appointment to save a new one, once.

    A declined no-show fee is clinics' most common complaint about booking
    platforms; asking ahead, while the client is still coming, avoids it.
    """
    asked = 0
    upcoming = db.session.execute(
        select(Booking, Client)
        .join(Client, Client.id == Booking.client_id)
        .where(
            Booking.status == BookingStatus.confirmed,
            Booking.starts_at > clock.now(),
            Client.card_expires_on.is_not(None),
        )
    ).all()
    for booking, client in upcoming:
        if not card_expires_before(client, booking):
            continue
        key = f"card-expiring:{booking.id}:{client.stripe_payment_method_id}"
        if outbox.is_queued(key):
            continue
        token = links.token_for(booking)
        outbox.queue(
            "payment_request",
            client_id=client.id,
            booking_id=booking.id,
            dedupe_key=key,
            subject=f"Please update your card for your appointment at {clinic.name}",
            body=f"The card {clinic.name} holds for your appointment expires on "
            f"{client.card_expires_on.isoformat()}, before the appointment. Save a new "
            f"one here: /api/v1/clinics/{clinic.slug}/self-service/{token}/card-setup",
        )
        asked += 1
    return asked
