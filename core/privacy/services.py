"""Privacy workflows: requests and their deadlines, access exports, deletion under retention holds.

The core runs the workflow; the clinic's jurisdiction plugins give the
rules. Where several apply, the earliest deadline and the longest minimum
retention win (``combined_deadline``, ``deletion_plan``).
"""

from __future__ import annotations

import dataclasses
import html
import json
from datetime import date, datetime, timedelta
from typing import Any

import stripe
from flask import current_app
from sqlalchemy import delete, func, or_, select, update

from core import clock
from core.accounts.access import Principal
from core.audit import services as audit
from core.audit.models import AuditAction
from core.bookings.models import Booking, BookingCharge, BookingEvent, BookingStatus
from core.clients import services as clients
from core.clients.models import (
    AdverseReaction,
    Client,
    ClinicalNote,
    Consent,
    ConsentKind,
    Guardian,
    HealthIntake,
    Photo,
    ProductUse,
)
from core.clients.photos import forget_after_commit
from core.errors import Problem, field_error
from core.extensions import db
from core.hooks.decisions import (
    Clause,
    HeldRecords,
    PrivacyRight,
    RecordKind,
    RequestDeadline,
)
from core.ledger import LedgerEntry, LedgerKind
from core.messaging import outbox
from core.messaging.models import OutboxMessage, OutboxStatus
from core.money import Money
from core.payments import stripe_api
from core.payments.models import Payment
from core.privacy.calendars import local_day
from core.privacy.models import (
    OPEN_STATUSES,
    BreachIncident,
    BreachNotice,
    DataRecipient,
    HoldStatus,
    OptOutReview,
    PrivacyRequest,
    ProcessorNotice,
    ProcessorNoticeStatus,
    RequestStatus,
    RetentionHold,
)
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import after_commit, no_open_unit, transaction, unit_of_work

MARKETING_CONSENTS = (
    ConsentKind.marketing_email,
    ConsentKind.marketing_sms,
    ConsentKind.marketing_photos,
)
#: A parent may act for a client younger than this unless a plugin says younger.
REPRESENTATIVE_AGE = 18


# --- what the clinic offers, and by when --------------------------------------------------


def rights_offered(clinic: Clinic) -> dict[PrivacyRight, list[Clause]]:
    """Return the rights the clinic's plugins grant its clients, each with its clauses."""
    offered: dict[PrivacyRight, list[Clause]] = {}
    for item in hooks_for(clinic).answers("clinic_privacy_rights", clinic=clinic):
        offered.setdefault(PrivacyRight(item.right), []).append(item.clause)
    return offered


@dataclasses.dataclass(frozen=True)
class CombinedDeadline:
    """The deadline a request gets when every applicable rule is applied: the earliest wins."""

    due_at: datetime
    clause: Clause
    acknowledge_by: datetime | None
    extendable_to: datetime | None
    verify_identity: bool
    lookback: timedelta | None


def combined_deadline(clinic: Clinic, request: Any, received_at: datetime) -> CombinedDeadline:
    """Ask every plugin for the request's deadline and combine the answers.

    The platform baseline answers only where no jurisdiction rule does. The
    earliest due date wins; an extension can reach no further than the
    earliest of each rule's own extended date; the longest lookback wins (a
    client gets everything any rule entitles them to).
    """
    answers: list[RequestDeadline] = hooks_for(clinic).answers(
        "clinic_request_deadline", clinic=clinic, request=request, received_at=received_at
    )
    ruling = [a for a in answers if not a.fallback]
    answers = ruling or answers
    if not answers:
        raise Problem(
            409,
            "No rule of this clinic sets a deadline for this request.",
            kind="no-deadline-rule",
        )
    first = min(answers, key=lambda a: clock.as_utc(a.due_at))
    acknowledgements = [clock.as_utc(a.acknowledge_by) for a in answers if a.acknowledge_by]
    extended = min(clock.as_utc(a.due_at) + (a.extension or timedelta(0)) for a in answers)
    lookbacks = [a.lookback for a in answers]
    return CombinedDeadline(
        due_at=clock.as_utc(first.due_at),
        clause=first.clause,
        acknowledge_by=min(acknowledgements) if acknowledgements else None,
        extendable_to=extended if extended > clock.as_utc(first.due_at) else None,
        verify_identity=any(a.verify_identity for a in answers),
        lookback=None if any(lb is None for lb in lookbacks) else max(lookbacks),
    )


def representative_age(clinic: Clinic) -> int:
    """Return the age below which a parent or guardian may act for a client here."""
    ages = [
        rule.under
        for rule in hooks_for(clinic).answers("clinic_age_rules", clinic=clinic)
        if rule.applies_to == "representative"
    ]
    return min([REPRESENTATIVE_AGE, *ages])


# --- requests ------------------------------------------------------------------------------


@transaction
def submit(clinic: Clinic, data: dict[str, Any], actor: Principal | None = None) -> PrivacyRequest:
    """Record a privacy request, give it its deadline and acknowledge it.

    An opt-out needs no identity check and takes effect at once when the
    requester is known; every other request waits for verification.
    """
    kind = PrivacyRight(data["kind"])
    offered = rights_offered(clinic)
    if kind not in offered:
        raise Problem(
            422,
            f"This clinic's privacy policy does not offer {kind.value.replace('_', ' ')}.",
            kind="right-not-offered",
            errors=[field_error("kind", f"not offered here; offered: {sorted(offered)}")],
        )
    now = clock.now()
    request = PrivacyRequest(
        kind=kind.value,
        status=RequestStatus.received,
        client_id=data.get("client_id"),
        requester_name=data["requester_name"],
        requester_email=data.get("requester_email"),
        requester_phone=data.get("requester_phone"),
        requester_date_of_birth=data.get("requester_date_of_birth"),
        representative_name=data.get("representative_name"),
        representative_relationship=data.get("representative_relationship"),
        channel=data.get("channel", "web"),
        details=data.get("details"),
        received_at=data.get("received_at") or now,
    )
    if request.client_id is not None:
        clients.client(request.client_id)  # 404 for a client of another clinic
    deadline = combined_deadline(clinic, request, clock.as_utc(request.received_at))
    request.due_at = deadline.due_at
    request.deadline_clause_id = deadline.clause.id
    request.deadline_clause_text = deadline.clause.text
    request.acknowledge_by = deadline.acknowledge_by
    request.extendable_to = deadline.extendable_to
    request.verify_identity = deadline.verify_identity
    request.lookback_days = deadline.lookback.days if deadline.lookback else None
    request.acknowledged_at = now
    db.session.add(request)
    db.session.flush()
    _notify_requester(
        clinic,
        request,
        f"We received your privacy request ({kind.value.replace('_', ' ')})",
        _acknowledgement(clinic, request),
    )
    if not request.verify_identity and request.client_id is not None:
        complete(clinic, request, actor)
    return request


def _acknowledgement(clinic: Clinic, request: PrivacyRequest) -> str:
    due = local_day(clock.as_utc(request.due_at), clinic.timezone).isoformat()
    how = (
        "Before we release or change anything we confirm who you are, for example by asking "
        "for details only you would know or by seeing photo identification at the clinic."
        if request.verify_identity
        else "This request needs no proof of identity."
    )
    return (
        f"{clinic.name} received your request on "
        f"{local_day(clock.as_utc(request.received_at), clinic.timezone).isoformat()}. "
        f"{how} We will answer by {due} ({request.deadline_clause_text})"
    )


def _notify_requester(clinic: Clinic, request: PrivacyRequest, subject: str, body: str) -> None:
    if not request.requester_email:
        return
    # Addressed to the requester, not the client record: a deletion must not withdraw
    # the notice that it is done.
    outbox.queue(
        "privacy_notice",
        dedupe_key=f"privacy:{request.id}:{subject}",
        to=request.requester_email,
        subject=subject,
        body=body,
    )


def request_of(request_id: int) -> PrivacyRequest:
    """Return privacy request ``request_id`` of the current clinic, or raise 404."""
    found = db.session.get(PrivacyRequest, request_id)
    if found is None:
        raise Problem(404, "No such privacy request at this clinic.")
    return found


def queue(include_closed: bool = False) -> list[PrivacyRequest]:
    """Return the clinic's requests, the nearest deadline first."""
    statement = select(PrivacyRequest).order_by(PrivacyRequest.due_at, PrivacyRequest.id)
    if not include_closed:
        statement = statement.where(PrivacyRequest.status.in_(OPEN_STATUSES))
    return list(db.session.scalars(statement))


def _require_open(request: PrivacyRequest) -> None:
    if request.status not in OPEN_STATUSES:
        raise Problem(409, f"The request is already {request.status.value}.", kind="request-closed")


@transaction
def verify(
    clinic: Clinic,
    request: PrivacyRequest,
    actor: Principal,
    *,
    client_id: int,
    method: str,
    guardian_id: int | None = None,
) -> PrivacyRequest:
    """Record that the requester is who they say (and may act for the client), matching the client."""
    _require_open(request)
    record = clients.client(client_id)
    if request.representative_name:
        _check_representative(clinic, record, guardian_id)
        request.guardian_id = guardian_id
    request.client_id = record.id
    request.status = RequestStatus.verified
    request.verified_at = clock.now()
    request.verified_by_user_id = actor.user.id
    request.verification_method = method
    return request


def _check_representative(clinic: Clinic, record: Client, guardian_id: int | None) -> None:
    guardian = db.session.get(Guardian, guardian_id) if guardian_id else None
    if guardian is None or guardian.client_id != record.id:
        raise Problem(
            422,
            "A representative must be a parent or guardian on file for this client.",
            kind="representative-not-on-file",
            errors=[field_error("guardian_id", "not a guardian of this client")],
        )
    limit = representative_age(clinic)
    if (
        record.date_of_birth is None
        or clients.age_on(record.date_of_birth, clients.today_at(clinic)) >= limit
    ):
        raise Problem(
            409,
            f"A parent or guardian may act for a client only while they are under {limit}; "
            "this client must make the request themselves.",
            kind="representative-not-allowed",
        )


@transaction
def extend(clinic: Clinic, request: PrivacyRequest, reason: str, notice: str) -> PrivacyRequest:
    """Extend the deadline once, as far as the rules allow, recording the notice sent and why."""
    _require_open(request)
    now = clock.now()
    if request.extended_at is not None:
        raise Problem(409, "The deadline has already been extended once.", kind="already-extended")
    if request.extendable_to is None:
        raise Problem(
            409, "The rules for this request allow no extension.", kind="no-extension-allowed"
        )
    if now > clock.as_utc(request.due_at):
        raise Problem(
            409,
            "An extension must be notified before the original deadline, which has passed.",
            kind="extension-too-late",
        )
    request.due_at = request.extendable_to
    request.extended_at = now
    request.extension_reason = reason
    request.extension_notice = notice
    request.alerted_at = None
    _notify_requester(clinic, request, "We need more time for your privacy request", notice)
    return request


@transaction
def deny(
    clinic: Clinic, request: PrivacyRequest, actor: Principal | None, reason: str
) -> PrivacyRequest:
    """Close the request with a denial and its reason (kept, as the law requires)."""
    _require_open(request)
    request.status = RequestStatus.denied
    request.denial_reason = reason
    request.closed_at = clock.now()
    request.closed_by_user_id = actor.user.id if actor else None
    _notify_requester(clinic, request, "Your privacy request", f"We cannot act on it: {reason}")
    return request


@transaction
def complete(
    clinic: Clinic, request: PrivacyRequest, actor: Principal | None, outcome: str | None = None
) -> PrivacyRequest:
    """Carry out the request and close it.

    Deletion runs the deletion plan and records a notice to each processor
    holding the client's data; once the deletion commits, :func:`carry_out_notices`
    deletes the Stripe customer. An opt-out takes effect; access is answered
    by the export; other rights (correct, restrict, object) are done by staff
    through the client record and closed with the outcome.
    """
    _require_open(request)
    if request.verify_identity and request.status != RequestStatus.verified:
        raise Problem(
            409,
            "The requester's identity is not verified: nothing is released or changed before it is.",
            kind="identity-not-verified",
        )
    if request.client_id is None:
        raise Problem(409, "The request is not matched to a client yet.", kind="no-client")
    record = clients.client(request.client_id)
    kind = PrivacyRight(request.kind)
    result: dict[str, Any] = {}
    if kind == PrivacyRight.delete:
        plan = delete_client_data(clinic, record, request)
        after_commit(lambda: carry_out_notices(clinic, request))
        result = {
            "plan": [dataclasses.asdict(item) for item in plan.items],
            "processors": [dataclasses.asdict(item) for item in plan.processors],
        }
        outcome = (
            outcome
            or "Deleted what may go; what the law requires us to keep is held until the dates shown."
        )
    elif kind == PrivacyRight.opt_out_marketing:
        revoked = _revoke(record, MARKETING_CONSENTS, "privacy_request")
        result = {"revoked": revoked}
        outcome = outcome or "Marketing stopped on every channel; appointment reminders continue."
    elif kind == PrivacyRight.opt_out_sale_sharing:
        outcome = outcome or "Your information will not be sold or shared."
    elif outcome is None:
        raise Problem(
            422,
            "Say what was done for this request.",
            errors=[field_error("outcome", "required to close this kind of request")],
        )
    request.status = RequestStatus.completed
    request.outcome = outcome
    request.result = result
    request.closed_at = clock.now()
    request.closed_by_user_id = actor.user.id if actor else None
    _notify_requester(clinic, request, "Your privacy request is complete", outcome)
    return request


def _revoke(record: Client, kinds: tuple[ConsentKind, ...], method: str) -> list[str]:
    return sorted(c.kind.value for c in clients.withdraw_consents([record.id], kinds, method))


def opted_out_of_sale(client_id: int) -> bool:
    """Return whether the client has opted out of the sale or sharing of their information."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(PrivacyRequest)
            .where(
                PrivacyRequest.client_id == client_id,
                PrivacyRequest.kind == PrivacyRight.opt_out_sale_sharing.value,
                PrivacyRequest.status == RequestStatus.completed,
            )
        )
        or 0
    ) > 0


@transaction
def carry_gpc(clinic: Clinic, client: Client) -> PrivacyRequest | None:
    """Apply a browser's Global Privacy Control signal to the client it now belongs to.

    For a clinic whose rules offer the opt-out of sale or sharing, ``Sec-GPC: 1``
    is that opt-out, first for the browser and, once the person is known, for
    them (11 CCR 7025). Recorded as a completed request, like any opt-out.
    """
    if PrivacyRight.opt_out_sale_sharing not in rights_offered(clinic):
        return None
    if client.id is None:
        db.session.flush()
    if opted_out_of_sale(client.id):
        return None
    return submit(
        clinic,
        {
            "kind": PrivacyRight.opt_out_sale_sharing.value,
            "client_id": client.id,
            "requester_name": client.display_name,
            "channel": "gpc",
            "details": "Global Privacy Control signal (Sec-GPC: 1) from the client's browser.",
        },
    )


# --- access ----------------------------------------------------------------------------------


@transaction
def access_export(clinic: Clinic, request: PrivacyRequest, actor: Principal) -> dict[str, Any]:
    """Return everything held about the request's client within its lookback, as data.

    The export is logged as a disclosure to the client, and includes the
    accounting of disclosures and the client's privacy requests.
    """
    if PrivacyRight(request.kind) not in (
        PrivacyRight.access,
        PrivacyRight.portability,
        PrivacyRight.accounting_of_disclosures,
    ):
        raise Problem(409, "Only access requests have an export.", kind="not-an-access-request")
    if request.status not in (RequestStatus.verified, RequestStatus.completed):
        raise Problem(
            409,
            "The requester's identity is not verified: nothing is released before it is.",
            kind="identity-not-verified",
        )
    record = clients.client(request.client_id)
    since = (
        clock.as_utc(request.received_at) - timedelta(days=request.lookback_days)
        if request.lookback_days
        else None
    )
    document = clients.export_document(record)
    if since is not None:
        document = _within(document, since)
    document["bookings"] = [
        {
            "id": b.id,
            "service_id": b.service_id,
            "starts_at": clock.as_utc(b.starts_at).isoformat(),
            "status": b.status.value,
        }
        for b in db.session.scalars(
            select(Booking).where(Booking.client_id == record.id).order_by(Booking.starts_at)
        )
        if since is None or clock.as_utc(b.created_at) >= since
    ]
    document["disclosures"] = [
        {
            "at": clock.as_utc(event.at).isoformat(),
            "action": event.action.value,
            "recipient": event.recipient,
            "purpose": event.reason,
        }
        for event in audit.disclosures(record.id, since)
    ]
    document["privacy_requests"] = [
        {
            "id": r.id,
            "kind": r.kind,
            "status": r.status.value,
            "received_at": clock.as_utc(r.received_at).isoformat(),
            "due_at": clock.as_utc(r.due_at).isoformat(),
        }
        for r in db.session.scalars(
            select(PrivacyRequest).where(PrivacyRequest.client_id == record.id)
        )
    ]
    document["period"] = {
        "from": since.isoformat() if since else None,
        "to": clock.now().isoformat(),
        "rule": request.deadline_clause_text,
    }
    audit.record(
        AuditAction.disclose,
        "privacy_request",
        client_id=record.id,
        resource_id=request.id,
        fields=sorted(document),
        recipient=request.representative_name or request.requester_name,
        reason=f"privacy request {request.id} ({request.kind})",
    )
    return document


def _within(document: dict[str, Any], since: datetime) -> dict[str, Any]:
    """Drop dated entries older than ``since`` from the lists of an export."""
    trimmed = {}
    for key, value in document.items():
        if isinstance(value, list):
            value = [item for item in value if not _older(item, since)]
        trimmed[key] = value
    return trimmed


def _older(item: Any, since: datetime) -> bool:
    if not isinstance(item, dict):
        return False
    for key in ("created_at", "recorded_at", "given_at", "at"):
        stamp = item.get(key)
        if isinstance(stamp, str):
            try:
                return clock.as_utc(datetime.fromisoformat(stamp)) < since
            except ValueError:
                return False
    return False


def readable(document: dict[str, Any], clinic: Clinic) -> str:
    """Return the export as a plain HTML document a person can read and print."""
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>Your information held by {html.escape(clinic.name)}</title>",
        f"<h1>Your information held by {html.escape(clinic.name)}</h1>",
    ]
    for section, value in document.items():
        parts.append(f"<h2>{html.escape(section.replace('_', ' ').capitalize())}</h2>")
        parts.append(_html_value(value))
    parts.append("</html>")
    return "\n".join(parts)


def _html_value(value: Any) -> str:
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><th>{html.escape(str(k).replace('_', ' '))}</th><td>{_html_value(v)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if not value:
            return "<p>None.</p>"
        return "<ul>" + "".join(f"<li>{_html_value(v)}</li>" for v in value) + "</ul>"
    if value is None:
        return "-"
    return html.escape(value if isinstance(value, str) else json.dumps(value))


# --- deletion --------------------------------------------------------------------------------


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
class ProcessorItem:
    """A service provider or recipient holding the client's data, and what a deletion does there."""

    processor: str  # stripe, email_provider, sms_provider, data_recipient
    name: str
    reference: str | None
    action: str  # delete, keep, notify (staff tell them), record (for the operator)
    detail: str
    account: str | None = None
    data_recipient_id: int | None = None


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


# --- processors and recipients ---------------------------------------------------------------

#: A fee in these states is still owed by the client.
UNPAID_FEE = ("owed", "declined", "no_card")
#: A membership in these states is billed to the client's Stripe customer.
BILLED_MEMBERSHIP = ("incomplete", "trialing", "active", "past_due", "unpaid")
#: What happens at the platform's own message providers, to which it makes no deletion call.
PROVIDER_NOTE = (
    "the platform makes no deletion call to it, so the notice is recorded for the platform's "
    "operator to pass on under its agreement with the provider."
)


def processors_holding(clinic: Clinic, record: Client) -> list[ProcessorItem]:
    """Return each processor and recipient holding the client's data, and what a deletion does there.

    The customer on the clinic's Stripe account; the platform's email (SMTP)
    and SMS providers, by address and number; and every recipient registered
    at the clinic that the disclosure log shows received this client's data.
    """
    held = []
    if record.stripe_customer_id:
        held.append(_stripe_item(clinic, record))
    if record.email:
        held.append(
            ProcessorItem(
                "email_provider",
                "Email provider (SMTP)",
                record.email,
                "record",
                f"Email to this address went through the platform's SMTP relay; {PROVIDER_NOTE}",
            )
        )
    if record.phone:
        twilio = bool(current_app.config.get("TWILIO_ACCOUNT_SID"))
        held.append(
            ProcessorItem(
                "sms_provider",
                "SMS provider (Twilio)" if twilio else "SMS provider",
                record.phone,
                "record",
                f"Texts to this number went through the platform's SMS provider; {PROVIDER_NOTE}",
            )
        )
    for recipient, days in _recipients_of(clinic, record):
        on = ", ".join(day.isoformat() for day in days)
        held.append(
            ProcessorItem(
                "data_recipient",
                recipient_label(recipient),
                f"disclosed on {on}"[:200],
                "notify",
                f"{recipient.name} received the client's data ({recipient.role}, for "
                f"{recipient.purpose}): the clinic tells them to delete it, then records the "
                "notice as sent.",
                data_recipient_id=recipient.id,
            )
        )
    return held


def _stripe_item(clinic: Clinic, record: Client) -> ProcessorItem:
    """Decide what happens to the client's Stripe customer, and say why.

    Deleted, with its saved cards, unless the clinic still needs it: a fee
    still owed (collected from the card on file, under the policy the client
    agreed to), a card dispute still open (the clinic answers with its
    evidence), or a membership Stripe still bills to it (deleting the
    customer would cancel it unannounced). Payment records kept under a
    retention hold do not keep the customer: the clinic's books keep the
    money trail by id, and Stripe keeps the charges themselves, so refunds
    and disputes on them still work.
    """
    customer = record.stripe_customer_id
    account = clinic.stripe_account_id
    if not account:
        return ProcessorItem(
            "stripe",
            "Stripe",
            customer,
            "notify",
            f"The clinic's Stripe account is not connected, so the platform cannot delete the "
            f"customer {customer}: the clinic deletes it from its Stripe dashboard, then records "
            "the notice as sent.",
        )
    reasons = _stripe_keep_reasons(record)
    if reasons:
        return ProcessorItem(
            "stripe", "Stripe", customer, "keep", _kept_because(reasons), account=account
        )
    return ProcessorItem(
        "stripe",
        "Stripe",
        customer,
        "delete",
        f"The customer {customer} and its saved cards are deleted from the clinic's Stripe "
        f"account ({account}); the payments already made stay in Stripe's records and the "
        "clinic's books.",
        account=account,
    )


def _kept_because(reasons: list[str]) -> str:
    return (
        f"Kept on the clinic's Stripe account while {'; '.join(reasons)}. It is deleted once "
        "nothing holds it (retry the request's notices)."
    )


def _stripe_keep_reasons(record: Client) -> list[str]:
    """Return why the clinic still needs the client's Stripe customer, if it does."""
    from core.payments.services import FEES
    from core.sales.models import ClientMembership, Sale

    bookings = select(Booking.id).where(Booking.client_id == record.id)
    reasons = [
        f"a {kind.replace('_', ' ')} of {Money(amount, currency).format()} is still owed"
        for kind, amount, currency in db.session.execute(
            select(BookingCharge.kind, BookingCharge.amount_minor, BookingCharge.currency)
            .where(
                BookingCharge.booking_id.in_(bookings),
                BookingCharge.kind.in_([kind.value for kind in FEES]),
                BookingCharge.status.in_(UNPAID_FEE),
            )
            .order_by(BookingCharge.id)
        )
    ]
    payments = select(Payment.id).where(
        or_(
            Payment.booking_id.in_(bookings),
            Payment.sale_id.in_(select(Sale.id).where(Sale.client_id == record.id)),
        )
    )
    disputes: dict[str, set[LedgerKind]] = {}
    for kind, reference in db.session.execute(
        select(LedgerEntry.kind, LedgerEntry.reference).where(
            LedgerEntry.kind.in_(
                [LedgerKind.dispute_opened, LedgerKind.dispute_won, LedgerKind.dispute_lost]
            ),
            or_(
                LedgerEntry.client_id == record.id,
                LedgerEntry.booking_id.in_(bookings),
                LedgerEntry.payment_id.in_(payments),
            ),
        )
    ):
        disputes.setdefault(reference, set()).add(kind)
    reasons += [
        f"the card dispute {reference} is open"
        for reference, kinds in sorted(disputes.items())
        if kinds == {LedgerKind.dispute_opened}
    ]
    billed = db.session.scalar(
        select(func.count())
        .select_from(ClientMembership)
        .where(
            ClientMembership.client_id == record.id,
            ClientMembership.status.in_(BILLED_MEMBERSHIP),
        )
    )
    if billed:
        reasons.append("a membership is billed to it (end the membership first)")
    return reasons


def recipient_label(recipient: DataRecipient) -> str:
    """Return how a registered recipient is named in the disclosure log."""
    return f"{recipient.name} ({recipient.country})"


def _recipients_of(clinic: Clinic, record: Client) -> list[tuple[DataRecipient, list[date]]]:
    """Return the registered recipients the disclosure log shows received the client's data.

    Each with the clinic's local days of those disclosures, oldest first.
    """
    disclosed: dict[str, list[date]] = {}
    for event in audit.disclosures(record.id):
        if event.recipient:
            day = local_day(clock.as_utc(event.at), clinic.timezone)
            days = disclosed.setdefault(event.recipient, [])
            if day not in days:
                days.append(day)
    return [
        (recipient, disclosed[recipient_label(recipient)])
        for recipient in db.session.scalars(select(DataRecipient).order_by(DataRecipient.id))
        if recipient_label(recipient) in disclosed
    ]


def _notice(request: PrivacyRequest, record: Client, item: ProcessorItem) -> ProcessorNotice:
    """Return the notice recording what the deletion asks of one processor (the intent)."""
    status = {
        "keep": ProcessorNoticeStatus.kept,
        "record": ProcessorNoticeStatus.recorded,
    }.get(item.action, ProcessorNoticeStatus.pending)
    return ProcessorNotice(
        request_id=request.id,
        client_id=record.id,
        processor=item.processor,
        name=item.name,
        reference=item.reference,
        account=item.account,
        data_recipient_id=item.data_recipient_id,
        action=item.action,
        status=status,
        outcome=item.detail if item.action in ("keep", "record") else None,
    )


def carry_out_notices(clinic: Clinic, request: PrivacyRequest, *, again: bool = False) -> None:
    """Delete the Stripe customer a committed deletion decided to delete, and record the outcome.

    Runs once the deletion has committed: each call to Stripe sits between two
    short units of work (the intent read before it, the answer written after),
    so no row is locked while Stripe answers. ``again`` also retries a failed
    call and looks again at a customer kept for a reason that may have ended
    (a fee since paid, a dispute closed).
    """
    statuses = [ProcessorNoticeStatus.pending]
    if again:
        statuses += [ProcessorNoticeStatus.failed, ProcessorNoticeStatus.kept]
    with unit_of_work():  # a read only: nothing stays open while Stripe answers
        due = list(
            db.session.scalars(
                select(ProcessorNotice.id)
                .where(
                    ProcessorNotice.request_id == request.id,
                    ProcessorNotice.processor == "stripe",
                    ProcessorNotice.action.in_(["delete", "keep"]),
                    ProcessorNotice.status.in_(statuses),
                )
                .order_by(ProcessorNotice.id)
            )
        )
    for notice_id in due:
        _delete_stripe_customer(clinic, notice_id)


def _delete_stripe_customer(clinic: Clinic, notice_id: int) -> None:
    with unit_of_work():
        notice = db.session.get(ProcessorNotice, notice_id)
        if notice.status == ProcessorNoticeStatus.deleted:
            return  # another attempt finished it since it was listed
        if notice.status == ProcessorNoticeStatus.kept:
            reasons = _stripe_keep_reasons(db.session.get(Client, notice.client_id))
            if reasons:
                notice.outcome = _kept_because(reasons)
                notice.attempted_at = clock.now()
                return
        notice.action = "delete"  # nothing holds it any more, if it was kept
        customer, account = notice.reference, notice.account
    no_open_unit("deleting a Stripe customer")
    at = clock.now()
    try:
        existed = stripe_api.delete_customer(account or stripe_api.account_of(clinic), customer)
    except (stripe.StripeError, Problem) as error:
        status, outcome = ProcessorNoticeStatus.failed, _failure(error)
    else:
        status = ProcessorNoticeStatus.deleted
        outcome = (
            f"Stripe deleted the customer {customer} and its saved cards."
            if existed
            else f"Stripe holds no customer {customer} on this account any more (deleted before)."
        )
    with unit_of_work():
        notice = db.session.get(ProcessorNotice, notice_id, with_for_update=True)
        if notice.status == ProcessorNoticeStatus.deleted:
            return  # another attempt finished first; a failure must not undo it
        notice.status = status
        notice.outcome = outcome
        notice.attempted_at = at
        if status == ProcessorNoticeStatus.deleted:
            notice.action = "delete"
            notice.sent_at = clock.now()
            record = db.session.get(Client, notice.client_id)
            if record.stripe_customer_id == customer:
                # The cards went with the customer: nothing is left to charge.
                record.stripe_customer_id = None
                record.stripe_payment_method_id = None
                record.card_expires_on = None


def _failure(error: Exception) -> str:
    """Say in a line why Stripe could not be asked, for staff reading the notice."""
    if isinstance(error, Problem):
        detail = error.detail or error.title
    else:
        detail = getattr(error, "user_message", None) or type(error).__name__
    return f"Not deleted yet: {detail} Retried with the request's notices."[:1000]


@transaction
def mark_processor_notice_sent(
    request: PrivacyRequest, notice_id: int, outcome: str | None
) -> ProcessorNotice:
    """Record that staff sent a notice the platform cannot send itself (a recipient, the dashboard)."""
    notice = db.session.get(ProcessorNotice, notice_id)
    if notice is None or notice.request_id != request.id:
        raise Problem(404, "No such notice for this privacy request.")
    if notice.action not in ("notify", "record"):
        raise Problem(
            409,
            "The platform carries out this notice itself; retry the request's notices instead.",
            kind="notice-carried-out-by-platform",
        )
    if notice.status != ProcessorNoticeStatus.sent:
        notice.status = ProcessorNoticeStatus.sent
        notice.sent_at = clock.now()
        notice.outcome = outcome or "Sent by the clinic."
    return notice


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
        db.session.execute(delete(BookingCharge).where(BookingCharge.booking_id.in_(bookings)))
        db.session.execute(delete(OutboxMessage).where(OutboxMessage.booking_id.in_(bookings)))
        # The ledger keeps the money trail by id; the payment rows go with their bookings.
        db.session.execute(delete(Payment).where(Payment.booking_id.in_(bookings)))
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


# --- alerts ----------------------------------------------------------------------------------


def alert_nearing_deadlines(clinic: Clinic, within: timedelta, now: datetime | None = None) -> int:
    """Write one alert to the clinic for each open request due within ``within``."""
    now = now or clock.now()
    nearing = list(
        db.session.scalars(
            select(PrivacyRequest).where(
                PrivacyRequest.status.in_(OPEN_STATUSES),
                PrivacyRequest.alerted_at.is_(None),
                PrivacyRequest.due_at <= now + within,
            )
        )
    )
    for request in nearing:
        due = local_day(clock.as_utc(request.due_at), clinic.timezone).isoformat()
        outbox.queue(
            "staff_alert",
            dedupe_key=f"privacy-deadline:{request.id}:{clock.as_utc(request.due_at).isoformat()}",
            due_at=now,
            to=clinic.contact_email,
            subject=f"Privacy request {request.id} is due on {due}",
            body=(
                f"The {request.kind.replace('_', ' ')} request from "
                f"{request.requester_name} must be answered by {due} "
                f"({request.deadline_clause_text})"
            ),
        )
        request.alerted_at = now
    return len(nearing)


# --- breaches, recipients, opt-out reviews ----------------------------------------------------


@transaction
def record_breach(clinic: Clinic, data: dict[str, Any], actor: Principal) -> BreachIncident:
    """Register an incident and the notices every applicable rule requires, each with its clock."""
    incident = BreachIncident(**data, recorded_by_user_id=actor.user.id)
    incident.discovered_at = clock.as_utc(incident.discovered_at)
    db.session.add(incident)
    for notice in hooks_for(clinic).answers(
        "clinic_breach_obligations", clinic=clinic, incident=incident
    ):
        incident.notices.append(
            BreachNotice(
                recipient=notice.recipient,
                due_at=notice.due_at,
                as_soon_as_practicable=notice.as_soon_as_practicable,
                clause_id=notice.clause.id,
                clause_text=notice.clause.text,
                clause_source=notice.clause.source,
            )
        )
    db.session.flush()
    return incident


def breaches() -> list[BreachIncident]:
    """Return the clinic's breach register, newest first."""
    return list(db.session.scalars(select(BreachIncident).order_by(BreachIncident.id.desc())))


@transaction
def mark_notice_sent(incident_id: int, notice_id: int) -> BreachNotice:
    """Record that a breach notice went out."""
    notice = db.session.get(BreachNotice, notice_id)
    if notice is None or notice.incident_id != incident_id:
        raise Problem(404, "No such notice for this incident.")
    if notice.sent_at is None:
        notice.sent_at = clock.now()
    return notice


@transaction
def transfer(clinic: Clinic, actor: Principal, recipient_id: int, data: dict[str, Any]) -> Any:
    """Send a client's data to a recipient, if every rule allows it, and log the disclosure."""
    recipient = db.session.get(DataRecipient, recipient_id)
    if recipient is None:
        raise Problem(404, "No such data recipient at this clinic.")
    record = clients.client(data["client_id"])
    decisions = hooks_for(clinic).answers(
        "clinic_disclosure_allowed", clinic=clinic, disclosure=recipient
    )
    refused = next((d for d in decisions if not d.allowed), None)
    if refused is not None:
        raise Problem(
            409,
            f"{refused.clause.text} Record the basis for {recipient.name} ({recipient.country}) first.",
            kind="disclosure-refused",
            clause=refused.clause.id,
        )
    basis = next((d.basis for d in decisions if d.basis), None)
    clients.record_disclosure(
        actor,
        record,
        recipient=recipient_label(recipient),
        purpose=data["purpose"],
        description=f"{data['description']}" + (f" [basis: {basis}]" if basis else ""),
    )
    return {"allowed": True, "basis": basis, "recipient": recipient.name}


def opt_out_reviews(open_only: bool = True) -> list[OptOutReview]:
    """Return free-text replies waiting for staff, the earliest honour-by date first."""
    statement = select(OptOutReview).order_by(OptOutReview.honour_by, OptOutReview.id)
    if open_only:
        statement = statement.where(OptOutReview.decided_at.is_(None))
    return list(db.session.scalars(statement))


@transaction
def add_data_recipient(data: dict[str, Any]) -> DataRecipient:
    """Record a processor or recipient of client data, where it is and on what basis."""
    recipient = DataRecipient(**data)
    db.session.add(recipient)
    return recipient


def data_recipients() -> list[DataRecipient]:
    """The clinic's data recipients, first recorded first."""
    return list(db.session.scalars(select(DataRecipient).order_by(DataRecipient.id)))
