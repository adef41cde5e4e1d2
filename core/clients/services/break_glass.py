"""Break-glass: time-limited emergency access to one client's health data, and its review."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import clock
from core.accounts.access import Principal
from core.audit.models import AuditAction
from core.clients.models import Client, EmergencyAccess
from core.clients.services.access import _audit
from core.errors import Invalid, NotAllowed, NotFound, field_error
from core.extensions import db
from core.unit_of_work import transaction

#: The longest a break-glass grant may run.
MAX_EMERGENCY_MINUTES = 240


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
