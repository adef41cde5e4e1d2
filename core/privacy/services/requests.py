"""Privacy requests: receiving, verifying, extending, denying and carrying them out."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core import clock
from core.accounts.access import Principal
from core.clients import services as clients
from core.clients.models import Client, Guardian
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.hooks.decisions import PrivacyRight
from core.messaging import outbox
from core.privacy.calendars import local_day
from core.privacy.models import OPEN_STATUSES, PrivacyRequest, RequestStatus
from core.privacy.services.consents import MARKETING_CONSENTS, _revoke
from core.privacy.services.deletion import delete_client_data
from core.privacy.services.processors import carry_out_notices
from core.privacy.services.rules import combined_deadline, representative_age, rights_offered
from core.tenancy.models import Clinic
from core.unit_of_work import after_commit, transaction


@transaction
def submit(clinic: Clinic, data: dict[str, Any], actor: Principal | None = None) -> PrivacyRequest:
    """Record a privacy request, give it its deadline and acknowledge it.

    An opt-out needs no identity check and takes effect at once when the
    requester is known; every other request waits for verification.
    """
    kind = PrivacyRight(data["kind"])
    offered = rights_offered(clinic)
    if kind not in offered:
        raise Invalid(
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
        raise NotFound("No such privacy request at this clinic.")
    return found


def queue(include_closed: bool = False) -> list[PrivacyRequest]:
    """Return the clinic's requests, the nearest deadline first, with their processor notices."""
    statement = (
        select(PrivacyRequest)
        .options(selectinload(PrivacyRequest.processor_notices))
        .order_by(PrivacyRequest.due_at, PrivacyRequest.id)
    )
    if not include_closed:
        statement = statement.where(PrivacyRequest.status.in_(OPEN_STATUSES))
    return list(db.session.scalars(statement))


def _require_open(request: PrivacyRequest) -> None:
    if request.status not in OPEN_STATUSES:
        raise Refused(f"The request is already {request.status.value}.", kind="request-closed")


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
        raise Invalid(
            "A representative must be a parent or guardian on file for this client.",
            kind="representative-not-on-file",
            errors=[field_error("guardian_id", "not a guardian of this client")],
        )
    limit = representative_age(clinic)
    if (
        record.date_of_birth is None
        or clients.age_on(record.date_of_birth, clients.today_at(clinic)) >= limit
    ):
        raise Refused(
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
        raise Refused("The deadline has already been extended once.", kind="already-extended")
    if request.extendable_to is None:
        raise Refused("The rules for this request allow no extension.", kind="no-extension-allowed")
    if now > clock.as_utc(request.due_at):
        raise Refused(
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
        raise Refused(
            "The requester's identity is not verified: nothing is released or changed before it is.",
            kind="identity-not-verified",
        )
    if request.client_id is None:
        raise Refused("The request is not matched to a client yet.", kind="no-client")
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
        raise Invalid(
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
