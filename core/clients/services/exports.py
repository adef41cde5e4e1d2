"""Export and disclosure: everything held about a client as one document, each one logged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from core import clock
from core.accounts.access import Principal
from core.audit.models import AuditAction
from core.clients import schemas
from core.clients.models import (
    AdverseReaction,
    Client,
    ClinicalNote,
    HealthIntake,
    Photo,
    ProductUse,
)
from core.clients.services.access import _audit, require_health_access
from core.clients.services.consent import consents
from core.extensions import db
from core.unit_of_work import transaction


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
