"""Bills: opening one for a visit or a purchase, what is due, settling it once paid, voiding it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core import clock, ledger
from core.bookings.models import Booking, BookingCharge, BookingStatus, ChargeKind, ChargeStatus
from core.catalog.models import Service
from core.clients.models import Client
from core.errors import NotFound, Refused
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.sales.models import (
    ClientPackage,
    GiftCertificate,
    LineKind,
    PackageStatus,
    Product,
    Sale,
    SaleLine,
    SaleStatus,
    Tender,
    TenderKind,
    TenderStatus,
)
from core.sales.services.common import _fresh, _invalid, _on_bill
from core.sales.services.gift_certificates import _code_digest, new_code
from core.schedules.models import Provider
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction

#: A bill for an appointment is settled on the day, once the client is here.
SETTLED_ON_THE_DAY = (BookingStatus.checked_in, BookingStatus.completed)


def sale(sale_id: int) -> Sale:
    found = db.session.get(Sale, sale_id)
    if found is None:
        raise NotFound("No such sale.")
    return found


def paid_toward(bill: Sale) -> Money:
    """Return what the bill's applied tenders add up to."""
    return Money(
        sum(t.amount_minor for t in bill.tenders if t.status == TenderStatus.applied), bill.currency
    )


def balance_due(bill: Sale) -> Money:
    return bill.total - paid_toward(bill)


def open_to_pay(bill: Sale) -> Money:
    """Return what a new tender may take: the balance, less card payments still in progress."""
    pending = sum(t.amount_minor for t in bill.tenders if t.status == TenderStatus.pending)
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
            raise _invalid("booking_id", "No such booking.", NotFound)
        if booking.status not in SETTLED_ON_THE_DAY:
            raise _invalid(
                "booking_id",
                f"A booking is paid on the day of treatment, once checked in; "
                f"this one is {booking.status.value}.",
                Refused,
                kind="not-on-the-day",
            )
        if db.session.scalar(
            select(Sale.id).where(Sale.booking_id == booking.id, Sale.status != SaleStatus.voided)
        ):
            raise _invalid("booking_id", "This booking has a bill already.", Refused)
        client_id = booking.client_id
    if client_id is not None and db.session.get(Client, client_id) is None:
        raise _invalid("client_id", "No such client.", NotFound)
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
        raise _invalid("booking_id", "This booking has a bill already.", Refused) from None
    if booking is not None:
        service = db.session.get_one(Service, booking.service_id)
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
            raise _invalid(f"{field}.product_id", "No such product.", NotFound)
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
            raise _invalid(f"{field}.service_id", "No such service.", NotFound)
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
    service = db.session.get_one(Service, booking.service_id)
    provider = db.session.get_one(Provider, booking.provider_id)
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
            BookingCharge.status == ChargeStatus.paid,
        )
    ):
        amount = Money(min(charge.amount_minor, balance_due(bill).minor), bill.currency)
        charge.status = ChargeStatus.applied
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


def _settle_if_paid(clinic: Clinic, bill: Sale) -> None:
    """Once the tenders cover the bill, let what it sold take effect: once, as the bill is locked."""
    if bill.status != SaleStatus.open or balance_due(bill).minor > 0:
        return
    bill.status = SaleStatus.paid
    bill.paid_at = clock.now()
    for line in bill.lines:
        if line.kind == LineKind.gift_certificate:
            certificate = db.session.get_one(GiftCertificate, line.gift_certificate_id)
            certificate.active = True
            _on_bill(
                bill,
                LedgerKind.gift_certificate_sold,
                line.amount,
                account=certificate.account,
                sale=bill.id,
            )
        elif line.kind == LineKind.package:
            package = db.session.get_one(ClientPackage, line.client_package_id)
            package.status = PackageStatus.active
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
        raise Refused(f"This bill is {bill.status.value}.", kind="sale-closed")
    if any(
        t.kind != TenderKind.deposit and t.status in (TenderStatus.applied, TenderStatus.pending)
        for t in bill.tenders
    ):
        raise Refused(
            "Payments have been made on this bill; refund them before voiding it.",
            kind="sale-has-payments",
        )
    for tender in bill.tenders:
        if tender.kind == TenderKind.deposit and tender.status == TenderStatus.applied:
            tender.status = TenderStatus.reversed
            charge = db.session.get_one(BookingCharge, int(tender.reference.split(":")[1]))
            charge.status = ChargeStatus.paid
            _on_bill(
                bill,
                LedgerKind.deposit_unapplied,
                tender.amount,
                account=bill.account,
            )
    for line in bill.lines:
        if line.client_package_id:
            db.session.get_one(ClientPackage, line.client_package_id).status = PackageStatus.voided
    bill.status = SaleStatus.voided
    return bill
