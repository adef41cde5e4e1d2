"""Clinics (the tenants of the platform) and their locations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.kept import part_of_setup
from core.tenancy.scope import ClinicScoped


class ClinicStatus(enum.StrEnum):
    """Whether a clinic is open for business on the platform."""

    active = "active"
    #: Created through the operator API and not yet open: its booking pages stay closed
    #: until nothing stands between it and taking bookings (its readiness).
    onboarding = "onboarding"
    suspended = "suspended"
    #: Closed for good: its records are kept for their retention periods, nothing else runs.
    retired = "retired"


#: How a clinic's evidence answering a card dispute goes to Stripe: held for a manager to
#: review and submit (the default), or submitted as soon as it is assembled.
DISPUTE_EVIDENCE_CHOICES = ("review", "submit")


@part_of_setup(ignoring=("updated_at",), clinic_key="id")
class Clinic(Model):
    """A clinic using the platform: the unit of tenancy.

    Not clinic-scoped itself, since it is what a scope is entered for; its
    rows hold nothing private (names, contact details, plugin settings).
    """

    __tablename__ = "clinic"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    country: Mapped[str] = mapped_column(String(2))
    # The locale its file chose (``en_GB`` at a US clinic run by British staff), if any.
    chosen_locale: Mapped[str | None] = mapped_column("locale", String(16))
    status: Mapped[ClinicStatus] = mapped_column(
        StoredEnum(ClinicStatus, 16),
        default=ClinicStatus.active,
    )
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    privacy_email: Mapped[str | None] = mapped_column(String(254))
    website: Mapped[str | None] = mapped_column(String(500))
    idle_timeout_minutes: Mapped[int] = mapped_column(default=15)
    enabled_plugins: Mapped[list[str]] = mapped_column(JSON, default=list)
    plugin_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Hold time, slot step, notice and reminders, validated by the tenants/ loader.
    booking_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_file: Mapped[str | None] = mapped_column(String(500))
    # The clinic's own Stripe account (Connect, direct charges); None: no online payments.
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # What Stripe last said of the account (account.updated), and when it said it.
    stripe_charges_enabled: Mapped[bool | None]
    #: Goes up when the clinic's Stripe account is disconnected: the next onboarding makes a new one.
    stripe_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The platform's fee on each charge, in basis points (250 = 2.5%), set by the operator.
    platform_fee_bps: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Accounts the clinic took payments on before: Stripe's events about them still reach it.
    former_stripe_accounts: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    #: How evidence answering a card dispute goes to Stripe: ``review`` holds it for a manager,
    #: ``submit`` sends it as soon as it is assembled.
    dispute_evidence: Mapped[str] = mapped_column(
        String(8), default="review", server_default="review"
    )
    stripe_account_updated_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    #: Goes up with every change to the clinic's setup (staff access, catalog, webhook
    #: endpoints): what a server kept in memory of it is used only while this stands.
    setup_version: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    locations: Mapped[list[Location]] = relationship(
        back_populates="clinic", order_by="Location.id"
    )

    @property
    def locale(self) -> str:
        """How the clinic's clients read money and dates: as its tenants/ file says, else
        English as written in its country.

        An Auckland clinic's NZ$40.00 is "$40.00" and its dates run day, month, year.
        """
        return self.chosen_locale or f"en_{self.country}"

    @property
    def is_active(self) -> bool:
        """Return whether the clinic is open: it serves staff and clients."""
        return self.status == ClinicStatus.active

    @property
    def staff_may_enter(self) -> bool:
        """Return whether the clinic's staff may work in it (open, or still being set up)."""
        return self.status in (ClinicStatus.active, ClinicStatus.onboarding)

    def settings_for(self, plugin_name: str) -> dict[str, Any]:
        """Return the validated settings of ``plugin_name`` from the clinic's tenants/ file.

        Plugins call this from their hooks to read their numbers (window
        hours, fee table, validity months) instead of hard-coding them.
        """
        return dict((self.plugin_settings or {}).get(plugin_name, {}))

    def __repr__(self) -> str:
        return f"<Clinic {self.slug}>"


class ClinicRevision(ClinicScoped, Model):
    """One kept version of a clinic's document: its rules, settings, locations and services.

    Written each time the document changes, through the operator API or a
    tenants/ file, with the whole document as it then was, where it came from
    and who made the change. Never changed afterwards.
    """

    __tablename__ = "clinic_revision"
    __table_args__ = (UniqueConstraint("clinic_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int]
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``"api"``, or the tenants/ file's name.
    source: Mapped[str] = mapped_column(String(200))
    changed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    #: The clinic's owner who read and accepted this version of the clinic's rules, and when.
    accepted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    accepted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


@part_of_setup()
class Location(ClinicScoped, Model):
    """A place where a clinic sees clients, with its own address, phone and timezone."""

    __tablename__ = "location"
    __table_args__ = (UniqueConstraint("clinic_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    phone: Mapped[str | None] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    clinic: Mapped[Clinic] = relationship(back_populates="locations")

    def __repr__(self) -> str:
        return f"<Location {self.slug} of clinic {self.clinic_id}>"
