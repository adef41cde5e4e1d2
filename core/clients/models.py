"""Client records. Health fields are encrypted columns; contact fields stay searchable."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.encryption import EncryptedJSON, EncryptedText
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class Channel(enum.StrEnum):
    """How a client prefers to be reached."""

    email = "email"
    sms = "sms"
    phone = "phone"
    none = "none"


class Client(ClinicScoped, Model):
    """A person a clinic serves. Someone visiting two clinics is two unrelated records.

    Name, contact and address are plain so staff can search them; anything
    about the client's health lives in the encrypted records hanging off it.
    """

    __tablename__ = "client"
    __table_args__ = (
        Index("ix_client_clinic_last", "clinic_id", "search_last"),
        Index("ix_client_clinic_first", "clinic_id", "search_first"),
        Index("ix_client_clinic_preferred", "clinic_id", "search_preferred"),
        Index("ix_client_clinic_email", "clinic_id", "email"),
        Index("ix_client_clinic_phone", "clinic_id", "phone"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    legal_first_name: Mapped[str] = mapped_column(String(100))
    legal_last_name: Mapped[str] = mapped_column(String(100))
    preferred_name: Mapped[str | None] = mapped_column(String(100))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(50))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    street: Mapped[str | None] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    region: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(2))
    emergency_contact_name: Mapped[str | None] = mapped_column(String(200))
    emergency_contact_phone: Mapped[str | None] = mapped_column(String(32))
    emergency_contact_relationship: Mapped[str | None] = mapped_column(String(100))
    preferred_location_id: Mapped[int | None] = mapped_column(ForeignKey("location.id"))
    preferred_channel: Mapped[Channel] = mapped_column(
        StoredEnum(Channel, 16), default=Channel.email
    )
    language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Lower-cased, accent-free copies of the names, for indexed prefix search.
    # The client as a customer on the clinic's Stripe account (cards live there).
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64))
    # The card saved when they paid online, for fees the clinic's policy makes due.
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(64))
    card_expires_on: Mapped[date | None] = mapped_column(Date)
    search_first: Mapped[str] = mapped_column(String(100))
    search_last: Mapped[str] = mapped_column(String(100))
    search_preferred: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )

    guardians: Mapped[list[Guardian]] = relationship(
        back_populates="client", order_by="Guardian.id"
    )

    @property
    def display_name(self) -> str:
        """Return the name to greet the client by."""
        first = self.preferred_name or self.legal_first_name
        return f"{first} {self.legal_last_name}"


class Guardian(ClinicScoped, Model):
    """A parent or legal guardian of a client who is a minor."""

    __tablename__ = "guardian"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    relationship_to_client: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    client: Mapped[Client] = relationship(back_populates="guardians")


class HealthIntake(ClinicScoped, Model):
    """One version of a client's health intake. A change adds a version; none is overwritten."""

    __tablename__ = "health_intake"
    __table_args__ = (UniqueConstraint("clinic_id", "client_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    version: Mapped[int]
    answers: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON("health_intake.answers"))
    change_reason: Mapped[str | None] = mapped_column(EncryptedText("health_intake.change_reason"))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class NoteKind(enum.StrEnum):
    """What a file note is about (JP MediSpa's "file notes about your skin, your treatment, medical conditions and your leisure activities")."""

    skin = "skin"
    treatment = "treatment"
    medical_condition = "medical_condition"
    leisure = "leisure"
    general = "general"


class ClinicalNote(ClinicScoped, Model):
    """A file note. A correction is a new note that amends it; the original stays."""

    __tablename__ = "clinical_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    kind: Mapped[NoteKind] = mapped_column(StoredEnum(NoteKind))
    body: Mapped[str] = mapped_column(EncryptedText("clinical_note.body"))
    amends_note_id: Mapped[int | None] = mapped_column(ForeignKey("clinical_note.id"))
    author_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class ProductSetting(enum.StrEnum):
    """Where a product was used."""

    in_clinic = "in_clinic"
    at_home = "at_home"


class ProductUse(ClinicScoped, Model):
    """A product used on or by the client, in the clinic or at home."""

    __tablename__ = "product_use"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    product: Mapped[str] = mapped_column(EncryptedText("product_use.product"))
    setting: Mapped[ProductSetting] = mapped_column(StoredEnum(ProductSetting, 16))
    details: Mapped[str | None] = mapped_column(EncryptedText("product_use.details"))
    started_on: Mapped[date | None] = mapped_column(Date)
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class Severity(enum.StrEnum):
    """How bad an adverse reaction was."""

    mild = "mild"
    moderate = "moderate"
    severe = "severe"


class AdverseReaction(ClinicScoped, Model):
    """A reaction the client had, linked to the product or service that caused it."""

    __tablename__ = "adverse_reaction"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    product_use_id: Mapped[int | None] = mapped_column(ForeignKey("product_use.id"))
    service: Mapped[str | None] = mapped_column(EncryptedText("adverse_reaction.service"))
    description: Mapped[str] = mapped_column(EncryptedText("adverse_reaction.description"))
    severity: Mapped[Severity] = mapped_column(StoredEnum(Severity, 16))
    occurred_on: Mapped[date]
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class ConsentKind(enum.StrEnum):
    """What a consent is for; each is given and revoked on its own."""

    treatment = "treatment"
    clinical_photos = "clinical_photos"
    marketing_photos = "marketing_photos"
    transactional_sms = "transactional_sms"
    marketing_sms = "marketing_sms"
    marketing_email = "marketing_email"
    parental = "parental"


class ConsentMethod(enum.StrEnum):
    """How a consent was captured."""

    written = "written"
    electronic = "electronic"
    verbal = "verbal"
    sms_keyword = "sms_keyword"


class Consent(ClinicScoped, Model):
    """A consent as given: the exact text and version shown, when, how, and the evidence."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_clinic_client_kind", "clinic_id", "client_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    kind: Mapped[ConsentKind] = mapped_column(StoredEnum(ConsentKind))
    text: Mapped[str] = mapped_column(Text)
    text_version: Mapped[str] = mapped_column(String(50))
    given_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    method: Mapped[ConsentMethod] = mapped_column(StoredEnum(ConsentMethod, 16))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phone: Mapped[str | None] = mapped_column(String(32))
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardian.id"))
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    revoked_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    revocation_method: Mapped[str | None] = mapped_column(String(32))
    revoked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    @property
    def active(self) -> bool:
        """Return whether the consent stands (given and not revoked)."""
        return self.revoked_at is None


class PhotoKind(enum.StrEnum):
    """When in a treatment a photo was taken."""

    before = "before"
    after = "after"
    progress = "progress"


class Photo(ClinicScoped, Model):
    """A clinical photo; the image itself is encrypted in the photo store."""

    __tablename__ = "photo"
    __table_args__ = (UniqueConstraint("clinic_id", "storage_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    kind: Mapped[PhotoKind] = mapped_column(StoredEnum(PhotoKind, 16))
    consent_id: Mapped[int] = mapped_column(ForeignKey("consent.id"))
    caption: Mapped[str | None] = mapped_column(EncryptedText("photo.caption"))
    storage_key: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(50))
    byte_size: Mapped[int]
    width: Mapped[int]
    height: Mapped[int]
    taken_on: Mapped[date | None] = mapped_column(Date)
    # Asked for at upload; it only counts while marketing-photo consent stands.
    marketing_use: Mapped[bool] = mapped_column(default=False)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class EmergencyAccess(ClinicScoped, Model):
    """Break-glass access: a staff member's time-limited look at one client's health data."""

    __tablename__ = "emergency_access"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    reason: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    reviewed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    review_note: Mapped[str | None] = mapped_column(Text)
