"""Cards on file: saving one for a booking's guarantee, keeping it, and asking before it expires."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import clock
from core.bookings import links
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingStatus
from core.clients.models import Client
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import Guarantee
from core.messaging import outbox
from core.payments import stripe_api
from core.payments.models import FORWARD, CardAgreement, PaymentStatus
from core.payments.services.common import customer_for, for_stripe_js
from core.tenancy.models import Clinic
from core.unit_of_work import transaction

#: Guarantees a saved card satisfies.
CARD_GUARANTEES = (Guarantee.card_on_file, Guarantee.card_or_gift_certificate)


@transaction
def card_setup(clinic: Clinic, booking: Booking) -> dict[str, Any]:
    """Return what Stripe.js needs to save the client's card for the booking's guarantee.

    The client agrees to the clinic's policy by doing so: the agreement is
    recorded with the policy version the booking carries and the time.
    """
    client = db.session.get_one(Client, booking.client_id)
    replacing = booking.status == BookingStatus.confirmed and card_expires_before(client, booking)
    if not replacing and (
        booking.status != BookingStatus.held or booking.needs.guarantee not in CARD_GUARANTEES
    ):
        raise Refused("This booking does not need a card on file.", kind="nothing-to-pay")
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
    # Locked: the webhook and the client's return to the page may apply one setup at once.
    agreement = db.session.scalar(
        select(CardAgreement)
        .where(CardAgreement.stripe_setup_intent_id == setup_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if agreement is None:
        return "not a card of this clinic"
    setup = stripe_api.retrieve("setup_intents", setup_id, agreement.stripe_account)
    status = SETUP_STATUS.get(setup.status, PaymentStatus.pending)
    if FORWARD[status] < FORWARD[agreement.status] or status == agreement.status:
        return f"unchanged ({agreement.status.value})"
    agreement.status = status
    if status == PaymentStatus.succeeded:
        keep_card(clinic, db.session.get_one(Client, agreement.client_id), setup.payment_method)
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
