"""Checkout and what the clinic sells: bills and their tenders, products and returns, packages,
gift certificates and store credit, each decided by the clinic's policy and written to its ledger.

A bill (``Sale``) is open until its tenders cover its total; then what it
sold takes effect (a package's sessions, a gift certificate's balance).
Every tender locks the bill first, and a gift certificate, store credit or
package is locked before its balance is read from the ledger, so two desks
spending the same certificate at once cannot spend it twice.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import secrets
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import stripe
from dateutil.relativedelta import relativedelta
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import clock, ledger
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeKind
from core.catalog.models import Service
from core.clients.models import Client
from core.errors import Problem, field_error
from core.extensions import db
from core.hooks.decisions import Clause, RefundDecision, RefundOutcome
from core.ledger import LedgerKind
from core.messaging import outbox
from core.money import Money
from core.payments import charges, stripe_api
from core.payments import handlers as payment_handlers
from core.payments import services as payments
from core.payments.charges import ChargeOutcome
from core.payments.models import Payment
from core.sales.models import (
    ClientPackage,
    GiftCertificate,
    LineKind,
    Product,
    RefundRequest,
    RefundStatus,
    Sale,
    SaleLine,
    SaleStatus,
    StoreCredit,
    Tender,
    TenderKind,
)
from core.schedules.models import Provider
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import after_commit, transaction, unit_of_work

log = logging.getLogger(__name__)

#: Where an external tender comes from; financing partners need their reference.
PARTNERS = ("cherry", "carecredit", "cash", "check")
FINANCING = ("cherry", "carecredit")
#: A bill for an appointment is settled on the day, once the client is here.
SETTLED_ON_THE_DAY = (BookingStatus.checked_in, BookingStatus.completed)
#: Gift certificate codes: unambiguous characters, 16 of them (80 bits).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _invalid(field: str, reason: str, status: int = 422, **extra: Any) -> Problem:
    return Problem(status, reason, errors=[field_error(field, reason)], **extra)


def _on_bill(bill: Sale, kind: LedgerKind, amount: Money, **details: Any) -> Any:
    """Record a money movement of ``bill`` in the ledger, under its client and appointment."""
    return ledger.record(
        kind, amount, client_id=bill.client_id, booking_id=bill.booking_id, **details
    )


def _lock(model: type, row_id: int) -> None:
    """Take the row's lock (the database's write lock on SQLite) until the transaction ends."""
    db.session.execute(
        update(model)
        .where(model.id == row_id)
        .values(updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def _fresh(model: type, row_id: int) -> Any:
    """Lock a row and read it again, so what we check is what the next writer will see."""
    db.session.flush()
    _lock(model, row_id)
    return db.session.scalar(
        select(model).where(model.id == row_id).execution_options(populate_existing=True)
    )


# --- products and gift certificate codes -----------------------------------------------------------


@transaction
def add_product(clinic: Clinic, data: dict[str, Any]) -> Product:
    """Add a retail product to the clinic's catalogue."""
    if db.session.scalar(select(Product.id).where(Product.sku == data["sku"])):
        raise _invalid("sku", "A product with this SKU exists.", 409)
    product = Product(
        sku=data["sku"],
        name=data["name"],
        price_minor=Money.parse(data["price"], clinic.currency).minor,
        currency=clinic.currency,
        prescription=data.get("prescription", False),
    )
    db.session.add(product)
    db.session.flush()
    return product


def new_code() -> str:
    """Return a fresh gift certificate code, e.g. ``7KQ2-M9XD-3HTW-P0RB``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _code_digest(code: str) -> str:
    # Read as people type it: any case, any separators, O for 0 and I or L for 1.
    normal = code.upper().translate(str.maketrans("OIL", "011", " -"))
    return hashlib.sha256(normal.encode()).hexdigest()


def gift_certificate(code: str) -> GiftCertificate:
    """Return the active gift certificate with ``code``."""
    found = db.session.scalar(
        select(GiftCertificate).where(GiftCertificate.code_digest == _code_digest(code))
    )
    if found is None or not found.active:
        raise _invalid("code", "No gift certificate has this code.", 404)
    return found


def gift_certificate_balance(certificate: GiftCertificate) -> Money:
    return ledger.balance(certificate.account, certificate.currency)


@transaction
def confirm_with_gift_certificate(
    clinic: Clinic, booking: Booking, code: str, actor_user_id: int | None
) -> Booking:
    """Confirm a held booking guaranteed by a gift certificate, only while it has a balance."""
    certificate = gift_certificate(code)
    if gift_certificate_balance(certificate).minor <= 0:
        raise Problem(
            409,
            "This gift certificate has been used up.",
            errors=[field_error("gift_certificate_code", "used up")],
        )
    booking.requirements = {**booking.requirements, "gift_certificate_id": certificate.id}
    return bookings.confirm(clinic, booking, "gift_certificate", actor_user_id)


# --- store credit ----------------------------------------------------------------------------------


def issue_store_credit(
    clinic: Clinic,
    client_id: int,
    amount: Money,
    *,
    reason: str,
    clause: Clause,
    source: str,
    min_service_price: Money | None = None,
) -> StoreCredit:
    """Give a client store credit a policy decided, under the clinic's store credit terms."""
    terms = hooks_for(clinic).clinic_store_credit_terms(clinic=clinic, reason=reason)
    today = clock.now().astimezone(ZoneInfo(clinic.timezone)).date()
    expires_on = None
    if terms.valid_for_months:
        expires_on = today + relativedelta(months=terms.valid_for_months)
    elif terms.valid_for is not None:
        expires_on = today + terms.valid_for
    credit = StoreCredit(
        client_id=client_id,
        amount_minor=amount.minor,
        currency=amount.currency,
        reason=reason,
        clause_id=clause.id,
        clause_text=clause.text,
        terms_clause_id=terms.clause.id,
        terms_clause_text=terms.clause.text,
        expires_on=expires_on,
        services_only=terms.services_of_equal_or_greater_value_only,
        min_service_price_minor=(
            min_service_price.minor
            if terms.services_of_equal_or_greater_value_only and min_service_price
            else None
        ),
        source=source,
    )
    db.session.add(credit)
    db.session.flush()
    ledger.record(
        LedgerKind.store_credit_issued,
        amount,
        client_id=client_id,
        account=credit.account,
        reason=reason,
        clause=clause.id,
        expires_on=expires_on.isoformat() if expires_on else None,
    )
    return credit


def store_credit_balance(credit: StoreCredit) -> Money:
    return ledger.balance(credit.account, credit.currency)


def client_store_credit(client_id: int) -> list[tuple[StoreCredit, Money]]:
    """Return the client's store credits with what each has left, soonest to expire first."""
    credits = db.session.scalars(
        select(StoreCredit).where(StoreCredit.client_id == client_id).order_by(StoreCredit.id)
    )
    found = [(c, store_credit_balance(c)) for c in credits]
    return sorted(found, key=lambda pair: (pair[0].expires_on or date.max, pair[0].id))


def expire_store_credit(clinic: Clinic) -> int:
    """Record the expiry of what is left on credits past their date, once each; call in scope."""
    today = clock.now().astimezone(ZoneInfo(clinic.timezone)).date()
    expired = 0
    for credit_id in db.session.scalars(
        select(StoreCredit.id).where(StoreCredit.expires_on < today)
    ).all():
        with unit_of_work():  # one credit at a time: its lock is held only while it expires
            credit = _fresh(StoreCredit, credit_id)
            left = store_credit_balance(credit)
            if left.minor > 0:
                ledger.record(
                    LedgerKind.store_credit_expired,
                    left,
                    client_id=credit.client_id,
                    account=credit.account,
                    expired_on=credit.expires_on.isoformat(),
                    clause=credit.terms_clause_id,
                )
                expired += 1
    return expired


# --- bills -----------------------------------------------------------------------------------------


def client_package(package_id: int) -> ClientPackage:
    """Return the client package with this id, or answer 404."""
    found = db.session.get(ClientPackage, package_id)
    if found is None:
        raise Problem(404, "No such package.")
    return found


def refund_request(request_id: int) -> RefundRequest:
    """Return the refund request with this id, or answer 404."""
    found = db.session.get(RefundRequest, request_id)
    if found is None:
        raise Problem(404, "No such refund request.")
    return found


def sale(sale_id: int) -> Sale:
    found = db.session.get(Sale, sale_id)
    if found is None:
        raise Problem(404, "No such sale.")
    return found


def paid_toward(bill: Sale) -> Money:
    """Return what the bill's applied tenders add up to."""
    return Money(sum(t.amount_minor for t in bill.tenders if t.status == "applied"), bill.currency)


def balance_due(bill: Sale) -> Money:
    return bill.total - paid_toward(bill)


def open_to_pay(bill: Sale) -> Money:
    """Return what a new tender may take: the balance, less card payments still in progress."""
    pending = sum(t.amount_minor for t in bill.tenders if t.status == "pending")
    return balance_due(bill) - Money(pending, bill.currency)


def _line(
    bill: Sale, kind: LineKind, description: str, unit: Money, quantity: int = 1, **refs: Any
):
    line = SaleLine(
        sale_id=bill.id,
        kind=kind,
        description=description[:200],
        quantity=quantity,
        unit_minor=unit.minor,
        amount_minor=unit.minor * quantity,
        currency=unit.currency,
        **refs,
    )
    # Appended, not added first: adding would let the collection's first load flush and
    # find the line, and the append then count it twice.
    bill.lines.append(line)
    bill.total_minor += line.amount_minor
    return line


@transaction
def open_sale(
    clinic: Clinic, data: dict[str, Any], actor_user_id: int | None
) -> tuple[Sale, list[str]]:
    """Open a bill for a visit or a purchase; return it and any gift certificate codes it issues.

    A bill for an appointment carries the treatment at its booked price, the
    deposit already paid (applied as a tender, never asked for again) and a
    gratuity where the clinic's policy allows one. Codes are shown only
    here: the platform keeps a digest.
    """
    booking = None
    client_id = data.get("client_id")
    if data.get("booking_id") is not None:
        booking = db.session.get(Booking, data["booking_id"])
        if booking is None:
            raise _invalid("booking_id", "No such booking.", 404)
        if booking.status not in SETTLED_ON_THE_DAY:
            raise _invalid(
                "booking_id",
                f"A booking is paid on the day of treatment, once checked in; "
                f"this one is {booking.status.value}.",
                409,
                kind="not-on-the-day",
            )
        if db.session.scalar(
            select(Sale.id).where(Sale.booking_id == booking.id, Sale.status != SaleStatus.voided)
        ):
            raise _invalid("booking_id", "This booking has a bill already.", 409)
        client_id = booking.client_id
    if client_id is not None and db.session.get(Client, client_id) is None:
        raise _invalid("client_id", "No such client.", 404)
    bill = Sale(
        client_id=client_id,
        booking_id=booking.id if booking else None,
        currency=clinic.currency,
        created_by_user_id=actor_user_id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(bill)
    except IntegrityError:
        # Another desk opened this appointment's bill at the same moment.
        raise _invalid("booking_id", "This booking has a bill already.", 409) from None
    if booking is not None:
        service = db.session.get(Service, booking.service_id)
        _line(bill, LineKind.service, service.name, booking.price, service_id=service.id)
    codes: list[str] = []
    for index, item in enumerate(data.get("items", [])):
        codes += _add_item(clinic, bill, item, f"items.{index}")
    gratuity = data.get("gratuity")
    if gratuity:
        _add_gratuity(clinic, bill, booking, Money.parse(gratuity, clinic.currency))
    if not bill.lines:
        raise _invalid("items", "A bill needs something to pay for.")
    _one_promotion(clinic, bill)
    if booking is not None:
        _apply_deposit(bill, booking)
    db.session.flush()
    _settle_if_paid(clinic, bill)
    return bill, codes


def _add_item(clinic: Clinic, bill: Sale, item: dict[str, Any], field: str) -> list[str]:
    kind = item["kind"]
    if kind == "product":
        product = db.session.get(Product, item["product_id"])
        if product is None or not product.active:
            raise _invalid(f"{field}.product_id", "No such product.", 404)
        _line(
            bill,
            LineKind.product,
            product.name,
            product.price,
            item.get("quantity", 1),
            product_id=product.id,
        )
        return []
    if kind == "package":
        if bill.client_id is None:
            raise _invalid("client_id", "A package is sold to a client.")
        service = db.session.get(Service, item["service_id"])
        if service is None:
            raise _invalid(f"{field}.service_id", "No such service.", 404)
        price = Money.parse(item["price"], clinic.currency)
        package = ClientPackage(
            client_id=bill.client_id,
            service_id=service.id,
            name=item.get("name") or f"{item['sessions']} x {service.name}",
            sessions=item["sessions"],
            price_minor=price.minor,
            currency=price.currency,
            promotional=item.get("promotional", False),
            sale_id=bill.id,
        )
        db.session.add(package)
        db.session.flush()
        _line(bill, LineKind.package, package.name, price, client_package_id=package.id)
        return []
    # A gift certificate, of any amount the buyer chooses.
    amount = Money.parse(item["amount"], clinic.currency)
    if amount.minor <= 0:
        raise _invalid(f"{field}.amount", "A gift certificate is for more than nothing.")
    code = new_code()
    certificate = GiftCertificate(
        code_digest=_code_digest(code),
        code_hint=code[-4:],
        amount_minor=amount.minor,
        currency=amount.currency,
        recipient_name=item.get("recipient_name"),
        sale_id=bill.id,
    )
    db.session.add(certificate)
    db.session.flush()
    _line(
        bill,
        LineKind.gift_certificate,
        f"Gift certificate ...{certificate.code_hint}",
        amount,
        gift_certificate_id=certificate.id,
    )
    return [code]


def _one_promotion(clinic: Clinic, bill: Sale) -> None:
    """Refuse a bill that combines promotions where the clinic's terms say they do not combine."""
    promotional = [
        line
        for line in bill.lines
        if line.client_package_id
        and db.session.get(ClientPackage, line.client_package_id).promotional
    ]
    if len(promotional) < 2:
        return
    terms = hooks_for(clinic).clinic_gift_card_terms(clinic=clinic)
    if not terms.combinable_with_promotions:
        raise _invalid(
            "items", terms.clause.text, kind="promotions-do-not-combine", clause=terms.clause.id
        )


def _add_gratuity(clinic: Clinic, bill: Sale, booking: Booking | None, amount: Money) -> None:
    if booking is None:
        raise _invalid("gratuity", "A gratuity is given for a treatment.")
    service = db.session.get(Service, booking.service_id)
    provider = db.session.get(Provider, booking.provider_id)
    decision = hooks_for(clinic).clinic_gratuity_allowed(
        clinic=clinic, service=service, provider=provider
    )
    if not decision.allowed:
        raise _invalid(
            "gratuity", decision.clause.text, kind="gratuity-not-offered", clause=decision.clause.id
        )
    if amount.minor > 0:
        _line(bill, LineKind.gratuity, f"Gratuity for {provider.display_name}", amount)


def _apply_deposit(bill: Sale, booking: Booking) -> None:
    """Count what the client paid up front toward the bill, once."""
    for charge in db.session.scalars(
        select(BookingCharge).where(
            BookingCharge.booking_id == booking.id,
            BookingCharge.kind.in_([ChargeKind.deposit, ChargeKind.prepayment]),
            BookingCharge.status == "paid",
        )
    ):
        amount = Money(min(charge.amount_minor, balance_due(bill).minor), bill.currency)
        charge.status = "applied"
        tender = Tender(
            sale_id=bill.id,
            kind=TenderKind.deposit,
            amount_minor=amount.minor,
            currency=amount.currency,
            reference=f"booking_charge:{charge.id}",
            idempotency_key=f"deposit:{charge.id}",
        )
        bill.tenders.append(tender)
        ledger.record(
            LedgerKind.deposit_applied,
            amount,
            booking_id=booking.id,
            client_id=booking.client_id,
            account=bill.account,
            purpose=charge.kind,
        )


# --- tenders ---------------------------------------------------------------------------------------


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
    if tender.kind == TenderKind.card_on_file and tender.status == "pending":
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
        raise Problem(409, f"This bill is {bill.status.value}.", kind="sale-closed")
    due = open_to_pay(bill)
    if due.minor <= 0:
        raise Problem(
            409,
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
        tender.status = "pending"
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
        raise _invalid("code", "This gift certificate has been used up.", 409)
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
            raise _invalid("store_credit_id", "The client has no store credit for this bill.", 409)
        credit_id = found[0].id
    credit = _fresh(StoreCredit, credit_id)
    if credit is None or credit.client_id != bill.client_id:
        raise _invalid("store_credit_id", "No such store credit for this client.", 404)
    if credit.expires_on is not None and credit.expires_on < today:
        raise _invalid(
            "store_credit_id",
            f"This store credit expired on {credit.expires_on.isoformat()} "
            f"({credit.terms_clause_text}).",
            409,
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
                409,
                kind="store-credit-not-applicable",
            )
        limit = min(limit, Money(eligible, bill.currency))
    left = store_credit_balance(credit)
    amount = min(wanted, left, limit)
    if amount.minor <= 0:
        raise _invalid("store_credit_id", "This store credit has nothing left.", 409)
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
        raise _invalid("client_package_id", "No such package for this client.", 404)
    if package.service_id != service_line.service_id:
        raise _invalid("client_package_id", "This package is for another service.", 409)
    if package.status != "active":
        clinic_terms = "Packages are paid in full before the first treatment."
        raise _invalid(
            "client_package_id",
            clinic_terms if package.status == "unpaid" else "This package is closed.",
            409,
            kind="package-not-active",
        )
    used = ledger.count(package.account, LedgerKind.package_session_used)
    if used >= package.sessions:
        raise _invalid("client_package_id", "Every session of this package is used.", 409)
    if any(t.kind == TenderKind.package_session and t.status == "applied" for t in bill.tenders):
        raise _invalid("client_package_id", "A session is already counted for this visit.", 409)
    # The session pays for the whole treatment: a deposit paid for the visit is the client's
    # again, as store credit, rather than paying for the treatment twice.
    for paid in bill.tenders:
        if paid.kind == TenderKind.deposit and paid.status == "applied":
            paid.status = "credited"
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
    params: dict[str, Any] = {
        "amount": tender.amount_minor,
        "currency": tender.currency.lower(),
        "metadata": {"payment_key": payment.idempotency_key, "sale_id": str(bill.id)},
    }
    if bill.client_id is not None:
        params["customer"] = payments.customer_for(clinic, db.session.get(Client, bill.client_id))
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
        raise _invalid("kind", "The client has no card on file.", 409, kind="no-card-on-file")
    return client


def _charge_card_on_file(clinic: Clinic, tender: Tender) -> None:
    """Charge the client's saved card for a committed tender; a decline leaves the bill open and says why."""
    payment = db.session.get(Payment, tender.payment_id)
    bill = db.session.get(Sale, tender.sale_id)
    result = charges.charge_saved_card(
        clinic, payment, _require_card_on_file(bill), {"sale_id": str(bill.id)}
    )
    with stripe_api.fetched(result.read), unit_of_work():
        if result.outcome == ChargeOutcome.accepted:
            tender.reference = result.intent.id
            payments.recorded(clinic, payment, result.intent)
            _settle_if_paid(clinic, _fresh(Sale, bill.id))
        elif result.outcome != ChargeOutcome.no_answer:
            tender.status = "failed"
    if result.outcome == ChargeOutcome.no_answer:
        # The tender and its payment stay pending under their key; the payment's webhook,
        # or reconciliation, applies it if Stripe did charge. The bill shows it in progress.
        raise Problem(
            502,
            "Stripe did not answer; the card payment stays in progress until Stripe's answer "
            "arrives.",
            kind="stripe-error",
        )
    if result.outcome == ChargeOutcome.needs_authentication:
        raise Problem(
            402,
            "The client's bank wants them to approve this payment themselves; "
            "take the card in person instead.",
            kind="authentication-required",
            tender=tender.id,
        )
    if result.outcome in (ChargeOutcome.declined, ChargeOutcome.refused):
        raise Problem(
            402,
            f"The card on file was declined: {result.reason}",
            kind="card-declined",
            tender=tender.id,
        )


def card_received(clinic: Clinic, payment: Payment, stripe_charge: Any) -> None:
    """Apply a card payment toward its bill, once (payments calls this when Stripe says paid)."""
    tender = db.session.scalar(select(Tender).where(Tender.payment_id == payment.id))
    bill = _fresh(Sale, payment.sale_id)
    if bill.status != SaleStatus.open or (tender is not None and tender.status != "pending"):
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
    if tender is not None and tender.status == "pending":
        tender.status = "applied"
    db.session.flush()
    db.session.refresh(bill)
    _settle_if_paid(clinic, bill)


def card_failed(payment: Payment) -> None:
    tender = db.session.scalar(select(Tender).where(Tender.payment_id == payment.id))
    if tender is not None and tender.status == "pending":
        tender.status = "failed"


def _settle_if_paid(clinic: Clinic, bill: Sale) -> None:
    """Once the tenders cover the bill, let what it sold take effect: once, as the bill is locked."""
    if bill.status != SaleStatus.open or balance_due(bill).minor > 0:
        return
    bill.status = SaleStatus.paid
    bill.paid_at = clock.now()
    for line in bill.lines:
        if line.kind == LineKind.gift_certificate:
            certificate = db.session.get(GiftCertificate, line.gift_certificate_id)
            certificate.active = True
            _on_bill(
                bill,
                LedgerKind.gift_certificate_sold,
                line.amount,
                account=certificate.account,
                sale=bill.id,
            )
        elif line.kind == LineKind.package:
            package = db.session.get(ClientPackage, line.client_package_id)
            package.status = "active"
            _on_bill(
                bill,
                LedgerKind.package_sold,
                line.amount,
                account=package.account,
                sale=bill.id,
            )
        elif line.kind == LineKind.product:
            _on_bill(
                bill,
                LedgerKind.product_sold,
                line.amount,
                product=line.product_id,
                quantity=line.quantity,
                sale=bill.id,
            )
        elif line.kind == LineKind.gratuity:
            _on_bill(
                bill,
                LedgerKind.gratuity,
                line.amount,
                sale=bill.id,
            )


@transaction
def void_sale(bill: Sale) -> Sale:
    """Void an open bill opened by mistake; its appointment can then be billed again.

    Only a bill nothing has been paid on can go: a deposit applied to it
    waits for the next bill, and packages and gift certificates on it never
    take effect. A bill with other payments keeps them until they are refunded.
    """
    bill = _fresh(Sale, bill.id)
    if bill.status != SaleStatus.open:
        raise Problem(409, f"This bill is {bill.status.value}.", kind="sale-closed")
    if any(
        t.kind != TenderKind.deposit and t.status in ("applied", "pending") for t in bill.tenders
    ):
        raise Problem(
            409,
            "Payments have been made on this bill; refund them before voiding it.",
            kind="sale-has-payments",
        )
    for tender in bill.tenders:
        if tender.kind == TenderKind.deposit and tender.status == "applied":
            tender.status = "reversed"
            charge = db.session.get(BookingCharge, int(tender.reference.split(":")[1]))
            charge.status = "paid"
            _on_bill(
                bill,
                LedgerKind.deposit_unapplied,
                tender.amount,
                account=bill.account,
            )
    for line in bill.lines:
        if line.client_package_id:
            db.session.get(ClientPackage, line.client_package_id).status = "voided"
    bill.status = SaleStatus.voided
    return bill


# --- packages --------------------------------------------------------------------------------------


def package_sessions_left(package: ClientPackage) -> int:
    return package.sessions - ledger.count(package.account, LedgerKind.package_session_used)


@transaction
def close_package(clinic: Clinic, package: ClientPackage) -> StoreCredit | None:
    """Close a package; its unused part becomes what the clinic's package terms say (store credit)."""
    package = _fresh(ClientPackage, package.id)
    if package.status != "active":
        raise Problem(409, f"This package is {package.status}.", kind="package-not-active")
    terms = hooks_for(clinic).clinic_package_terms(clinic=clinic, package=package)
    left = ledger.balance(package.account, package.currency)
    package.status = "closed"
    if left.minor <= 0 or terms.unused_sessions != RefundOutcome.store_credit:
        return None
    ledger.record(
        LedgerKind.package_closed,
        left,
        client_id=package.client_id,
        account=package.account,
        clause=terms.clause.id,
        sessions_left=package_sessions_left(package),
    )
    service = db.session.get(Service, package.service_id)
    return issue_store_credit(
        clinic,
        package.client_id,
        left,
        reason="package_closed",
        clause=terms.clause,
        source=package.account,
        min_service_price=service.price,
    )


# --- refunds, returns and exchanges --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RefundItem:
    """What a refund, return or exchange request is about, as policy plugins see it.

    ``kind`` is the sale line's (``service``, ``product``, ``package``,
    ``gift_certificate``); ``condition`` what the client says of a product
    (``unopened``, ``opened``, ``defective``, ``allergic_reaction``);
    ``amount_paid`` what the request could return at most.
    """

    kind: str
    description: str
    amount_paid: Money
    sold_at: datetime
    quantity: int
    condition: str | None
    has_receipt: bool
    prescription: bool = False
    promotional: bool = False
    service_category: str | None = None
    #: Whether one of the clinic's providers has assessed the case (a corrective refund).
    assessed_by_provider: bool = False
    #: What the client or staff wrote (a documented reaction, the defect).
    note: str | None = None


#: Requests that hold part of a line: returned, or on their way to being returned.
HOLDING = (RefundStatus.awaiting_approval, RefundStatus.approved, RefundStatus.done)


def _returned_so_far(line: SaleLine, but: int | None = None) -> int:
    """Return what requests on ``line`` have returned or will return (except request ``but``).

    Called under the bill's lock, so two requests on one line see each other.
    """
    return sum(
        r.amount_minor
        for r in db.session.scalars(
            select(RefundRequest).where(
                RefundRequest.sale_line_id == line.id,
                RefundRequest.status.in_(HOLDING),
                RefundRequest.outcome != RefundOutcome.exchange.value,
                RefundRequest.id != (but or 0),
            )
        )
    )


def _item(line: SaleLine, bill: Sale, data: dict[str, Any]) -> RefundItem:
    quantity = data.get("quantity", 1)
    if quantity > line.quantity:
        raise _invalid("quantity", f"Only {line.quantity} were sold on this line.")
    share = line.amount_minor * quantity // line.quantity
    open_amount = max(0, min(share, line.amount_minor - _returned_so_far(line)))
    product = db.session.get(Product, line.product_id) if line.product_id else None
    package = (
        db.session.get(ClientPackage, line.client_package_id) if line.client_package_id else None
    )
    if package is not None:
        # Only the unused part of a package can come back, and only while it is open.
        unused = ledger.balance(package.account, package.currency).minor
        open_amount = min(open_amount, unused) if package.status == "active" else 0
    service = db.session.get(Service, line.service_id) if line.service_id else None
    assessor = data.get("assessed_by_provider_id")
    if assessor is not None and db.session.get(Provider, assessor) is None:
        raise _invalid("assessed_by_provider_id", "No such provider at this clinic.", 404)
    return RefundItem(
        kind=line.kind.value,
        description=line.description,
        amount_paid=Money(open_amount, line.currency),
        sold_at=clock.as_utc(bill.paid_at or bill.created_at),
        quantity=quantity,
        condition=data.get("condition"),
        has_receipt=data.get("has_receipt", True),
        prescription=bool(product and product.prescription),
        promotional=bool(package and package.promotional),
        service_category=service.category if service else None,
        assessed_by_provider=assessor is not None,
        note=data.get("note"),
    )


@transaction
def request_refund(clinic: Clinic, line_id: int, data: dict[str, Any], key: str) -> RefundRequest:
    """Ask the clinic's policy about a refund, return or exchange, and act on its decision.

    A decision that needs a manager waits for one; a repeated request (same
    key) returns the first; nothing is returned beyond what was paid.
    """
    line = db.session.get(SaleLine, line_id)
    if line is None:
        raise Problem(404, "No such sale line.")
    bill = _fresh(Sale, line.sale_id)  # one request on a bill at a time
    existing = db.session.scalar(select(RefundRequest).where(RefundRequest.idempotency_key == key))
    if existing is not None:
        return existing
    if bill.status != SaleStatus.paid:
        raise Problem(409, "Only a paid bill can be refunded.", kind="sale-not-paid")
    item = _item(line, bill, data)
    if item.amount_paid.minor <= 0:
        raise Problem(409, "This line has been refunded or returned already.", kind="refunded")
    decision: RefundDecision = hooks_for(clinic).clinic_refund_decision(
        clinic=clinic, item=item, reason=data["reason"], at=clock.now()
    )
    request = RefundRequest(
        sale_line_id=line.id,
        client_id=bill.client_id,
        reason=data["reason"],
        condition=item.condition,
        quantity=item.quantity,
        note=data.get("note"),
        outcome=decision.outcome.value,
        amount_minor=min(decision.amount, item.amount_paid).minor,
        currency=line.currency,
        clause_id=decision.clause.id,
        clause_text=decision.clause.text,
        refusal_reason=decision.refusal_reason,
        status=RefundStatus.awaiting_approval,
        decision={
            "outcome": decision.outcome.value,
            "amount": decision.amount.to_dict(),
            "requires_manager_approval": decision.requires_manager_approval,
            "clause": {"id": decision.clause.id, "text": decision.clause.text},
        },
        idempotency_key=key,
    )
    try:
        with db.session.begin_nested():
            db.session.add(request)
    except IntegrityError:
        raise Problem(
            422,
            "This Idempotency-Key was used for a different request.",
            kind="idempotency-key-reused",
        ) from None
    if decision.outcome == RefundOutcome.store_credit and bill.client_id is None:
        raise Problem(
            409,
            "Store credit belongs to a client, and this bill names none: add the client first.",
            kind="no-client",
        )
    if decision.outcome == RefundOutcome.refused:
        request.status = RefundStatus.refused
        request.decided_at = clock.now()
        _tell_client(bill, request)
    elif decision.requires_manager_approval:
        _tell_client(bill, request, waiting=True)
    else:
        request.status = RefundStatus.approved
        after_commit(functools.partial(_carry_out_approved, clinic, request.id))
    return request


#: How a refund request's outcome is put to the client.
OUTCOME_TOLD = {
    "refund": "{amount} will be refunded to the card you paid with.",
    "store_credit": "{amount} is given as store credit.",
    "exchange": "The product will be exchanged for the same product.",
    "refused": "We cannot refund or exchange this.",
}


def _tell_client(bill: Sale, request: RefundRequest, *, waiting: bool = False) -> None:
    """Email the client the decision on their request, with the clause it comes from."""
    if bill.client_id is None:
        return
    outcome = "refused" if request.status == RefundStatus.refused else request.outcome
    told = OUTCOME_TOLD[outcome].format(amount=request.amount.format())
    body = (
        f"Your request about {db.session.get(SaleLine, request.sale_line_id).description}: "
        + ("it is with the clinic's management for approval. " if waiting else "")
        + (f"If approved, {told[0].lower()}{told[1:]}" if waiting else told)
        + f' Why: "{request.clause_text}"'
    )
    outbox.queue(
        "sale_notice",
        client_id=bill.client_id,
        dedupe_key=f"refund-request:{request.id}:{'asked' if waiting else outcome}",
        subject="Your refund request",
        body=body,
        clause=request.clause_id,
    )


@transaction
def decide_refund(
    clinic: Clinic, request: RefundRequest, approve: bool, actor_user_id: int
) -> RefundRequest:
    """A manager approves or refuses a request waiting for them; approving twice refunds once."""
    request = _fresh_request(request.id)
    if not approve and request.status != RefundStatus.awaiting_approval:
        raise Problem(
            409,
            f"This request is {request.status.value} and can no longer be refused.",
            kind="already-decided",
        )
    if request.status == RefundStatus.awaiting_approval:
        request.decided_by_user_id = actor_user_id
        if not approve:
            request.status = RefundStatus.refused
            request.decided_at = clock.now()
            request.refusal_reason = "Not approved by management."
            _tell_client(
                db.session.get(Sale, db.session.get(SaleLine, request.sale_line_id).sale_id),
                request,
            )
            return request
        request.status = RefundStatus.approved
    # An approved request whose refund failed before is carried out again, under the same key.
    after_commit(functools.partial(_carry_out_approved, clinic, request.id))
    return request


@transaction
def _carry_out_approved(clinic: Clinic, request_id: int) -> RefundRequest:
    """Carry out an approved request once: run after its approval commits, then done under its lock.

    The refund's Stripe key is the request's, so a retry after a failure (or
    a lost answer) gets Stripe's first refund rather than a second one.
    """
    line = db.session.get(SaleLine, db.session.get(RefundRequest, request_id).sale_line_id)
    bill = _fresh(Sale, line.sale_id)  # the bill first, as a new request takes it
    request = _fresh_request(request_id)
    if request.status != RefundStatus.approved:
        return request  # another approval carried it out meanwhile
    try:
        _carry_out(clinic, request, line, bill)
    except stripe.StripeError as error:
        log.warning("refund request %s: Stripe refused or did not answer (%s)", request_id, error)
        raise Problem(
            502,
            "Stripe did not make the refund; the request stays approved. Approve it again to retry.",
            kind="stripe-error",
        ) from None
    _tell_client(bill, request)
    return request


def _fresh_request(request_id: int) -> RefundRequest:
    # A write takes the lock before the read, on SQLite too (where FOR UPDATE
    # is ignored): two managers approving at once decide one after the other.
    db.session.flush()
    db.session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request_id)
        .values(status=RefundRequest.status)
        .execution_options(synchronize_session=False)
    )
    return db.session.scalar(
        select(RefundRequest)
        .where(RefundRequest.id == request_id)
        .execution_options(populate_existing=True)
    )


def _carry_out(clinic: Clinic, request: RefundRequest, line: SaleLine, bill: Sale) -> None:
    left = line.amount_minor - _returned_so_far(line, but=request.id)
    if left <= 0 and request.outcome != RefundOutcome.exchange.value:
        request.status = RefundStatus.refused
        request.decided_at = clock.now()
        request.refusal_reason = "This line has been refunded or returned already."
        request.amount_minor = 0
        return
    amount = Money(min(request.amount_minor, left), line.currency)
    request.amount_minor = amount.minor
    package = None
    if line.kind == LineKind.package and request.outcome != RefundOutcome.exchange.value:
        package = _fresh(ClientPackage, line.client_package_id)
        unused = ledger.balance(package.account, package.currency)
        if package.status != "active" or unused.minor <= 0:
            request.status = RefundStatus.refused
            request.decided_at = clock.now()
            request.refusal_reason = "Nothing of this package is left unused."
            request.amount_minor = 0
            return
        amount = min(amount, unused)
        request.amount_minor = amount.minor
        package.status = "closed"
        _on_bill(
            bill,
            LedgerKind.package_closed,
            amount,
            account=package.account,
            clause=request.clause_id,
            sessions_left=package_sessions_left(package),
            sale=bill.id,
        )
    if request.outcome == RefundOutcome.refund.value and amount.minor > 0:
        request.stripe_refund_id = _refund_card(clinic, bill, request, amount)
    elif request.outcome == RefundOutcome.store_credit.value and amount.minor > 0:
        credit = issue_store_credit(
            clinic,
            bill.client_id,
            amount,
            reason="package_closed" if package is not None else f"{line.kind.value}_return",
            clause=Clause(request.clause_id, request.clause_text),
            source=package.account if package is not None else f"sale_line:{line.id}",
            min_service_price=(
                db.session.get(Service, package.service_id).price if package is not None else None
            ),
        )
        request.store_credit_id = credit.id
    elif request.outcome == RefundOutcome.exchange.value:
        _on_bill(
            bill,
            LedgerKind.product_exchanged,
            Money.zero(line.currency),
            product=line.product_id,
            quantity=request.quantity,
            clause=request.clause_id,
            sale=bill.id,
        )
    if line.kind == LineKind.product and request.outcome != RefundOutcome.exchange.value:
        _on_bill(
            bill,
            LedgerKind.product_returned,
            amount,
            product=line.product_id,
            quantity=request.quantity,
            outcome=request.outcome,
            clause=request.clause_id,
            sale=bill.id,
        )
    request.status = RefundStatus.done
    request.decided_at = clock.now()


def _refund_card(clinic: Clinic, bill: Sale, request: RefundRequest, amount: Money) -> str | None:
    """Refund to the cards that paid the bill, never more than they paid less what went back."""
    left = amount.minor
    refunded_ids = []
    for tender in bill.tenders:
        if left <= 0:
            break
        if tender.payment_id is None or tender.status != "applied":
            continue
        payment = payments.locked(tender.payment_id)
        room = payment.amount_minor - payments.refunded_so_far(payment)
        part = min(room, left)
        if part <= 0:
            continue
        refund = stripe_api.client().v1.refunds.create(
            {"payment_intent": payment.stripe_payment_intent_id, "amount": part},
            stripe_api.on(clinic, f"refund-request:{request.id}:{payment.id}"),
        )
        _on_bill(
            bill,
            LedgerKind.refund,
            Money(part, payment.currency),
            payment_id=payment.id,
            reference=refund.id,
            purpose="sale",
            clause=request.clause_id,
        )
        refunded_ids.append(refund.id)
        left -= part
    if left > 0:
        # Paid by gift certificate, financing or cash: a person returns the rest.
        payments.alert_clinic(
            clinic,
            f"refund-by-hand:{request.id}",
            f"Refund {Money(left, amount.currency).format()} by hand (bill {bill.id})",
            "The approved refund is more than the cards on this bill paid; "
            "return the rest the way it was paid.",
        )
    return ",".join(refunded_ids)[:64] or None


# Payments takes the money; what it means for a bill or as store credit is answered here.
payment_handlers.register(
    sale_paid=card_received, sale_failed=card_failed, issue_store_credit=issue_store_credit
)
