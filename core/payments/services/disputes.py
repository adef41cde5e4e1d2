"""Card disputes: the money withdrawn and how each dispute ended, each recorded once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import ledger
from core.errors import Unreadable
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.payments.models import Payment
from core.payments.services.common import alert_clinic
from core.tenancy.models import Clinic

#: How a dispute's final status is recorded.
DISPUTE_CLOSED = {"won": LedgerKind.dispute_won, "lost": LedgerKind.dispute_lost}


def _sync_dispute(clinic: Clinic, dispute: dict[str, Any]) -> str:
    """Record a card dispute: the money withdrawn when opened, and how it ended, each once.

    Stripe may tell of the end before the start: whichever arrives first
    records the opening too, and the database refuses a second of either.
    """
    amount, currency = dispute.get("amount"), dispute.get("currency")
    if not isinstance(amount, int) or not isinstance(currency, str) or not dispute.get("id"):
        raise Unreadable("The dispute has no id, amount or currency.", kind="bad-event")
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
