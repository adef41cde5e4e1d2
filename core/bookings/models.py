"""Bookings, their transitions with the policy decisions applied, amounts owed, and idempotency."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.catalog.models import Service
from core.clients.models import Client
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.hooks.decisions import BookingRequirements, DepositOutcome, requirements_from_record
from core.money import Money
from core.schedules.models import Provider
from core.tenancy.models import Location
from core.tenancy.scope import ClinicScoped


class BookingStatus(enum.StrEnum):
    """Where a booking is in its life."""

    held = "held"  # waiting for its guarantee (deposit, card); holds the slot until hold_expires_at
    confirmed = "confirmed"
    checked_in = "checked_in"
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"
    expired = "expired"  # a hold that lapsed


#: Statuses in which a booking occupies its provider's time.
OCCUPYING = (BookingStatus.held, BookingStatus.confirmed, BookingStatus.checked_in)


class PolicyVersion(ClinicScoped, Model):
    """The exact policy text a client accepted by booking, kept once per distinct version."""

    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("clinic_id", "digest"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    clauses: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class Booking(ClinicScoped, Model):
    """An appointment: who, what, with whom, where, when, and where it stands."""

    __tablename__ = "booking"
    __table_args__ = (
        Index("ix_booking_provider_time", "clinic_id", "provider_id", "starts_at"),
        Index("ix_booking_client", "clinic_id", "client_id", "starts_at"),
        # Finding lapsed holds must not scan a provider's whole history.
        Index("ix_booking_holds", "clinic_id", "status", "provider_id", "hold_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    resource_id: Mapped[int | None] = mapped_column(ForeignKey("resource.id"))
    starts_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    ends_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    # ends_at plus the service's buffer: how long the provider is taken.
    blocks_until: Mapped[datetime] = mapped_column(UtcTimestamp())
    status: Mapped[BookingStatus] = mapped_column(StoredEnum(BookingStatus, 16))
    hold_expires_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    source: Mapped[str] = mapped_column(String(16))  # online, staff
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    requirements: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_version.id"))
    policy_accepted_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    guarantee_method: Mapped[str | None] = mapped_column(String(32))
    # A late cancellation or no-show under the policy: counted for prepayment rules.
    policy_incident: Mapped[bool] = mapped_column(default=False)
    manage_nonce: Mapped[str] = mapped_column(String(32))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    client: Mapped[Client] = relationship()
    service: Mapped[Service] = relationship()
    provider: Mapped[Provider] = relationship()
    location: Mapped[Location] = relationship()
    events: Mapped[list[BookingEvent]] = relationship(order_by="BookingEvent.id")
    charges: Mapped[list[BookingCharge]] = relationship(order_by="BookingCharge.id")
    # Written only by services.accept_policy, never through the booking.
    policy_acceptances: Mapped[list[PolicyAcceptance]] = relationship(
        order_by="PolicyAcceptance.id", viewonly=True
    )

    @property
    def price(self) -> Money:
        return Money(self.price_minor, self.currency)

    @property
    def needs(self) -> BookingRequirements:
        """What the policy said this booking needs before it is confirmed, as the typed decision."""
        return requirements_from_record(self.requirements or {})

    @property
    def deposit_outcome(self) -> DepositOutcome | None:
        """What the policy decided for money paid up front, once the booking was cancelled or moved."""
        value = (self.requirements or {}).get("deposit_outcome")
        return DepositOutcome(value) if value else None

    def note(self, **facts: Any) -> None:
        """Keep what became of the booking's requirements (a deposit's fate, the certificate holding it)."""
        self.requirements = {
            **(self.requirements or {}),
            **{k: v.value if isinstance(v, enum.Enum) else v for k, v in facts.items()},
        }

    @property
    def deposit_paid(self) -> Money | None:
        """Return what was paid up front on this booking (deposit or prepayment), if any.

        Policy hooks read it to decide the fate of that money.
        """
        paid = sum(
            c.amount_minor
            for c in self.charges
            if c.kind in ("deposit", "prepayment") and c.status == ChargeStatus.paid
        )
        return Money(paid, self.currency) if paid else None


class BookingEvent(ClinicScoped, Model):
    """One transition of a booking, with the policy decision it applied and its clause."""

    __tablename__ = "booking_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    actor: Mapped[str] = mapped_column(String(32))  # client, staff, system
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    clause_id: Mapped[str | None] = mapped_column(String(200))
    clause_text: Mapped[str | None] = mapped_column(Text)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_version.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PolicyAcceptance(ClinicScoped, Model):
    """A client's explicit acceptance of a booking's policy clauses: the evidence for a disputed fee.

    Written once and never changed: which stored policy version, which of its
    clauses, when, from which address and browser, and through which channel.
    """

    __tablename__ = "policy_acceptance"

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"), index=True)
    policy_version_id: Mapped[int] = mapped_column(ForeignKey("policy_version.id"))
    clause_ids: Mapped[list[str]] = mapped_column(JSON)
    accepted_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    channel: Mapped[str] = mapped_column(String(20))  # online, self_service, staff
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class ChargeKind(enum.StrEnum):
    """What a booking may owe."""

    deposit = "deposit"
    prepayment = "prepayment"
    late_cancellation_fee = "late_cancellation_fee"
    no_show_fee = "no_show_fee"
    late_arrival_fee = "late_arrival_fee"


class ChargeStatus(enum.StrEnum):
    """Where a booking's charge stands (stored as its value)."""

    owed = "owed"
    paid = "paid"
    waived = "waived"  # not owed after all (the booking was cancelled before it was paid)
    moved = "moved"  # carried to the booking it was rescheduled to
    declined = "declined"  # the card refused it, or Stripe would not charge it
    no_card = "no_card"  # owed, with no card on file to charge
    forfeited = "forfeited"  # kept by the clinic, as the policy says
    credited = "credited"  # turned into the client's store credit
    refund_due = "refund_due"  # to be refunded by hand: it was not paid online
    refunding = "refunding"  # claimed for a refund Stripe has not yet confirmed
    refunded = "refunded"
    applied = "applied"  # counted toward the visit's bill at checkout


class BookingCharge(ClinicScoped, Model):
    """An amount a booking owes, with the clause that makes it owed; paid later by payments."""

    __tablename__ = "booking_charge"
    __table_args__ = (UniqueConstraint("clinic_id", "booking_id", "kind", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("booking.id"))
    kind: Mapped[str] = mapped_column(String(32))
    # Distinguishes two charges of one kind (a second late-arrival reschedule).
    reference: Mapped[str] = mapped_column(String(64), default="")
    amount_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=ChargeStatus.owed)  # a ChargeStatus
    clause_id: Mapped[str | None] = mapped_column(String(200))
    clause_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    @property
    def amount(self) -> Money:
        return Money(self.amount_minor, self.currency)
