"""Consents: given with their exact text and evidence, revoked, withdrawn by an opt-out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from core import clock
from core.accounts.access import Principal
from core.audit.models import AuditAction
from core.clients.models import Client, Consent, ConsentKind, ConsentMethod, Guardian
from core.clients.services.access import _audit
from core.errors import Invalid, NotFound, field_error
from core.extensions import db
from core.unit_of_work import transaction


def consents(record: Client) -> list[Consent]:
    """Return every consent of the client, given and revoked, oldest first."""
    return list(
        db.session.scalars(
            select(Consent).where(Consent.client_id == record.id).order_by(Consent.id)
        )
    )


def active_consent(client_id: int, kind: ConsentKind) -> Consent | None:
    """Return the client's standing consent of ``kind``, the latest if several."""
    return db.session.scalar(
        select(Consent)
        .where(Consent.client_id == client_id, Consent.kind == kind, Consent.revoked_at.is_(None))
        .order_by(Consent.id.desc())
        .limit(1)
    )


@transaction
def give_consent(actor: Principal, record: Client, data: dict[str, Any]) -> Consent:
    """Record a consent with its exact text, version, time, method and evidence."""
    guardian_id = data.get("guardian_id")
    if data["kind"] == ConsentKind.parental:
        guardian = db.session.get(Guardian, guardian_id) if guardian_id else None
        if guardian is None or guardian.client_id != record.id:
            raise Invalid(
                "Parental consent is given by a guardian on file.",
                errors=[field_error("guardian_id", "a guardian of this client is required")],
            )
    elif guardian_id is not None:
        raise Invalid(
            "Only parental consent names a guardian.",
            errors=[field_error("guardian_id", "only for parental consent")],
        )
    if data["kind"] in (ConsentKind.transactional_sms, ConsentKind.marketing_sms) and not (
        data.get("phone") or record.phone
    ):
        raise Invalid(
            "An SMS consent needs the phone number it covers.",
            errors=[field_error("phone", "required for SMS consent")],
        )
    return _new_consent(record, data, recorded_by=actor.user.id)


@transaction
def consent_from_client(record: Client, data: dict[str, Any]) -> Consent:
    """Record a consent the client gave themself, signed electronically from their booking link.

    ``data`` as for :func:`give_consent`; no staff member records it, and the
    evidence (the signature, the document's hash, address and browser) is the
    caller's to give.
    """
    consent = _new_consent(record, {**data, "method": ConsentMethod.electronic}, recorded_by=None)
    _audit(
        AuditAction.create,
        "consent",
        record.id,
        consent.id,
        fields=["text", "evidence"],
        unsigned_actor="client",
    )
    return consent


def _new_consent(record: Client, data: dict[str, Any], *, recorded_by: int | None) -> Consent:
    consent = Consent(
        client_id=record.id,
        kind=data["kind"],
        text=data["text"],
        text_version=data["text_version"],
        given_at=data.get("given_at") or clock.now(),
        method=data["method"],
        evidence=data.get("evidence") or {},
        phone=data.get("phone") or (record.phone if "sms" in data["kind"] else None),
        guardian_id=data.get("guardian_id"),
        recorded_by_user_id=recorded_by,
    )
    db.session.add(consent)
    db.session.flush()
    return consent


@transaction
def revoke_consent(actor: Principal, record: Client, consent_id: int, method: str) -> Consent:
    """Revoke one consent, and with it any earlier consent of the same kind.

    Withdrawing consent to clinical photos withdraws it, whichever version
    of the text it was given under: an older consent must not come back to
    life. Consents of other kinds stand as they were.
    """
    consent = db.session.get(Consent, consent_id)
    if consent is None or consent.client_id != record.id:
        raise NotFound("No such consent for this client.")
    now = clock.now()
    earlier = db.session.scalars(
        select(Consent).where(
            Consent.client_id == record.id,
            Consent.kind == consent.kind,
            Consent.revoked_at.is_(None),
            Consent.id <= consent.id,
        )
    )
    for standing in earlier:
        standing.revoked_at = now
        standing.revocation_method = method
        standing.revoked_by_user_id = actor.user.id
    db.session.flush()
    return consent


def withdraw_consents(
    client_ids: Iterable[int], kinds: Iterable[ConsentKind], method: str
) -> list[Consent]:
    """Withdraw every standing consent of ``kinds`` for these clients (an opt-out); return them.

    The way an opt-out that names no single consent (an SMS STOP, a marketing
    opt-out request, a deletion) takes effect.
    """
    ids, wanted = list(client_ids), list(kinds)
    if not ids or not wanted:
        return []
    now = clock.now()
    standing = list(
        db.session.scalars(
            select(Consent).where(
                Consent.client_id.in_(ids), Consent.kind.in_(wanted), Consent.revoked_at.is_(None)
            )
        )
    )
    for consent in standing:
        consent.revoked_at = now
        consent.revocation_method = method
    return standing
