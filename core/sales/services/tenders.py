"""Tenders: paying a bill by gift certificate, store credit, package session, partner or card."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from core import clock, ledger
from core.errors import NotFound, Refused
from core.extensions import db
from core.hooks.decisions import Clause
from core.ledger import LedgerKind
from core.money import Money
from core.sales.models import (
    ClientPackage,
    GiftCertificate,
    LineKind,
    PackageStatus,
    Sale,
    SaleStatus,
    StoreCredit,
    Tender,
    TenderKind,
    TenderStatus,
)
from core.sales.services.bills import _settle_if_paid, balance_due, open_to_pay
from core.sales.services.card_payments import (
    _card_payment,
    _charge_card_on_file,
    _payment_for,
    _require_card_on_file,
)
from core.sales.services.common import _fresh, _invalid, _on_bill
from core.sales.services.gift_certificates import gift_certificate, gift_certificate_balance
from core.sales.services.store_credit import (
    client_store_credit,
    issue_store_credit,
    store_credit_balance,
)
from core.tenancy.models import Clinic
from core.unit_of_work import unit_of_work

#: Where an external tender comes from; financing partners need their reference.
PARTNERS = ("cherry", "carecredit", "cash", "check")


FINANCING = ("cherry", "carecredit")


def add_tender(
    clinic: Clinic, bill: Sale, data: dict[str, Any], key: str
) -> tuple[Tender, dict[str, Any] | None]:
    """Pay part or all of an open bill; a retried ``key`` returns the first tender.

    Returns the tender and, for a card presented now, what Stripe.js (or the
    card reader) needs to confirm it; the webhook then applies it. A card on
    file is charged once the tender is committed, outside any transaction.
    """
    with unit_of_work():
        tender, for_browser = _record_tender(clinic, bill, data, key)
    if tender.kind == TenderKind.card_on_file and tender.status == TenderStatus.pending:
        # New, or Stripe did not answer last time: ask (again) under the same key.
        _charge_card_on_file(clinic, tender)
    return tender, for_browser


def _record_tender(
    clinic: Clinic, bill: Sale, data: dict[str, Any], key: str
) -> tuple[Tender, dict[str, Any] | None]:
    db.session.flush()
    bill = _fresh(Sale, bill.id)
    existing = db.session.scalar(
        select(Tender).where(Tender.sale_id == bill.id, Tender.idempotency_key == key)
    )
    if existing is not None:
        return existing, None
    if bill.status != SaleStatus.open:
        raise Refused(f"This bill is {bill.status.value}.", kind="sale-closed")
    due = open_to_pay(bill)
    if due.minor <= 0:
        raise Refused(
            "Nothing is left to pay on this bill while a card payment is in progress.",
            kind="payment-in-progress",
        )
    asked = Money.parse(data["amount"], bill.currency) if data.get("amount") else None
    if asked is not None and (asked.minor <= 0 or asked > due):
        raise _invalid(
            "amount", f"The amount must be more than nothing and at most {due.format()}."
        )
    kind = TenderKind(data["kind"])
    tender = Tender(sale_id=bill.id, kind=kind, currency=bill.currency, idempotency_key=key)
    if kind == TenderKind.gift_certificate:
        _from_gift_certificate(bill, tender, data.get("code") or "", asked or due)
    elif kind == TenderKind.store_credit:
        _from_store_credit(clinic, bill, tender, data.get("store_credit_id"), asked or due)
    elif kind == TenderKind.package_session:
        _from_package(clinic, bill, tender, data.get("client_package_id"))
    elif kind == TenderKind.external:
        _from_partner(bill, tender, data, asked or due)
    elif kind in (TenderKind.card, TenderKind.card_on_file):
        tender.amount_minor = (asked or due).minor
        tender.status = TenderStatus.pending
        if kind == TenderKind.card_on_file:
            _require_card_on_file(bill)
    else:
        raise _invalid("kind", "Deposits are applied when the bill is opened.")
    bill.tenders.append(tender)
    db.session.flush()
    for_browser = None
    if kind == TenderKind.card_on_file:
        _payment_for(clinic, bill, tender)
    elif kind == TenderKind.card:
        for_browser = _card_payment(clinic, bill, tender)
    _settle_if_paid(clinic, bill)
    return tender, for_browser


def _from_gift_certificate(bill: Sale, tender: Tender, code: str, wanted: Money) -> None:
    certificate = _fresh(GiftCertificate, gift_certificate(code).id)
    left = gift_certificate_balance(certificate)
    if left.minor <= 0:
        raise _invalid("code", "This gift certificate has been used up.", Refused)
    amount = min(wanted, left)
    tender.amount_minor = amount.minor
    tender.gift_certificate_id = certificate.id
    _on_bill(
        bill,
        LedgerKind.gift_certificate_redeemed,
        amount,
        account=certificate.account,
        sale=bill.id,
    )


def _from_store_credit(
    clinic: Clinic, bill: Sale, tender: Tender, credit_id: int | None, wanted: Money
) -> None:
    if bill.client_id is None:
        raise _invalid("client_id", "Store credit belongs to a client; the bill has none.")
    today = clock.now().astimezone(ZoneInfo(clinic.timezone)).date()
    if credit_id is None:
        services = [line.unit_minor for line in bill.lines if line.kind == LineKind.service]

        def usable(credit: StoreCredit, left: Money) -> bool:
            fits = not credit.services_only or any(
                price >= (credit.min_service_price_minor or 0) for price in services
            )
            fresh = credit.expires_on is None or credit.expires_on >= today
            return left.minor > 0 and fresh and fits

        found = [c for c, left in client_store_credit(bill.client_id) if usable(c, left)]
        if not found:
            raise _invalid(
                "store_credit_id", "The client has no store credit for this bill.", Refused
            )
        credit_id = found[0].id
    credit = _fresh(StoreCredit, credit_id)
    if credit is None or credit.client_id != bill.client_id:
        raise _invalid("store_credit_id", "No such store credit for this client.", NotFound)
    if credit.expires_on is not None and credit.expires_on < today:
        raise _invalid(
            "store_credit_id",
            f"This store credit expired on {credit.expires_on.isoformat()} "
            f"({credit.terms_clause_text}).",
            Refused,
            kind="store-credit-expired",
        )
    limit = balance_due(bill)
    if credit.services_only:
        floor = credit.min_service_price_minor or 0
        eligible = sum(
            line.amount_minor
            for line in bill.lines
            if line.kind == LineKind.service and line.unit_minor >= floor
        )
        if not eligible:
            raise _invalid(
                "store_credit_id",
                f"This store credit is for services of equal or greater value "
                f"({credit.terms_clause_text}).",
                Refused,
                kind="store-credit-not-applicable",
            )
        limit = min(limit, Money(eligible, bill.currency))
    left = store_credit_balance(credit)
    amount = min(wanted, left, limit)
    if amount.minor <= 0:
        raise _invalid("store_credit_id", "This store credit has nothing left.", Refused)
    tender.amount_minor = amount.minor
    tender.store_credit_id = credit.id
    _on_bill(
        bill,
        LedgerKind.store_credit_used,
        amount,
        account=credit.account,
        sale=bill.id,
    )


#: Why a deposit on a visit paid by a package session is given back as credit.
PACKAGE_SESSION = Clause(
    "platform.package_session",
    "A package session pays for the whole treatment; a deposit paid for the visit becomes "
    "store credit.",
)


def _from_package(clinic: Clinic, bill: Sale, tender: Tender, package_id: int | None) -> None:
    service_line = next((line for line in bill.lines if line.kind == LineKind.service), None)
    if service_line is None or package_id is None:
        raise _invalid("client_package_id", "A package session pays for this visit's treatment.")
    package = _fresh(ClientPackage, package_id)
    if package is None or package.client_id != bill.client_id:
        raise _invalid("client_package_id", "No such package for this client.", NotFound)
    if package.service_id != service_line.service_id:
        raise _invalid("client_package_id", "This package is for another service.", Refused)
    if package.status != PackageStatus.active:
        clinic_terms = "Packages are paid in full before the first treatment."
        raise _invalid(
            "client_package_id",
            clinic_terms if package.status == PackageStatus.unpaid else "This package is closed.",
            Refused,
            kind="package-not-active",
        )
    used = ledger.count(package.account, LedgerKind.package_session_used)
    if used >= package.sessions:
        raise _invalid("client_package_id", "Every session of this package is used.", Refused)
    if any(
        t.kind == TenderKind.package_session and t.status == TenderStatus.applied
        for t in bill.tenders
    ):
        raise _invalid("client_package_id", "A session is already counted for this visit.", Refused)
    # The session pays for the whole treatment: a deposit paid for the visit is the client's
    # again, as store credit, rather than paying for the treatment twice.
    for paid in bill.tenders:
        if paid.kind == TenderKind.deposit and paid.status == TenderStatus.applied:
            paid.status = TenderStatus.credited
            issue_store_credit(
                clinic,
                bill.client_id,
                paid.amount,
                reason="deposit_credited",
                clause=PACKAGE_SESSION,
                source=f"tender:{paid.id}",
            )
    tender.amount_minor = min(service_line.amount, open_to_pay(bill)).minor
    tender.client_package_id = package.id
    _on_bill(
        bill,
        LedgerKind.package_session_used,
        package.session_value(used),
        account=package.account,
        sale=bill.id,
        session=used + 1,
        of=package.sessions,
    )


def _from_partner(bill: Sale, tender: Tender, data: dict[str, Any], amount: Money) -> None:
    partner = data.get("partner")
    if partner not in PARTNERS:
        raise _invalid("partner", f"The partner must be one of {', '.join(PARTNERS)}.")
    reference = (data.get("reference") or "").strip()
    if partner in FINANCING and not reference:
        raise _invalid("reference", f"A {partner} payment needs the financing reference.")
    tender.amount_minor = amount.minor
    tender.partner = partner
    tender.reference = reference or None
    _on_bill(
        bill,
        LedgerKind.external_tender,
        amount,
        account=bill.account,
        reference=reference or None,
        partner=partner,
    )
