"""Payments taken through Stripe, the Stripe events applied, and the clinic's money ledger."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import StoredEnum, UtcTimestamp, db
from core.money import Money
from core.tenancy.scope import ClinicScoped


class PaymentStatus(enum.StrEnum):
    """Where a payment stands; it only ever moves forward (see ``FORWARD``)."""

    pending = "pending"  # created, waiting for the client's card
    requires_action = "requires_action"  # the card needs the client (3-D Secure)
    succeeded = "succeeded"
    failed = "failed"  # declined; a new attempt may follow
    canceled = "canceled"


#: How far along each status is: a late or repeated event never moves a payment back.
FORWARD = {
    PaymentStatus.pending: 0,
    PaymentStatus.requires_action: 1,
    PaymentStatus.failed: 1,
    PaymentStatus.succeeded: 2,
    PaymentStatus.canceled: 2,
}


class Payment(ClinicScoped, db.Model):
    """One PaymentIntent on the clinic's connected account, for one amount a booking owes."""

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("clinic_id", "idempotency_key"),
        UniqueConstraint("clinic_id", "stripe_payment_intent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"), index=True)
    booking_charge_id: Mapped[int | None] = mapped_column(ForeignKey("booking_charge.id"))
    sale_id: Mapped[int | None] = mapped_column(ForeignKey("sale.id"))  # a bill paid by card
    purpose: Mapped[str] = mapped_column(String(32))  # a ChargeKind: deposit, no_show_fee, ...
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentStatus] = mapped_column(
        StoredEnum(PaymentStatus, 20), default=PaymentStatus.pending
    )
    stripe_account: Mapped[str] = mapped_column(String(64))
    # Set once Stripe answers: a fee's row is written before the call, so a crash
    # between Stripe's success and our commit leaves the key to match the webhook by.
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(String(500))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class StripeEvent(ClinicScoped, db.Model):
    """A Stripe event applied to the clinic, kept so a repeat delivery changes nothing."""

    __tablename__ = "stripe_event"
    __table_args__ = (UniqueConstraint("clinic_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    outcome: Mapped[str] = mapped_column(String(200))


class LedgerKind(enum.StrEnum):
    """A kind of money movement the clinic's ledger records."""

    deposit_received = "deposit_received"
    prepayment_received = "prepayment_received"
    fee_charged = "fee_charged"
    deposit_forfeited = "deposit_forfeited"  # kept by the clinic under its policy
    deposit_moved = "deposit_moved"  # carried to the booking's new time
    deposit_applied = "deposit_applied"  # counted toward the bill at checkout
    deposit_unapplied = "deposit_unapplied"  # its bill voided: the deposit waits for the next
    refund = "refund"  # money returned to the client's card
    card_payment = "card_payment"  # a bill paid by card at checkout
    external_tender = "external_tender"  # paid outside Stripe: financing partner, cash
    product_sold = "product_sold"
    product_returned = "product_returned"
    product_exchanged = "product_exchanged"
    gratuity = "gratuity"
    store_credit_issued = "store_credit_issued"
    store_credit_used = "store_credit_used"
    store_credit_expired = "store_credit_expired"
    gift_certificate_sold = "gift_certificate_sold"
    gift_certificate_redeemed = "gift_certificate_redeemed"
    package_sold = "package_sold"
    package_session_used = "package_session_used"
    package_closed = "package_closed"  # unused sessions turned into store credit
    dispute_opened = "dispute_opened"  # funds withdrawn by the card network
    dispute_won = "dispute_won"  # funds returned
    dispute_lost = "dispute_lost"
    membership_payment = "membership_payment"  # a membership's invoice, paid


#: Once per Stripe object: a dispute is opened, won or lost once, whichever of Stripe's events
#: tells us first; a membership's invoice is paid once.
ONCE_PER_OBJECT = "kind IN ('dispute_opened', 'dispute_won', 'dispute_lost', 'membership_payment')"
#: The entries that record money received on a payment: at most one of each per payment.
RECEIPTS = "kind IN ('deposit_received', 'prepayment_received', 'fee_charged', 'card_payment')"


class LedgerEntry(ClinicScoped, db.Model):
    """One money movement, never changed or removed: every balance is derived from these.

    It names bookings, clients and payments by id without foreign keys: the
    ledger outlives the records it mentions (a client's records may be
    deleted when their retention ends; the books are not).
    """

    __tablename__ = "ledger_entry"
    # A payment is received once, whichever path (job, webhook, reconciliation) learns of it.
    __table_args__ = (
        Index("ix_ledger_entry_account", "clinic_id", "account"),
        Index(
            "uq_ledger_entry_once",
            "clinic_id",
            "reference",
            "kind",
            unique=True,
            sqlite_where=text(ONCE_PER_OBJECT),
            postgresql_where=text(ONCE_PER_OBJECT),
        ),
        Index(
            "uq_ledger_entry_receipt",
            "clinic_id",
            "payment_id",
            "kind",
            unique=True,
            sqlite_where=text(RECEIPTS),
            postgresql_where=text(RECEIPTS),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[LedgerKind] = mapped_column(StoredEnum(LedgerKind, 32))
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    booking_id: Mapped[int | None] = mapped_column(index=True)
    client_id: Mapped[int | None] = mapped_column(index=True)
    payment_id: Mapped[int | None]
    # The balance an entry moves, for what the clinic holds for a client:
    # "gift_certificate:<id>", "store_credit:<id>", "package:<id>", "sale:<id>".
    account: Mapped[str | None] = mapped_column(String(64))
    reference: Mapped[str | None] = mapped_column(String(120))  # the Stripe object
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)


class CardAgreement(ClinicScoped, db.Model):
    """A client's card saved for a booking's guarantee, with the policy they agreed to and when."""

    __tablename__ = "card_agreement"
    __table_args__ = (
        UniqueConstraint("clinic_id", "idempotency_key"),
        UniqueConstraint("clinic_id", "stripe_setup_intent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    # The exact clauses agreed to are the booking's policy version.
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_version.id"))
    agreed_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    stripe_account: Mapped[str] = mapped_column(String(64))
    stripe_setup_intent_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    status: Mapped[PaymentStatus] = mapped_column(
        StoredEnum(PaymentStatus, 20), default=PaymentStatus.pending
    )
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
