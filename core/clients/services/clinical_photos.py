"""Clinical photos: stored only with consent, read with an audit, marketing use while consent stands."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from core.accounts.access import Principal
from core.audit.models import AuditAction
from core.clients.models import Client, ConsentKind, Photo
from core.clients.services.access import _audit, _read_records, require_health_access
from core.clients.services.consent import active_consent
from core.errors import NotFound, Refused, field_error
from core.extensions import db
from core.unit_of_work import transaction, unit_of_work


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


def photos_in_marketing_use(record: Client, found: Iterable[Photo]) -> set[int]:
    """Return the ids of the client's photos ``found`` that :func:`in_marketing_use` would pass.

    The client's consent is looked up once for all of them, not photo by photo.
    """
    asked = {photo.id for photo in found if photo.marketing_use}
    if not asked or active_consent(record.id, ConsentKind.marketing_photos) is None:
        return set()
    return asked
