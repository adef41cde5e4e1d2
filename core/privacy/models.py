"""Privacy requests, retention holds, SMS opt-out reviews, breach incidents and data recipients."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class RequestStatus(enum.StrEnum):
    """Where a privacy request stands."""

    received = "received"  # acknowledged, identity not yet verified
    verified = "verified"  # identity (and any representative's authority) verified
    completed = "completed"
    denied = "denied"  # with the reason, e.g. identity not verified by the deadline
    withdrawn = "withdrawn"


OPEN_STATUSES = (RequestStatus.received, RequestStatus.verified)


class PrivacyRequest(ClinicScoped, Model):
    """A client's (or their representative's) request to exercise a privacy right.

    The deadline comes from the clinic's jurisdiction plugins (the earliest
    wins) and is stored with the clause that set it, so the queue and the
    client see the same date and why.
    """

    __tablename__ = "privacy_request"
    __table_args__ = (Index("ix_privacy_request_queue", "clinic_id", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # a PrivacyRight value
    status: Mapped[RequestStatus] = mapped_column(
        StoredEnum(RequestStatus, 16), default=RequestStatus.received
    )
    client_id: Mapped[int | None] = mapped_column(ForeignKey("client.id"), index=True)
    # Who asked, as they told us: matched to a client when identity is verified.
    requester_name: Mapped[str] = mapped_column(String(200))
    requester_email: Mapped[str | None] = mapped_column(String(254))
    requester_phone: Mapped[str | None] = mapped_column(String(32))
    requester_date_of_birth: Mapped[date | None] = mapped_column(Date)
    # A representative (a parent for a child, an authorised agent) acts for the client.
    representative_name: Mapped[str | None] = mapped_column(String(200))
    representative_relationship: Mapped[str | None] = mapped_column(String(100))
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardian.id"))
    channel: Mapped[str] = mapped_column(String(20), default="web")
    details: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    acknowledge_by: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    due_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    deadline_clause_id: Mapped[str] = mapped_column(String(120))
    deadline_clause_text: Mapped[str] = mapped_column(Text)
    verify_identity: Mapped[bool] = mapped_column(default=True)
    lookback_days: Mapped[int | None]
    extendable_to: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    extended_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_notice: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    verified_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    verification_method: Mapped[str | None] = mapped_column(String(200))
    closed_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    closed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    outcome: Mapped[str | None] = mapped_column(Text)
    denial_reason: Mapped[str | None] = mapped_column(Text)
    alerted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    processor_notices: Mapped[list[ProcessorNotice]] = relationship(
        order_by="ProcessorNotice.id", viewonly=True
    )


class HoldStatus(enum.StrEnum):
    """Whether a held group of records is still kept."""

    holding = "holding"
    purged = "purged"


class RetentionHold(ClinicScoped, Model):
    """Records a deletion could not remove yet: kept until ``keep_until``, then purged by a job."""

    __tablename__ = "retention_hold"
    __table_args__ = (Index("ix_retention_hold_due", "clinic_id", "status", "keep_until"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("privacy_request.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"), index=True)
    record_kind: Mapped[str] = mapped_column(String(40))  # a RecordKind value
    keep_until: Mapped[date] = mapped_column(Date)
    clause_id: Mapped[str] = mapped_column(String(120))
    clause_text: Mapped[str] = mapped_column(Text)
    status: Mapped[HoldStatus] = mapped_column(
        StoredEnum(HoldStatus, 16), default=HoldStatus.holding
    )
    purged_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class ProcessorNoticeStatus(enum.StrEnum):
    """Where a deletion stands at a processor or recipient holding the client's data."""

    pending = "pending"  # to be carried out: by the platform (Stripe) or by staff (a recipient)
    deleted = "deleted"  # the processor confirmed the deletion (or had nothing left to delete)
    kept = "kept"  # kept for the reason in ``outcome``; deleted once that reason ends
    failed = "failed"  # the processor could not be reached; retried
    recorded = "recorded"  # no deletion call exists: recorded for the operator to pass on
    sent = "sent"  # staff sent the notice, at ``sent_at``
    not_held = "not_held"  # the recipient holds nothing of this client


class ProcessorNotice(ClinicScoped, Model):
    """A deletion passed on to a service provider or recipient holding the client's data.

    Written with the deletion itself (the intent); the platform's own call
    (deleting the Stripe customer) is made after that commit and its answer
    recorded here, so a retry knows what is done.
    """

    __tablename__ = "processor_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("privacy_request.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("client.id"))
    processor: Mapped[str] = mapped_column(String(100))  # stripe, email_provider, sms_provider, ...
    name: Mapped[str | None] = mapped_column(String(200))  # as staff read it
    reference: Mapped[str | None] = mapped_column(String(200))  # their id for the client
    account: Mapped[str | None] = mapped_column(String(64))  # where it lives (a Stripe account)
    data_recipient_id: Mapped[int | None] = mapped_column(ForeignKey("data_recipient.id"))
    action: Mapped[str | None] = mapped_column(String(20))  # delete, keep, notify, record
    status: Mapped[ProcessorNoticeStatus] = mapped_column(
        StoredEnum(ProcessorNoticeStatus, 16), default=ProcessorNoticeStatus.pending
    )
    outcome: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())  # last call out
    sent_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())  # done: deleted or sent
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


class OptOutReview(ClinicScoped, Model):
    """A text message that may be an opt-out in the client's own words, for staff to decide."""

    __tablename__ = "opt_out_review"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("client.id"), index=True)
    phone: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    honour_by: Mapped[datetime] = mapped_column(UtcTimestamp())
    decided_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    decided_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decision: Mapped[str | None] = mapped_column(String(20))  # opted_out, not_an_opt_out


class BreachIncident(ClinicScoped, Model):
    """A security incident that may be a notifiable breach, with each notice's clock."""

    __tablename__ = "breach_incident"

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    discovered_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    affected_count: Mapped[int]
    affected_by_region: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    health_data: Mapped[bool] = mapped_column(default=True)
    encrypted: Mapped[bool] = mapped_column(default=False)
    serious_harm_likely: Mapped[bool] = mapped_column(default=True)
    recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    notices: Mapped[list[BreachNotice]] = relationship(
        back_populates="incident", order_by="BreachNotice.id"
    )


class BreachNotice(ClinicScoped, Model):
    """One notification a breach requires: to whom, by when, under which rule, and when sent."""

    __tablename__ = "breach_notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("breach_incident.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    as_soon_as_practicable: Mapped[bool] = mapped_column(default=False)
    clause_id: Mapped[str] = mapped_column(String(120))
    clause_text: Mapped[str] = mapped_column(Text)
    clause_source: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())

    incident: Mapped[BreachIncident] = relationship(back_populates="notices")


class DataRecipient(ClinicScoped, Model):
    """Someone the clinic sends client data to: a processor working for it, or another recipient.

    ``country`` and ``basis`` decide whether a transfer abroad is allowed
    (New Zealand IPP 12); a processor that only stores or processes for the
    clinic receives no disclosure.
    """

    __tablename__ = "data_recipient"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    role: Mapped[str] = mapped_column(String(20))  # processor, recipient
    purpose: Mapped[str] = mapped_column(Text)
    basis: Mapped[str | None] = mapped_column(String(40))
    basis_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
