"""Checkout: bills and their tenders, products, packages, gift certificates, store credit, refunds."""

# A bill (``Sale``) is open until its tenders cover its total; then what it sold takes
# effect (a package's sessions, a gift certificate's balance). Every tender locks the bill
# first, and a gift certificate, store credit or package is locked before its balance is
# read from the ledger, so two desks spending the same certificate at once cannot spend
# it twice. Each decision is the clinic's policy's, and each movement goes to its ledger.

from core.payments import handlers as payment_handlers
from core.sales.services.bills import (
    SETTLED_ON_THE_DAY,
    balance_due,
    open_sale,
    open_to_pay,
    paid_toward,
    sale,
    void_sale,
)
from core.sales.services.card_payments import card_failed, card_received
from core.sales.services.gift_certificates import (
    CODE_ALPHABET,
    confirm_with_gift_certificate,
    gift_certificate,
    gift_certificate_balance,
    new_code,
)
from core.sales.services.packages import client_package, close_package, package_sessions_left
from core.sales.services.products import add_product
from core.sales.services.refunds import (
    HOLDING,
    OUTCOME_TOLD,
    RefundItem,
    decide_refund,
    refund_request,
    request_refund,
)
from core.sales.services.store_credit import (
    client_store_credit,
    expire_store_credit,
    issue_store_credit,
    store_credit_balance,
)
from core.sales.services.tenders import FINANCING, PACKAGE_SESSION, PARTNERS, add_tender

__all__ = [
    "CODE_ALPHABET",
    "FINANCING",
    "HOLDING",
    "OUTCOME_TOLD",
    "PACKAGE_SESSION",
    "PARTNERS",
    "SETTLED_ON_THE_DAY",
    "RefundItem",
    "add_product",
    "add_tender",
    "balance_due",
    "card_failed",
    "card_received",
    "client_package",
    "client_store_credit",
    "close_package",
    "confirm_with_gift_certificate",
    "decide_refund",
    "expire_store_credit",
    "gift_certificate",
    "gift_certificate_balance",
    "issue_store_credit",
    "new_code",
    "open_sale",
    "open_to_pay",
    "package_sessions_left",
    "paid_toward",
    "refund_request",
    "request_refund",
    "sale",
    "store_credit_balance",
    "void_sale",
]

# Payments takes the money; what it means for a bill or as store credit is answered here.
payment_handlers.register(
    sale_paid=card_received, sale_failed=card_failed, issue_store_credit=issue_store_credit
)
