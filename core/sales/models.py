"""What the clinic sells and holds for clients: sales and their tenders, products, packages,
gift certificates, store credit, and refund requests.

Balances (what a certificate, a credit or a package has left) are never
stored here: they are derived from the ledger (``core.ledger``).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.money import Money
from core.tenancy.scope import ClinicScoped


class Product(ClinicScoped, Model):
    """A retail product the clinic sells; prescription products are never returned."""

    __tablename__ = "product"
    __table_args__ = (UniqueConstraint("clinic_id", "sku"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    prescription: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def price(self) -> Money:
        return Money(self.price_minor, self.currency)


class SaleStatus(enum.StrEnum):
    """Where a sale stands: open until its tenders cover the total."""

    open = "open"
    paid = "paid"
    voided = "voided"


LIVE_BILL = "booking_id IS NOT NULL AND status != 'voided'"


class TenderStatus(enum.StrEnum):
    """Where a tender toward a bill stands (stored as its value)."""

    applied = "applied"
    pending = "pending"  # a card payment Stripe has not answered yet
    failed = "failed"
    credited = "credited"  # a deposit given back as store credit instead
    reversed = "reversed"  # undone with its voided bill


class PackageStatus(enum.StrEnum):
    """Where a client's package stands (stored as its value)."""

    unpaid = "unpaid"
    active = "active"
    closed = "closed"
    voided = "voided"


class Sale(ClinicScoped, Model):
    """One bill: a visit's treatment, products, packages or gift certificates, and how it is paid."""

    __tablename__ = "sale"
    __table_args__ = (
        # One open or paid bill per appointment.
        Index(
            "uq_sale_booking",
            "clinic_id",
            "booking_id",
            unique=True,
            sqlite_where=text(LIVE_BILL),
            postgresql_where=text(LIVE_BILL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("client.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"))
    status: Mapped[SaleStatus] = mapped_column(StoredEnum(SaleStatus, 16), default=SaleStatus.open)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(default=0)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    paid_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    # Touched to lock the sale while a tender is applied.
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    lines: Mapped[list[SaleLine]] = relationship(order_by="SaleLine.id")
    tenders: Mapped[list[Tender]] = relationship(order_by="Tender.id")

    @property
    def total(self) -> Money:
        return Money(self.total_minor, self.currency)

    @property
    def account(self) -> str:
        return f"sale:{self.id}"


class LineKind(enum.StrEnum):
    """What a line of a sale is for."""

    service = "service"
    product = "product"
    package = "package"
    gift_certificate = "gift_certificate"
    gratuity = "gratuity"


class SaleLine(ClinicScoped, Model):
    """One thing sold on a sale, at the price it was sold for."""

    __tablename__ = "sale_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sale.id"), index=True)
    kind: Mapped[LineKind] = mapped_column(StoredEnum(LineKind, 20))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(default=1)
    unit_minor: Mapped[int]
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("service.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"))
    client_package_id: Mapped[int | None] = mapped_column(ForeignKey("client_package.id"))
    gift_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("gift_certificate.id"))

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class TenderKind(enum.StrEnum):
    """A way a sale is paid."""

    deposit = "deposit"  # the booking's deposit, paid online before
    card = "card"  # a card presented now, through Stripe.js
    card_on_file = "card_on_file"  # the client's saved card, charged now
    gift_certificate = "gift_certificate"
    store_credit = "store_credit"
    package_session = "package_session"
    external = "external"  # a financing partner, cash or check, with its reference


class Tender(ClinicScoped, Model):
    """One payment toward a sale."""

    __tablename__ = "tender"
    __table_args__ = (UniqueConstraint("clinic_id", "sale_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sale.id"), index=True)
    kind: Mapped[TenderKind] = mapped_column(StoredEnum(TenderKind, 20))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=TenderStatus.applied)
    partner: Mapped[str | None] = mapped_column(String(32))  # cherry, carecredit, cash, check
    reference: Mapped[str | None] = mapped_column(String(120))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    gift_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("gift_certificate.id"))
    store_credit_id: Mapped[int | None] = mapped_column(ForeignKey("store_credit.id"))
    client_package_id: Mapped[int | None] = mapped_column(ForeignKey("client_package.id"))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class GiftCertificate(ClinicScoped, Model):
    """A gift certificate of any amount; its code is shown once and kept only as a digest."""

    __tablename__ = "gift_certificate"
    __table_args__ = (UniqueConstraint("clinic_id", "code_digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64))
    code_hint: Mapped[str] = mapped_column(String(8))  # the last characters, to tell them apart
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=False)  # once the sale is paid
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("sale.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    # Touched to lock the certificate while it is redeemed.
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    @property
    def account(self) -> str:
        return f"gift_certificate:{self.id}"


class StoreCredit(ClinicScoped, Model):
    """Credit a policy decision gave a client, with its clause, expiry and what it may buy."""

    __tablename__ = "store_credit"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(64))  # package_closed, product_return, refund
    clause_id: Mapped[str | None] = mapped_column(String(200))
    clause_text: Mapped[str | None] = mapped_column(Text)
    terms_clause_id: Mapped[str | None] = mapped_column(String(200))
    terms_clause_text: Mapped[str | None] = mapped_column(Text)
    expires_on: Mapped[date | None]
    services_only: Mapped[bool] = mapped_column(default=False)
    # Usable only on a service priced at least this (JT: "equal or greater value").
    min_service_price_minor: Mapped[int | None]
    source: Mapped[str | None] = mapped_column(String(64))  # what it came from: "package:3"
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    @property
    def account(self) -> str:
        return f"store_credit:{self.id}"


class ClientPackage(ClinicScoped, Model):
    """A package of sessions of one service a client bought; used one session at a time."""

    __tablename__ = "client_package"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    name: Mapped[str] = mapped_column(String(200))
    sessions: Mapped[int]
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    promotional: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=PackageStatus.unpaid)
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("sale.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    @property
    def account(self) -> str:
        return f"package:{self.id}"

    def session_value(self, used: int) -> Money:
        """Return the value of the next session, spreading the price's cents over the sessions."""
        base, extra = divmod(self.price_minor, self.sessions)
        return Money(base + (1 if used < extra else 0), self.currency)


class RefundStatus(enum.StrEnum):
    """Where a refund, return or exchange request stands."""

    awaiting_approval = "awaiting_approval"
    approved = "approved"  # to be carried out; a failed attempt is retried under the same key
    done = "done"
    refused = "refused"


class RefundRequest(ClinicScoped, Model):
    """A client's request for a refund, return or exchange, with the policy's decision and clause."""

    __tablename__ = "refund_request"
    __table_args__ = (UniqueConstraint("clinic_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sale_line_id: Mapped[int] = mapped_column(ForeignKey("sale_line.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("client.id"))
    reason: Mapped[str] = mapped_column(String(32))
    condition: Mapped[str | None] = mapped_column(String(32))
    quantity: Mapped[int] = mapped_column(default=1)
    note: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))  # refund, store_credit, exchange, refused
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    clause_id: Mapped[str] = mapped_column(String(200))
    clause_text: Mapped[str] = mapped_column(Text)
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[RefundStatus] = mapped_column(StoredEnum(RefundStatus, 20))
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    store_credit_id: Mapped[int | None] = mapped_column(ForeignKey("store_credit.id"))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    requested_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class MembershipPlan(ClinicScoped, Model):
    """A membership the clinic offers: a recurring price on a Stripe plan of its account."""

    __tablename__ = "membership_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(8))  # month, year
    benefits: Mapped[str | None] = mapped_column(Text)
    stripe_plan_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def price(self) -> Money:
        return Money(self.amount_minor, self.currency)


class ClientMembership(ClinicScoped, Model):
    """A client's membership, billed by a Stripe subscription; Stripe's word sets its status."""

    __tablename__ = "client_membership"
    __table_args__ = (UniqueConstraint("clinic_id", "stripe_subscription_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("membership_plan.id"))
    # incomplete, active, past_due, unpaid, canceled, incomplete_expired (Stripe's words)
    status: Mapped[str] = mapped_column(String(20), default="incomplete")
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(64))
    current_period_end: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    canceled_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )
