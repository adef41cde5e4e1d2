"""Deposits and prepayments: paid online ahead, settled after a cancellation or no-show."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import events, ledger
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeStatus
from core.clients.models import Client
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import Clause, DepositOutcome
from core.ledger import LedgerKind
from core.money import Money
from core.payments import charges, handlers, stripe_api
from core.payments.models import Payment, PaymentStatus
from core.payments.services.common import (
    PAID_UP_FRONT,
    alert_clinic,
    charge_payment,
    customer_for,
    for_stripe_js,
)
from core.payments.services.refunds import locked, refunded_so_far
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, transaction, unit_of_work

log = logging.getLogger(__name__)


@transaction
def deposit_payment(clinic: Clinic, booking: Booking) -> dict[str, Any]:
    """Return what Stripe.js needs to pay what the held booking owes up front.

    The same PaymentIntent on every call (its idempotency key is the
    booking's charge), so a double click or a retry never asks for a second
    deposit. The card is saved for later fees (``setup_future_usage``).
    """
    if booking.status != BookingStatus.held:
        raise Refused("This booking is not waiting for a payment.", kind="nothing-to-pay")
    charge = next(
        (c for c in booking.charges if c.kind in PAID_UP_FRONT and c.status == ChargeStatus.owed),
        None,
    )
    if charge is None:
        raise Refused("This booking owes nothing up front.", kind="nothing-to-pay")
    account = stripe_api.charging_account(clinic)
    key = f"{charge.kind}:{booking.id}:{charge.id}"
    payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    api = stripe_api.client()
    if payment is None:
        client = db.session.get_one(Client, booking.client_id)
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
        payment = charge_payment(charge, account=account, key=key, intent_id=intent.id)
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


def pay_with_card(clinic: Clinic, booking: Booking, card_token: str) -> dict[str, Any]:
    """Pay the held booking's deposit or prepayment with the card entered on the page.

    The payment must have been started (:func:`deposit_payment`). Returns the
    intent's ``status`` and, when the bank asks the client to approve the
    payment (``requires_action``), the ``client_secret`` Stripe.js needs for it.
    """
    with unit_of_work():
        if booking.status != BookingStatus.held:
            raise Refused("This booking is not waiting for a payment.", kind="nothing-to-pay")
        payment = db.session.scalar(
            select(Payment)
            .where(
                Payment.booking_id == booking.id,
                Payment.purpose.in_([kind.value for kind in PAID_UP_FRONT]),
            )
            .order_by(Payment.id.desc())
        )
        if payment is None or payment.stripe_payment_intent_id is None:
            raise Refused("Start the payment first.", kind="payment-not-started")
        if payment.status == PaymentStatus.succeeded:
            return {"status": "succeeded"}
        customer = db.session.get_one(Client, booking.client_id).stripe_customer_id or ""
    intent = charges.confirm_with_card(payment, customer, card_token)
    answer: dict[str, Any] = {"status": intent.status}
    if intent.status == "requires_action":
        answer["client_secret"] = intent.client_secret
    return answer


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
                    BookingCharge.status.in_([ChargeStatus.paid, ChargeStatus.refunding]),
                    Booking.status.in_([BookingStatus.cancelled, BookingStatus.no_show]),
                )
            )
        )
    settled = 0
    for charge in paid:
        try:
            if charge.status == ChargeStatus.paid:
                settled += _settle_deposit(clinic, charge)
            if charge.status == ChargeStatus.refunding:
                _refund_claimed(clinic, charge.id)
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
        .where(BookingCharge.id == charge.id, BookingCharge.status == ChargeStatus.paid)
        .values(status=ChargeStatus.paid)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(charge)
    if not claimed or charge.status != ChargeStatus.paid:
        return False
    booking = db.session.get_one(Booking, charge.booking_id)
    outcome = booking.deposit_outcome
    if outcome == DepositOutcome.refunded:
        _claim_refund(clinic, booking, charge)
    elif outcome == DepositOutcome.forfeited:
        charge.status = ChargeStatus.forfeited
        _ledger(LedgerKind.deposit_forfeited, booking, charge, None, outcome)
    elif outcome == DepositOutcome.credited:
        _credit(clinic, booking, charge)
    else:
        return False  # kept or moved: nothing leaves the booking here
    return True


def _credit(clinic: Clinic, booking: Booking, charge: BookingCharge) -> None:
    """Turn money paid up front into store credit for future services, as the policy decided."""
    charge.status = ChargeStatus.credited
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


def _claim_refund(clinic: Clinic, booking: Booking, charge: BookingCharge) -> None:
    """Claim a deposit for refunding (``refunding``), or ask the clinic to refund it by hand.

    The claim commits before Stripe is asked (see :func:`_refund_claimed`): a
    second worker finds the charge no longer ``paid`` and leaves it.
    """
    payment = db.session.scalar(
        select(Payment).where(
            Payment.booking_charge_id == charge.id, Payment.status == PaymentStatus.succeeded
        )
    )
    if payment is None:
        charge.status = ChargeStatus.refund_due
        alert_clinic(
            clinic,
            f"refund-due:{charge.id}",
            f"Refund {charge.amount.format()} to the client of booking {booking.id}",
            "The policy refunds this deposit, which was not paid online: refund it by hand.",
        )
        return
    charge.status = ChargeStatus.refunding


def _refund_claimed(clinic: Clinic, charge_id: int) -> None:
    """Refund a claimed deposit: Stripe asked with no unit open, under the charge's key; recorded once.

    A run that dies after Stripe answered leaves the charge ``refunding``; the
    next run asks again under the same key and gets the same refund back.
    """
    with unit_of_work():
        charge = db.session.get_one(BookingCharge, charge_id)
        payment = db.session.scalars(
            select(Payment).where(
                Payment.booking_charge_id == charge.id,
                Payment.status == PaymentStatus.succeeded,
            )
        ).one()
        amount = min(charge.amount_minor, payment.amount_minor - refunded_so_far(payment))
        intent_id, account = payment.stripe_payment_intent_id, payment.stripe_account
    refund = None
    if amount > 0:
        no_open_unit("refunding a deposit")
        refund = stripe_api.client().v1.refunds.create(
            {"payment_intent": intent_id or "", "amount": amount},
            stripe_api.on_account(account, f"refund:{charge_id}"),
        )
    with unit_of_work():
        charge = db.session.get_one(BookingCharge, charge_id, with_for_update=True)
        if charge.status != ChargeStatus.refunding:
            return  # another run recorded it meanwhile
        if refund is not None:
            payment = locked(payment.id)
            booking = db.session.get_one(Booking, charge.booking_id)
            _ledger(LedgerKind.refund, booking, charge, payment, "refunded", amount, refund.id)
            events.publish("payment.refunded", payment, refunded=amount, refund_id=refund.id)
        charge.status = ChargeStatus.refunded


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
