"""Reconciliation: the clinic's payments and ledger compared with its Stripe account."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind
from core.payments import stripe_api
from core.payments.models import Payment, PaymentStatus
from core.payments.services.received import _apply_intent
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


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
