"""Payments taken through Stripe, the Stripe events applied, and the clinic's money ledger."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
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


class Payment(ClinicScoped, Model):
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


class StripeEvent(ClinicScoped, Model):
    """A Stripe event applied to the clinic, kept so a repeat delivery changes nothing."""

    __tablename__ = "stripe_event"
    __table_args__ = (UniqueConstraint("clinic_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    outcome: Mapped[str] = mapped_column(String(200))


class CardAgreement(ClinicScoped, Model):
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


class EvidenceStatus(enum.StrEnum):
    """Where the evidence answering a dispute stands."""

    held = "held"  # assembled, waiting for a manager to read and submit it
    queued = "queued"  # the clinic submits without review: the next job run sends it
    submitting = "submitting"  # claimed and sent (or about to be): retried under the same key
    submitted = "submitted"
    no_evidence = "no_evidence"  # not a booking's charge: nothing stored speaks to it
    lapsed = "lapsed"  # the dispute closed, or its due date passed, before anything was sent
    refused = "refused"  # Stripe would not take it (see last_error)


#: Evidence that may still be sent to Stripe.
UNSENT = (EvidenceStatus.held, EvidenceStatus.queued, EvidenceStatus.submitting)


class Dispute(ClinicScoped, Model):
    """A card dispute on one of the clinic's payments, and the evidence that answers it."""

    __tablename__ = "dispute"
    __table_args__ = (UniqueConstraint("clinic_id", "stripe_dispute_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(64))
    # The account the disputed charge was made on, which the clinic may since have replaced.
    stripe_account: Mapped[str] = mapped_column(String(64))
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64))
    # By id, without foreign keys, as the ledger names them: a dispute outlives a client's
    # bookings and payments when their records are erased (its evidence goes with them).
    payment_id: Mapped[int | None]
    booking_id: Mapped[int | None] = mapped_column(index=True)
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(
        String(32)
    )  # Stripe's: needs_response, under_review, won ...
    due_by: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    evidence_status: Mapped[EvidenceStatus] = mapped_column(StoredEnum(EvidenceStatus, 16))
    submitted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    # None with a submitted_at: the platform sent it, as the clinic's setting asks.
    submitted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    outcome: Mapped[str | None] = mapped_column(String(16))  # won, lost
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)
