"""Deleting a client's data: the plan, what goes now, retention holds and their purge."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from core import clock
from core.audit import services as audit
from core.audit.models import AuditAction
from core.bookings.models import (
    Booking,
    BookingCharge,
    BookingEvent,
    BookingStatus,
    PolicyAcceptance,
)
from core.clients import services as clients
from core.clients.models import (
    AdverseReaction,
    Client,
    ClinicalNote,
    Consent,
    Guardian,
    HealthIntake,
    Photo,
    ProductUse,
)
from core.clients.photos import forget_after_commit
from core.extensions import db
from core.hooks.decisions import HeldRecords, RecordKind
from core.integrations import services as webhooks
from core.messaging.models import OutboxMessage, OutboxStatus
from core.payments.models import Dispute, Payment
from core.privacy.calendars import local_day
from core.privacy.models import HoldStatus, PrivacyRequest, ProcessorNotice, RetentionHold
from core.privacy.services.consents import MARKETING_CONSENTS, _revoke
from core.privacy.services.processors import ProcessorItem, _notice, processors_holding
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for


@dataclasses.dataclass(frozen=True)
class PlanItem:
    """What a deletion does with one group of the client's records, and why."""

    records: str
    count: int
    action: str  # delete, keep
    keep_until: str | None = None
    clause_id: str | None = None
    reason: str | None = None


def _held_records(clinic: Clinic, record: Client) -> dict[RecordKind, tuple[HeldRecords, int]]:
    """Describe each group of the client's records that exists, with how many records it holds.

    Dates are the clinic's local dates: a treatment on the evening of 2 March
    in Auckland was on 2 March, whatever the date in UTC.
    """

    def day(stamp: datetime | None) -> date | None:
        return local_day(clock.as_utc(stamp), clinic.timezone) if stamp else None

    def span(*columns: Any) -> tuple[int, date | None]:
        """Count the client's rows of each column's table; return (count, newest day)."""
        total, newest = 0, []
        for stamp in columns:
            count, last = db.session.execute(
                select(func.count(), func.max(stamp)).where(stamp.class_.client_id == record.id)
            ).one()
            total += count or 0
            newest += [day(last)] if last else []
        return total, max(newest, default=None)

    medical = span(
        HealthIntake.recorded_at,
        ClinicalNote.created_at,
        ProductUse.created_at,
        AdverseReaction.created_at,
        Photo.created_at,
    )
    served = db.session.scalar(
        select(func.max(Booking.starts_at)).where(
            Booking.client_id == record.id,
            Booking.status.in_([BookingStatus.completed, BookingStatus.checked_in]),
        )
    )
    last_service = max([d for d in (medical[1], day(served)) if d], default=None)
    groups = {
        RecordKind.medical_record: medical,
        RecordKind.documentation: span(Consent.given_at),
        RecordKind.financial: span(Booking.created_at),
        RecordKind.messages: span(OutboxMessage.created_at),
        RecordKind.contact: (1, day(record.created_at)),
        RecordKind.marketing: (1, None),
    }
    dob = record.date_of_birth
    return {
        kind: (
            HeldRecords(kind, last_service_on=last_service, newest_on=newest, date_of_birth=dob),
            count,
        )
        for kind, (count, newest) in groups.items()
        if count
    }


@dataclasses.dataclass(frozen=True)
class DeletionPlan:
    """What deleting a client does: each group of records, and each processor holding them."""

    items: list[PlanItem]
    processors: list[ProcessorItem]


def deletion_plan(clinic: Clinic, record: Client) -> DeletionPlan:
    """Decide, for each group of the client's records, whether it goes now or is kept, and until when.

    The longest minimum retention among the plugins' answers wins; a group
    with no rule, or whose hold has ended, is deleted. The processors and
    recipients holding the client's data are listed with what happens there
    (CCPA, 11 CCR 7022: service providers and third parties are told).
    """
    today = clients.today_at(clinic)
    hooks = hooks_for(clinic)
    items = []
    for kind, (held, count) in _held_records(clinic, record).items():
        rules = [
            rule
            for rule in hooks.answers(
                "clinic_retention_rule", clinic=clinic, record=held, client=record
            )
            if rule.keep_until
        ]
        longest = max(rules, key=lambda r: r.keep_until, default=None)
        if longest is not None and longest.keep_until > today:
            items.append(
                PlanItem(
                    kind.value,
                    count,
                    "keep",
                    longest.keep_until.isoformat(),
                    longest.clause.id,
                    longest.clause.text,
                )
            )
        else:
            items.append(PlanItem(kind.value, count, "delete"))
    return DeletionPlan(items, processors_holding(clinic, record))


def delete_client_data(
    clinic: Clinic, record: Client, request: PrivacyRequest | None
) -> DeletionPlan:
    """Carry out the deletion plan: delete what may go, hold the rest, record each processor's notice.

    The notices are written in this transaction as the intent; the Stripe
    customer is deleted by :func:`carry_out_notices` once it is committed.
    """
    plan = deletion_plan(clinic, record)  # processors are listed before contact details go
    keeping = {item.records for item in plan.items if item.action == "keep"}
    for item in plan.items:
        kind = RecordKind(item.records)
        if item.action == "delete":
            _purge(record, kind, identity_kept=bool(keeping))
        else:
            db.session.add(
                RetentionHold(
                    request_id=request.id if request else None,
                    client_id=record.id,
                    record_kind=kind.value,
                    keep_until=date.fromisoformat(item.keep_until),
                    clause_id=item.clause_id,
                    clause_text=item.reason,
                )
            )
    if request is not None:
        hold = RetentionHold(
            request_id=request.id,
            client_id=record.id,
            record_kind=RecordKind.privacy_request.value,
            keep_until=_request_record_until(clinic, record, request),
            clause_id="privacy_request.record",
            clause_text="The record of a privacy request is kept as long as the law requires.",
        )
        db.session.add(hold)
        for item in plan.processors:
            db.session.add(_notice(request, record, item))
    audit.record(
        AuditAction.delete,
        "client",
        client_id=record.id,
        resource_id=record.id,
        fields=sorted(item.records for item in plan.items if item.action == "delete"),
        reason=f"privacy request {request.id}" if request else "retention ended",
    )
    return plan


def _request_record_until(clinic: Clinic, record: Client, request: PrivacyRequest) -> date:
    held = HeldRecords(
        RecordKind.privacy_request,
        newest_on=local_day(clock.as_utc(request.received_at), clinic.timezone),
        date_of_birth=record.date_of_birth,
    )
    rules = [
        rule.keep_until
        for rule in hooks_for(clinic).answers(
            "clinic_retention_rule", clinic=clinic, record=held, client=record
        )
        if rule.keep_until
    ]
    return max(rules, default=clients.today_at(clinic))  # no rule: it may go with the rest


def _purge(record: Client, kind: RecordKind, *, identity_kept: bool) -> None:
    """Delete one group of the client's records now."""
    if kind == RecordKind.medical_record:
        keys = list(
            db.session.scalars(select(Photo.storage_key).where(Photo.client_id == record.id))
        )
        db.session.execute(delete(Photo).where(Photo.client_id == record.id))
        forget_after_commit(db.session(), keys)
        for model in (AdverseReaction, ProductUse, HealthIntake):
            db.session.execute(delete(model).where(model.client_id == record.id))
        # Amendments point at the notes they amend: remove them first.
        db.session.execute(
            delete(ClinicalNote).where(
                ClinicalNote.client_id == record.id, ClinicalNote.amends_note_id.is_not(None)
            )
        )
        db.session.execute(delete(ClinicalNote).where(ClinicalNote.client_id == record.id))
    elif kind == RecordKind.marketing:
        _revoke(record, MARKETING_CONSENTS, "deletion")
        db.session.execute(
            update(Photo).where(Photo.client_id == record.id).values(marketing_use=False)
        )
    elif kind == RecordKind.messages:
        db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.client_id == record.id, OutboxMessage.status == OutboxStatus.pending
            )
            .values(status=OutboxStatus.withdrawn)
        )
        db.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.client_id == record.id,
                OutboxMessage.status != OutboxStatus.sending,
            )
        )
    elif kind == RecordKind.financial:
        bookings = select(Booking.id).where(Booking.client_id == record.id)
        db.session.execute(delete(BookingEvent).where(BookingEvent.booking_id.in_(bookings)))
        # The ledger keeps the money trail by id; the payment rows go with their bookings,
        # before the charges they paid (a payment names its charge).
        db.session.execute(delete(Payment).where(Payment.booking_id.in_(bookings)))
        db.session.execute(delete(BookingCharge).where(BookingCharge.booking_id.in_(bookings)))
        # The evidence for the bookings' fees goes with them.
        db.session.execute(
            delete(PolicyAcceptance).where(PolicyAcceptance.booking_id.in_(bookings))
        )
        db.session.execute(delete(OutboxMessage).where(OutboxMessage.booking_id.in_(bookings)))
        # A dispute's record stays with the ledger; the evidence naming the client goes.
        db.session.execute(
            update(Dispute).where(Dispute.booking_id.in_(bookings)).values(evidence=None)
        )
        db.session.execute(delete(Booking).where(Booking.client_id == record.id))
    elif kind == RecordKind.documentation:
        _delete_consents(record)
    elif kind == RecordKind.contact:
        for name in (
            "email",
            "phone",
            "street",
            "unit",
            "city",
            "region",
            "postal_code",
            "emergency_contact_name",
            "emergency_contact_phone",
            "emergency_contact_relationship",
            "preferred_name",
            "gender",
            "language",
            "timezone",
            "preferred_location_id",
        ):
            setattr(record, name, None)
        record.search_preferred = None
        # Events sent to the clinic's own systems kept a copy of them for replays.
        webhooks.forget_client(record.id)
        if not identity_kept:
            _anonymise(record)


def _delete_consents(record: Client) -> None:
    """Delete the client's consents, except those a photo still held was taken under."""
    db.session.execute(
        delete(Consent).where(
            Consent.client_id == record.id,
            Consent.id.not_in(select(Photo.consent_id).where(Photo.client_id == record.id)),
        )
    )


def _anonymise(record: Client) -> None:
    """Leave only a tombstone: the id the append-only audit trail refers to.

    Called when nothing of the client is held any more, so the last
    documentation (consents, guardians) goes too; references to a guardian
    from the client's privacy requests are cleared first.
    """
    _delete_consents(record)
    db.session.execute(
        update(PrivacyRequest).where(PrivacyRequest.client_id == record.id).values(guardian_id=None)
    )
    db.session.execute(delete(Guardian).where(Guardian.client_id == record.id))
    record.legal_first_name = "Deleted"
    record.legal_last_name = f"client {record.id}"
    record.search_first = clients.fold(record.legal_first_name)
    record.search_last = clients.fold(record.legal_last_name)
    record.date_of_birth = None
    for name in ("email", "phone", "preferred_name", "gender"):
        setattr(record, name, None)


def _redact_request(request_id: int | None) -> None:
    """Strip a closed request's record of who asked and what they said; its dates stay."""
    request = db.session.get(PrivacyRequest, request_id) if request_id else None
    if request is None:
        return
    request.requester_name = "Deleted"
    for name in (
        "requester_email",
        "requester_phone",
        "requester_date_of_birth",
        "representative_name",
        "representative_relationship",
        "guardian_id",
        "details",
        "extension_notice",
    ):
        setattr(request, name, None)
    request.result = {}
    # The address and number a provider was told of are contact details too.
    db.session.execute(
        update(ProcessorNotice)
        .where(
            ProcessorNotice.request_id == request.id,
            ProcessorNotice.processor.in_(["email_provider", "sms_provider"]),
        )
        .values(reference=None)
    )


def purge_expired_holds(clinic: Clinic, today: date | None = None) -> int:
    """Purge every held group whose retention has ended; call inside the clinic's scope."""
    today = today or clients.today_at(clinic)
    due = list(
        db.session.scalars(
            select(RetentionHold).where(
                RetentionHold.status == HoldStatus.holding, RetentionHold.keep_until <= today
            )
        )
    )
    for hold in due:
        record = db.session.get(Client, hold.client_id)
        remaining = db.session.scalar(
            select(func.count())
            .select_from(RetentionHold)
            .where(
                RetentionHold.client_id == hold.client_id,
                RetentionHold.status == HoldStatus.holding,
                RetentionHold.id != hold.id,
                RetentionHold.record_kind != RecordKind.privacy_request.value,
            )
        )
        kind = RecordKind(hold.record_kind)
        if kind == RecordKind.privacy_request:
            _redact_request(hold.request_id)
        else:
            _purge(record, kind, identity_kept=bool(remaining))
        hold.status = HoldStatus.purged
        hold.purged_at = clock.now()
        if not remaining:
            _anonymise(record)
        audit.record(
            AuditAction.delete,
            "client",
            client_id=record.id,
            resource_id=record.id,
            fields=[kind.value],
            reason=f"retention ended: {hold.clause_id}",
        )
    return len(due)
