"""Card payments toward a bill: a card presented or on file, and Stripe's answer applied."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from stripe.params import PaymentIntentCreateParams

from core.clients.models import Client
from core.errors import PaymentFailed, Refused, UpstreamFailed
from core.extensions import db
from core.ledger import LedgerKind
from core.payments import charges, stripe_api
from core.payments import services as payments
from core.payments.charges import ChargeOutcome
from core.payments.models import Payment
from core.sales.models import Sale, SaleStatus, Tender, TenderStatus
from core.sales.services.bills import _settle_if_paid
from core.sales.services.common import _fresh, _invalid, _on_bill
from core.tenancy.models import Clinic
from core.unit_of_work import unit_of_work


def _payment_for(clinic: Clinic, bill: Sale, tender: Tender) -> Payment:
    key = f"sale:{bill.id}:tender:{tender.id}"
    payment = Payment(
        booking_id=bill.booking_id,
        sale_id=bill.id,
        purpose="sale",
        amount_minor=tender.amount_minor,
        currency=tender.currency,
        stripe_account=stripe_api.charging_account(clinic),
        idempotency_key=key,
    )
    db.session.add(payment)
    db.session.flush()
    tender.payment_id = payment.id
    return payment


def _card_payment(clinic: Clinic, bill: Sale, tender: Tender) -> dict[str, Any]:
    """Create the PaymentIntent the card reader or Stripe.js confirms; its webhook applies it."""
    payment = _payment_for(clinic, bill, tender)
    params: PaymentIntentCreateParams = {
        "amount": tender.amount_minor,
        "currency": tender.currency.lower(),
        "metadata": {"payment_key": payment.idempotency_key, "sale_id": str(bill.id)},
    }
    if bill.client_id is not None:
        params["customer"] = payments.customer_for(
            clinic, db.session.get_one(Client, bill.client_id)
        )
    intent = charges.start_payment(clinic, payment.idempotency_key, params)
    payment.stripe_payment_intent_id = intent.id
    tender.reference = intent.id
    return payments.for_stripe_js(
        intent.client_secret,
        payment.stripe_account,
        amount=payment.amount.to_dict(),
        purpose="sale",
    )


def _require_card_on_file(bill: Sale) -> Client:
    client = db.session.get(Client, bill.client_id) if bill.client_id else None
    if client is None or not (client.stripe_customer_id and client.stripe_payment_method_id):
        raise _invalid("kind", "The client has no card on file.", Refused, kind="no-card-on-file")
    return client


def _charge_card_on_file(clinic: Clinic, tender: Tender) -> None:
    """Charge the client's saved card for a committed tender; a decline leaves the bill open and says why."""
    payment = db.session.get_one(Payment, tender.payment_id)
    bill = db.session.get_one(Sale, tender.sale_id)
    result = charges.charge_saved_card(
        clinic, payment, _require_card_on_file(bill), {"sale_id": str(bill.id)}
    )
    with stripe_api.fetched(result.read), unit_of_work():
        if result.outcome == ChargeOutcome.accepted and result.intent is not None:
            tender.reference = result.intent.id
            payments.recorded(clinic, payment, result.intent)
            _settle_if_paid(clinic, _fresh(Sale, bill.id))
        elif result.outcome != ChargeOutcome.no_answer:
            tender.status = TenderStatus.failed
    if result.outcome == ChargeOutcome.no_answer:
        # The tender and its payment stay pending under their key; the payment's webhook,
        # or reconciliation, applies it if Stripe did charge. The bill shows it in progress.
        raise UpstreamFailed(
            "Stripe did not answer; the card payment stays in progress until Stripe's answer "
            "arrives.",
            kind="stripe-error",
        )
    if result.outcome == ChargeOutcome.needs_authentication:
        raise PaymentFailed(
            "The client's bank wants them to approve this payment themselves; "
            "take the card in person instead.",
            kind="authentication-required",
            tender=tender.id,
        )
    if result.outcome in (ChargeOutcome.declined, ChargeOutcome.refused):
        raise PaymentFailed(
            f"The card on file was declined: {result.reason}",
            kind="card-declined",
            tender=tender.id,
        )


def card_received(clinic: Clinic, payment: Payment, stripe_charge: Any) -> None:
    """Apply a card payment toward its bill, once (payments calls this when Stripe says paid)."""
    tender = db.session.scalar(select(Tender).where(Tender.payment_id == payment.id))
    bill = _fresh(Sale, payment.sale_id)
    if bill.status != SaleStatus.open or (
        tender is not None and tender.status != TenderStatus.pending
    ):
        # Paid otherwise meanwhile (or the tender was given up): the money is recorded and a
        # person returns it.
        payments.alert_clinic(
            clinic,
            f"sale-overpaid:{payment.id}",
            f"A card payment of {payment.amount.format()} arrived for bill {bill.id}, already settled",
            "Refund it to the client's card from the bill, or keep it as their store credit.",
        )
    _on_bill(
        bill,
        LedgerKind.card_payment,
        payment.amount,
        payment_id=payment.id,
        account=bill.account,
        reference=stripe_charge
        if isinstance(stripe_charge, str)
        else payment.stripe_payment_intent_id,
    )
    if tender is not None and tender.status == TenderStatus.pending:
        tender.status = TenderStatus.applied
    db.session.flush()
    db.session.refresh(bill)
    _settle_if_paid(clinic, bill)


def card_failed(payment: Payment) -> None:
    tender = db.session.scalar(select(Tender).where(Tender.payment_id == payment.id))
    if tender is not None and tender.status == TenderStatus.pending:
        tender.status = TenderStatus.failed
