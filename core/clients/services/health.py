"""Health records: the versioned intake, file notes, products used and adverse reactions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.accounts.access import Principal
from core.audit.models import AuditAction
from core.clients.models import AdverseReaction, Client, ClinicalNote, HealthIntake, ProductUse
from core.clients.services.access import _audit, _read_records, require_health_access
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.unit_of_work import transaction


@transaction
def intake_versions(actor: Principal, record: Client) -> list[HealthIntake]:
    """Return every version of the client's intake, oldest first (audited read)."""
    require_health_access(actor, record.id)
    versions = list(
        db.session.scalars(
            select(HealthIntake)
            .where(HealthIntake.client_id == record.id)
            .order_by(HealthIntake.version)
        )
    )
    _audit(
        AuditAction.read,
        "health_intake",
        record.id,
        fields=["answers"],
        reason=f"{len(versions)} versions",
    )
    return versions


@transaction
def intake(actor: Principal, record: Client, version: int | None = None) -> HealthIntake:
    """Return the latest (or a given) version of the client's intake (audited read)."""
    require_health_access(actor, record.id)
    statement = select(HealthIntake).where(HealthIntake.client_id == record.id)
    if version is None:
        statement = statement.order_by(HealthIntake.version.desc()).limit(1)
    else:
        statement = statement.where(HealthIntake.version == version)
    found = db.session.scalar(statement)
    if found is None:
        raise NotFound(
            "No health intake on file." if version is None else f"No intake version {version}."
        )
    _audit(AuditAction.read, "health_intake", record.id, found.id, fields=sorted(found.answers))
    return found


@transaction
def record_intake(
    actor: Principal, record: Client, answers: dict[str, Any], change_reason: str | None
) -> HealthIntake:
    """Add a new intake version; earlier versions stay as they were."""
    require_health_access(actor, record.id, write=True)
    return _add_intake(record, answers, change_reason, recorded_by=actor.user.id)


@transaction
def intake_from_client(record: Client, answers: dict[str, Any]) -> HealthIntake:
    """Add the intake a client filled in themself, from their own booking link.

    No staff member is behind it: the version records no user, and the audit
    names the client as the actor, with the address and browser it came from.
    """
    return _add_intake(
        record, answers, "answered again by the client", recorded_by=None, actor="client"
    )


def _add_intake(
    record: Client,
    answers: dict[str, Any],
    change_reason: str | None,
    *,
    recorded_by: int | None,
    actor: str = "system",
) -> HealthIntake:
    # Lock the client's row (PostgreSQL) so two updates number their versions in turn.
    db.session.scalar(select(Client.id).where(Client.id == record.id).with_for_update())
    latest = db.session.scalar(
        select(func.max(HealthIntake.version)).where(HealthIntake.client_id == record.id)
    )
    if latest and not change_reason:
        raise Invalid(
            "Say why the intake changed.",
            errors=[field_error("change_reason", "required when updating an intake")],
        )
    version = HealthIntake(
        client_id=record.id,
        version=(latest or 0) + 1,
        answers=answers,
        change_reason=change_reason if latest else None,
        recorded_by_user_id=recorded_by,
    )
    try:
        with db.session.begin_nested():
            db.session.add(version)
    except IntegrityError:
        raise Refused(
            "The intake changed while you were editing it; reload and try again.",
            kind="intake-changed",
        ) from None
    _audit(
        AuditAction.create if not latest else AuditAction.update,
        "health_intake",
        record.id,
        version.id,
        fields=sorted(answers),
        unsigned_actor=actor,
    )
    return version


# --- clinical record ---------------------------------------------------------------------


@transaction
def notes(actor: Principal, record: Client) -> list[ClinicalNote]:
    """Return the client's file notes, oldest first, amendments after what they amend."""
    return _read_records(actor, record, ClinicalNote, "clinical_note", ["body"])


@transaction
def add_note(
    actor: Principal, record: Client, kind: str, body: str, amends_note_id: int | None = None
) -> ClinicalNote:
    """Add a file note, or an amendment to an earlier one (which stays as written)."""
    require_health_access(actor, record.id, write=True)
    if amends_note_id is not None:
        original = db.session.get(ClinicalNote, amends_note_id)
        if original is None or original.client_id != record.id:
            raise NotFound("No such note for this client.")
    note = ClinicalNote(
        client_id=record.id,
        kind=kind,
        body=body,
        amends_note_id=amends_note_id,
        author_user_id=actor.user.id,
    )
    db.session.add(note)
    db.session.flush()
    _audit(
        AuditAction.update if amends_note_id else AuditAction.create,
        "clinical_note",
        record.id,
        note.id,
        fields=["body"],
    )
    return note


@transaction
def products(actor: Principal, record: Client) -> list[ProductUse]:
    """Return the products used on or by the client (audited read)."""
    return _read_records(actor, record, ProductUse, "product_use", ["product", "details"])


@transaction
def add_product(actor: Principal, record: Client, data: dict[str, Any]) -> ProductUse:
    """Record a product used in the clinic or at home."""
    require_health_access(actor, record.id, write=True)
    use = ProductUse(client_id=record.id, recorded_by_user_id=actor.user.id, **data)
    db.session.add(use)
    db.session.flush()
    _audit(AuditAction.create, "product_use", record.id, use.id, fields=sorted(data))
    return use


@transaction
def reactions(actor: Principal, record: Client) -> list[AdverseReaction]:
    """Return the client's adverse reactions (audited read)."""
    return _read_records(
        actor, record, AdverseReaction, "adverse_reaction", ["description", "service"]
    )


@transaction
def add_reaction(actor: Principal, record: Client, data: dict[str, Any]) -> AdverseReaction:
    """Record an adverse reaction, linked to the product (or service) that caused it."""
    require_health_access(actor, record.id, write=True)
    product_use_id = data.get("product_use_id")
    if product_use_id is not None:
        use = db.session.get(ProductUse, product_use_id)
        if use is None or use.client_id != record.id:
            raise Invalid(
                "No such product for this client.",
                errors=[field_error("product_use_id", "not a product recorded for this client")],
            )
    if product_use_id is None and not data.get("service"):
        raise Invalid(
            "Say what caused the reaction.",
            errors=[field_error("product_use_id", "give product_use_id or service")],
        )
    reaction = AdverseReaction(client_id=record.id, recorded_by_user_id=actor.user.id, **data)
    db.session.add(reaction)
    db.session.flush()
    _audit(AuditAction.create, "adverse_reaction", record.id, reaction.id, fields=sorted(data))
    return reaction
