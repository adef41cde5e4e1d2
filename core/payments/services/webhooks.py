"""Stripe's webhooks: verified, read again from Stripe, and applied to the clinic once."""

from __future__ import annotations

from typing import Any

import stripe
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.bookings.models import Booking
from core.errors import Unavailable, Unreadable
from core.extensions import db
from core.payments import charges, handlers, stripe_api
from core.payments.models import CardAgreement, Payment, PaymentStatus, StripeEvent
from core.payments.services.account import _account_updated
from core.payments.services.cards import _sync_setup
from core.payments.services.common import PAID_UP_FRONT
from core.payments.services.disputes import _sync_dispute
from core.payments.services.received import _sync_intent
from core.payments.services.refunds import _sync_refunds
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from core.unit_of_work import transaction, unit_of_work


def verified_event(payload: bytes, signature: str) -> dict[str, Any]:
    """Return the event if Stripe signed this exact body within the last 300 seconds."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise Unavailable("Stripe webhooks are not configured.", kind="payments-not-configured")
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=300)
    except stripe.SignatureVerificationError:
        raise Unreadable("The event is not signed by Stripe.", kind="bad-signature") from None
    except (ValueError, TypeError, AttributeError):
        # Signed, but not a JSON object (the SDK fails on lists and scalars).
        raise Unreadable("The event is not a JSON object.", kind="bad-event") from None
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
        raise Unreadable("The event has no id, type or object.", kind="bad-event")
    account = event.get("account")
    clinic = (
        db.session.scalar(select(Clinic).where(Clinic.stripe_account_id == account))
        if isinstance(account, str)
        else None
    )
    if clinic is None and isinstance(account, str):
        # An account the clinic has since replaced: its payments' refunds and disputes.
        # Few clinics ever replace theirs: the ones that have are read and checked here.
        clinic = next(
            (
                found
                for found in db.session.scalars(
                    select(Clinic).where(Clinic.former_stripe_accounts.is_not(None))
                )
                if account in (found.former_stripe_accounts or [])
            ),
            None,
        )
    if clinic is None:
        raise Unreadable(
            "The event's account is not a clinic of this platform.", kind="unknown-account"
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
        elif kind.startswith("charge.dispute.") and isinstance(obj.get("payment_intent"), str):
            # Disputed on the account the payment was made on, which the clinic may have changed.
            account = (
                db.session.scalar(
                    select(Payment.stripe_account).where(
                        Payment.stripe_payment_intent_id == obj["payment_intent"]
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
        found.update(charges.read_ahead(intent, account))  # the card recording will keep
    elif kind == "charge.refunded":
        read("charges", object_id)
    elif kind.startswith("charge.dispute."):
        read("disputes", object_id)  # as it stands now: its events may arrive in any order
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


def _sync_membership(clinic: Clinic, kind: str, obj: dict[str, Any]) -> str:
    return str(handlers.handler("membership_event")(clinic, kind, obj))


# --- the client back on the page after the card step --------------------------------------------


def check_card_step(clinic: Clinic, booking: Booking) -> list[str]:
    """Read the booking's unfinished deposit or saved card from Stripe and apply it, as its webhook would.

    Stripe.js brings the client back as soon as the card step ends; the
    webhook may come seconds later. Reading the intent then lets the page
    show the outcome at once. It is the webhook's own code, moving state only
    forward, so whichever comes second does nothing. If Stripe does not answer,
    the page shows the booking as it stands and the webhook confirms it later.
    """
    with unit_of_work():
        intents: list[tuple[str, str]] = [
            (intent_id, account)
            for intent_id, account in db.session.execute(
                select(Payment.stripe_payment_intent_id, Payment.stripe_account).where(
                    Payment.booking_id == booking.id,
                    Payment.purpose.in_([kind.value for kind in PAID_UP_FRONT]),
                    Payment.status.not_in([PaymentStatus.succeeded, PaymentStatus.canceled]),
                )
            )
            if intent_id
        ]
        setups: list[tuple[str, str]] = [
            (setup_id, account)
            for setup_id, account in db.session.execute(
                select(CardAgreement.stripe_setup_intent_id, CardAgreement.stripe_account).where(
                    CardAgreement.booking_id == booking.id,
                    CardAgreement.status != PaymentStatus.succeeded,
                )
            )
        ]
    found: dict[tuple[str, str], Any] = {}
    try:
        for resource, rows in (("payment_intents", intents), ("setup_intents", setups)):
            for object_id, account in rows:
                intent = stripe_api.retrieve(resource, object_id, account)
                found[(resource, object_id)] = intent
                found.update(charges.read_ahead(intent, account))
    except stripe.StripeError:
        return []
    if not found:
        return []
    with stripe_api.fetched(found):
        return _apply_card_step(clinic, [row[0] for row in intents], [row[0] for row in setups])


@transaction
def _apply_card_step(clinic: Clinic, intent_ids: list[str], setup_ids: list[str]) -> list[str]:
    return [_sync_intent(clinic, i) for i in intent_ids] + [
        _sync_setup(clinic, s) for s in setup_ids
    ]
