"""Client records: who may see what (minimum necessary), and every health access audited."""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from core import clock
from core.accounts.access import Permission, Principal, role_may
from core.audit import services as audit
from core.audit.models import AuditAction
from core.clients import schemas
from core.clients.models import (
    AdverseReaction,
    Client,
    ClinicalNote,
    Consent,
    ConsentKind,
    ConsentMethod,
    EmergencyAccess,
    Guardian,
    HealthIntake,
    Photo,
    ProductUse,
)
from core.errors import Invalid, NotAllowed, NotFound, Refused, field_error
from core.extensions import db
from core.hooks.decisions import AgeRule
from core.schemas import normalise_phone
from core.tenancy.models import Clinic, Location
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction, unit_of_work

#: The longest a break-glass grant may run.
MAX_EMERGENCY_MINUTES = 240


# --- names and search ----------------------------------------------------------


def fold(text: str | None) -> str:
    """Return ``text`` lower-cased without accents, the form names are searched in."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _prefix(column: Any, prefix: str) -> Any:
    # A range, not LIKE, so the btree index serves it on SQLite and PostgreSQL alike.
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def search(
    query: str | None = None,
    *,
    limit: int = 25,
    after_id: int | None = None,
    country: str | None = None,
) -> list[Client]:
    """Find the current clinic's clients by name, email or phone.

    Every word of ``query`` must start one of the client's names; a query
    with ``@`` matches an email prefix; digits match a phone number (a whole
    number read in ``country``, or the end of one).
    """
    statement = select(Client).order_by(Client.search_last, Client.search_first, Client.id)
    text = (query or "").strip()
    if "@" in text:
        statement = statement.where(_prefix(Client.email, text.lower()))
    elif text and sum(c.isdigit() for c in text) >= 4 and not any(c.isalpha() for c in text):
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) >= 10:
            # A whole number: match it in E.164, through the index.
            candidates = {f"+{digits}"}
            with contextlib.suppress(ValueError):
                candidates.add(normalise_phone(text, country or "US"))
            statement = statement.where(
                or_(*(_prefix(Client.phone, candidate) for candidate in candidates))
            )
        else:
            # The end of a number ("555-0134"): rarer, and a scan.
            statement = statement.where(Client.phone.like(f"%{digits}"))
    elif text:
        for word in fold(text).split():
            statement = statement.where(
                or_(
                    _prefix(Client.search_first, word),
                    _prefix(Client.search_last, word),
                    _prefix(Client.search_preferred, word),
                )
            )
    if after_id is not None:
        statement = statement.where(Client.id > after_id).order_by(None).order_by(Client.id)
    return list(db.session.scalars(statement.limit(limit)))


# --- contact records (all staff) -----------------------------------------------


_CONTACT_FIELDS = (
    "legal_first_name",
    "legal_last_name",
    "preferred_name",
    "date_of_birth",
    "gender",
    "email",
    "phone",
    "street",
    "unit",
    "city",
    "region",
    "postal_code",
    "country",
    "emergency_contact_name",
    "emergency_contact_phone",
    "emergency_contact_relationship",
    "preferred_location_id",
    "preferred_channel",
    "language",
    "timezone",
)


def client(client_id: int) -> Client:
    """Return the current clinic's client ``client_id`` or raise 404."""
    found = db.session.get(Client, client_id)
    if found is None:
        raise NotFound("No such client at this clinic.")
    return found


def _check_location(location_id: int | None) -> None:
    if location_id is not None and db.session.get(Location, location_id) is None:
        raise Invalid(
            "No such location.",
            errors=[field_error("preferred_location_id", "not a location of this clinic")],
        )


def _apply_contact(record: Client, data: dict[str, Any]) -> None:
    for key in _CONTACT_FIELDS:
        if key in data:
            setattr(record, key, data[key])
    record.search_first = fold(record.legal_first_name)
    record.search_last = fold(record.legal_last_name)
    record.search_preferred = fold(record.preferred_name) or None


@transaction
def create_client(data: dict[str, Any]) -> Client:
    """Add a client to the current clinic from validated ``data``."""
    _check_location(data.get("preferred_location_id"))
    record = Client()
    _apply_contact(record, data)
    db.session.add(record)
    db.session.flush()
    return record


@transaction
def update_client(record: Client, data: dict[str, Any]) -> Client:
    """Change a client's contact details."""
    _check_location(data.get("preferred_location_id"))
    _apply_contact(record, data)
    db.session.flush()
    return record


@transaction
def add_guardian(record: Client, data: dict[str, Any]) -> Guardian:
    """Record a parent or guardian of ``record``."""
    guardian = Guardian(client_id=record.id, **data)
    db.session.add(guardian)
    db.session.flush()
    return guardian


# --- age and minors -------------------------------------------------------------


def age_on(date_of_birth: date, day: date) -> int:
    """Return a person's age in whole years on ``day``."""
    return relativedelta(day, date_of_birth).years


def today_at(clinic: Clinic) -> date:
    """Return today's date where the clinic is."""
    return clock.now().astimezone(ZoneInfo(clinic.timezone)).date()


def age_rules_for(clinic: Clinic, record: Client, applies_to: str | None = None) -> list[AgeRule]:
    """Return the clinic's age rules that apply to ``record`` today (none if no birth date).

    The thresholds come from the clinic's plugins (``clinic_age_rules``), so
    under 18 at one clinic and under 13 at another is a setting, not code.
    """
    if record.date_of_birth is None:
        return []
    age = age_on(record.date_of_birth, today_at(clinic))
    rules = hooks_for(clinic).answers("clinic_age_rules", clinic=clinic)
    return [
        rule
        for rule in rules
        if age < rule.under
        # "representative" rules say who may act for the client, not what they may do.
        and (rule.applies_to == applies_to if applies_to else rule.applies_to != "representative")
    ]


def has_parental_consent(record: Client) -> bool:
    """Return whether a standing parental consent is on file for ``record``."""
    return active_consent(record.id, ConsentKind.parental) is not None


@dataclass(frozen=True)
class AgeGate:
    """An age rule that applies to a client today, and whether what it asks is on file."""

    rule: AgeRule
    satisfied: bool

    @property
    def under(self) -> int:
        return self.rule.under

    @property
    def requires(self) -> str:
        return self.rule.requires

    @property
    def applies_to(self) -> str:
        return self.rule.applies_to

    @property
    def clause(self) -> Any:
        return self.rule.clause


def age_gates(clinic: Clinic, record: Client, applies_to: str | None = None) -> list[AgeGate]:
    """Return each age rule that applies to ``record`` today and whether it is met.

    ``parental_consent`` is met by a standing parental consent from a
    guardian on file; ``written_parental_permission`` only by one given in
    writing; ``refused`` never. Bookings check these before a minor is booked.
    """
    rules = age_rules_for(clinic, record, applies_to)
    if not rules:
        return []
    standing = list(
        db.session.scalars(
            select(Consent).where(
                Consent.client_id == record.id,
                Consent.kind == ConsentKind.parental,
                Consent.revoked_at.is_(None),
            )
        )
    )
    gates = []
    for rule in rules:
        if rule.requires == "refused":
            met = False
        elif rule.requires == "written_parental_permission":
            met = any(c.method == ConsentMethod.written for c in standing)
        else:
            met = bool(standing)
        gates.append(AgeGate(rule, met))
    return gates


# --- minimum necessary --------------------------------------------------------------


def emergency_grant(actor: Principal, client_id: int) -> EmergencyAccess | None:
    """Return the actor's live break-glass grant for ``client_id``, if any."""
    now = clock.now()
    grants = db.session.scalars(
        select(EmergencyAccess).where(
            EmergencyAccess.user_id == actor.user.id, EmergencyAccess.client_id == client_id
        )
    )
    return next((g for g in grants if clock.as_utc(g.expires_at) > now), None)


def require_health_access(actor: Principal, client_id: int, *, write: bool = False) -> bool:
    """Allow ``actor`` to touch ``client_id``'s health data, or raise 403.

    Providers, managers and owners may; front desk may not (minimum
    necessary) unless they hold a live break-glass grant for this client, in
    which case every access is flagged for review. Returns whether the access
    is an emergency one.
    """
    role = actor.membership.role if actor.membership else None
    permission = Permission.edit_health if write else Permission.view_health
    if role is not None and role_may(role, permission):
        return False
    if emergency_grant(actor, client_id) is not None:
        from flask import g, has_request_context

        if has_request_context():
            g.emergency_access = True
        return True
    raise NotAllowed(
        "Your role does not include clients' health data. In an emergency, request break-glass access with a reason.",
        kind="health-data-restricted",
    )


def _audit(
    action: AuditAction,
    resource: str,
    client_id: int,
    resource_id: int | None = None,
    fields: Iterable[str] = (),
    **extra: Any,
) -> None:
    audit.record(
        action, resource, client_id=client_id, resource_id=resource_id, fields=fields, **extra
    )


def _read_records(
    actor: Principal, record: Client, model: Any, resource: str, fields: list[str]
) -> list[Any]:
    """Return the client's rows of a health record, oldest first, after checking and auditing the read."""
    require_health_access(actor, record.id)
    found = list(
        db.session.scalars(select(model).where(model.client_id == record.id).order_by(model.id))
    )
    _audit(AuditAction.read, resource, record.id, fields=fields, reason=f"{len(found)} records")
    return found


# --- health intake ---------------------------------------------------------------------


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
        change_reason=change_reason,
        recorded_by_user_id=actor.user.id,
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


# --- consents ------------------------------------------------------------------------------


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
    consent = Consent(
        client_id=record.id,
        kind=data["kind"],
        text=data["text"],
        text_version=data["text_version"],
        given_at=data.get("given_at") or clock.now(),
        method=data["method"],
        evidence=data.get("evidence") or {},
        phone=data.get("phone") or (record.phone if "sms" in data["kind"] else None),
        guardian_id=guardian_id,
        recorded_by_user_id=actor.user.id,
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


# --- break-glass --------------------------------------------------------------------------


@transaction
def open_emergency_access(
    actor: Principal, record: Client, reason: str, minutes: int
) -> EmergencyAccess:
    """Grant the actor time-limited access to one client's health data, for a stated reason."""
    if minutes < 1 or minutes > MAX_EMERGENCY_MINUTES:
        raise Invalid(
            "Emergency access lasts 1 to 240 minutes.",
            errors=[field_error("minutes", f"between 1 and {MAX_EMERGENCY_MINUTES}")],
        )
    now = clock.now()
    grant = EmergencyAccess(
        user_id=actor.user.id,
        client_id=record.id,
        reason=reason.strip(),
        started_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    db.session.add(grant)
    db.session.flush()
    _audit(
        AuditAction.emergency_access, "emergency_access", record.id, grant.id, reason=reason.strip()
    )
    return grant


def emergency_grants(unreviewed_only: bool = False) -> list[EmergencyAccess]:
    """Return break-glass grants, newest first, for managers to review."""
    statement = select(EmergencyAccess).order_by(EmergencyAccess.id.desc())
    if unreviewed_only:
        statement = statement.where(EmergencyAccess.reviewed_at.is_(None))
    return list(db.session.scalars(statement))


@transaction
def review_emergency_access(actor: Principal, grant_id: int, note: str) -> EmergencyAccess:
    """Mark a break-glass grant reviewed, with the reviewer's note; ends it if still running."""
    grant = db.session.get(EmergencyAccess, grant_id)
    if grant is None:
        raise NotFound("No such emergency access.")
    if grant.user_id == actor.user.id:
        raise NotAllowed("Someone else must review your own emergency access.", kind="self-review")
    now = clock.now()
    if grant.reviewed_at is None:
        grant.reviewed_at = now
        grant.reviewed_by_user_id = actor.user.id
        grant.review_note = note
        if clock.as_utc(grant.expires_at) > now:
            grant.expires_at = now
    db.session.flush()
    _audit(AuditAction.review, "emergency_access", grant.client_id, grant.id, reason=note)
    return grant


# --- export and disclosure -----------------------------------------------------------------


def export_document(record: Client) -> dict[str, Any]:
    """Return everything the clinic holds about ``record`` as one JSON-ready document."""

    def rows(model: Any) -> list[Any]:
        return list(
            db.session.scalars(select(model).where(model.client_id == record.id).order_by(model.id))
        )

    return {
        "client": schemas.ClientSchema().dump(record),
        "health_intake": schemas.IntakeSchema(many=True).dump(rows(HealthIntake)),
        "notes": schemas.NoteSchema(many=True).dump(rows(ClinicalNote)),
        "products": schemas.ProductSchema(many=True).dump(rows(ProductUse)),
        "adverse_reactions": schemas.ReactionSchema(many=True).dump(rows(AdverseReaction)),
        "consents": schemas.ConsentSchema(many=True).dump(consents(record)),
        "photos": schemas.PhotoSchema(many=True, exclude=("in_marketing_use",)).dump(rows(Photo)),
    }


@transaction
def export(
    actor: Principal, record: Client, recipient: str | None = None, purpose: str | None = None
) -> dict[str, Any]:
    """Return everything held about the client, and log it as an export (a disclosure if to someone else)."""
    require_health_access(actor, record.id)
    document = export_document(record)
    action = AuditAction.disclose if recipient else AuditAction.export
    _audit(
        action,
        "client",
        record.id,
        record.id,
        fields=sorted(document),
        recipient=recipient,
        reason=purpose,
    )
    return document


@transaction
def record_disclosure(
    actor: Principal, record: Client, recipient: str, purpose: str, description: str
) -> None:
    """Log a disclosure made outside the platform (records sent to another practitioner, a court order)."""
    require_health_access(actor, record.id)
    _audit(
        AuditAction.disclose,
        "client",
        record.id,
        record.id,
        recipient=recipient,
        reason=f"{purpose}: {description}",
    )


def when(value: datetime | None) -> datetime | None:
    """Return ``value`` as UTC (SQLite hands back naive datetimes)."""
    return clock.as_utc(value) if value is not None else None


# --- photos ------------------------------------------------------------------------------------


def add_photo(
    actor: Principal,
    record: Client,
    raw: bytes,
    *,
    kind: str,
    caption: str | None,
    taken_on: date | None,
    marketing_use: bool,
    clinic_slug: str,
    max_bytes: int,
) -> Photo:
    """Store a before/after photo, only with clinical-photo consent on file.

    Marketing use needs its own consent, and counts only while it stands.
    """
    from core.clients.photos import clean_image, photo_store, store_photo

    require_health_access(actor, record.id, write=True)
    consent = active_consent(record.id, ConsentKind.clinical_photos)
    if consent is None:
        raise Refused(
            "The client has not consented to clinical photos; record that consent first.",
            kind="photo-consent-missing",
        )
    if marketing_use and active_consent(record.id, ConsentKind.marketing_photos) is None:
        raise Refused(
            "The client has not consented to marketing use of photos.",
            kind="photo-consent-missing",
            errors=[field_error("marketing_use", "needs marketing photo consent", "form")],
        )
    image = clean_image(raw, max_bytes)
    key = store_photo(image, clinic_slug)
    try:
        with unit_of_work():
            photo = Photo(
                client_id=record.id,
                kind=kind,
                consent_id=consent.id,
                caption=caption,
                storage_key=key,
                content_type=image.content_type,
                byte_size=len(image.data),
                width=image.width,
                height=image.height,
                taken_on=taken_on,
                marketing_use=marketing_use,
                uploaded_by_user_id=actor.user.id,
            )
            db.session.add(photo)
            db.session.flush()
            _audit(AuditAction.create, "photo", record.id, photo.id, fields=["image"])
    except BaseException:
        # The file is stored before the row commits; a row that never commits leaves no file.
        photo_store().delete(key)
        raise
    return photo


@transaction
def photos(actor: Principal, record: Client) -> list[Photo]:
    """Return the client's photos' details (audited read)."""
    return _read_records(actor, record, Photo, "photo", ["caption"])


@transaction
def photo_image(actor: Principal, record: Client, photo_id: int) -> tuple[Photo, bytes]:
    """Return one photo and its decrypted image (audited read)."""
    from core.clients.photos import load_photo

    require_health_access(actor, record.id)
    photo = db.session.get(Photo, photo_id)
    if photo is None or photo.client_id != record.id:
        raise NotFound("No such photo for this client.")
    _audit(AuditAction.read, "photo", record.id, photo.id, fields=["image"])
    return photo, load_photo(photo.storage_key)


def in_marketing_use(photo: Photo) -> bool:
    """Return whether the photo may be used in marketing now (asked for, and consent standing)."""
    return (
        photo.marketing_use
        and active_consent(photo.client_id, ConsentKind.marketing_photos) is not None
    )
