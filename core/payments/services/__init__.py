"""Taking money through Stripe: deposits, fees, cards on file, refunds, disputes and webhooks."""

# A booking that owes a deposit gets a PaymentIntent on the clinic's connected account;
# the browser pays it with Stripe.js, and only the signed webhook, re-checked against
# Stripe, marks it paid and confirms the booking.

from core.payments.services.cards import (
    CARD_GUARANTEES,
    SETUP_STATUS,
    card_expires_before,
    card_setup,
    flag_expiring_cards,
    keep_card,
)
from core.payments.services.common import (
    FEES,
    PAID_UP_FRONT,
    alert_clinic,
    customer_for,
    for_stripe_js,
)
from core.payments.services.deposits import deposit_payment, pay_with_card, settle_deposits
from core.payments.services.disputes import (
    DISPUTE_CLOSED,
    dispute,
    disputes,
    submit_evidence,
    submit_queued_evidence,
)
from core.payments.services.fees import charge_fee, charge_owed_fees, payment_to_approve, recorded
from core.payments.services.received import INTENT_STATUS, LEDGER_KIND, SALE
from core.payments.services.reconciliation import Reconciliation, reconcile
from core.payments.services.refunds import locked, refunded_so_far
from core.payments.services.webhooks import apply_event, check_card_step, verified_event

__all__ = [
    "CARD_GUARANTEES",
    "DISPUTE_CLOSED",
    "FEES",
    "INTENT_STATUS",
    "LEDGER_KIND",
    "PAID_UP_FRONT",
    "SALE",
    "SETUP_STATUS",
    "Reconciliation",
    "alert_clinic",
    "apply_event",
    "card_expires_before",
    "card_setup",
    "charge_fee",
    "charge_owed_fees",
    "check_card_step",
    "customer_for",
    "deposit_payment",
    "dispute",
    "disputes",
    "flag_expiring_cards",
    "for_stripe_js",
    "keep_card",
    "locked",
    "pay_with_card",
    "payment_to_approve",
    "reconcile",
    "recorded",
    "refunded_so_far",
    "settle_deposits",
    "submit_evidence",
    "submit_queued_evidence",
    "verified_event",
]
