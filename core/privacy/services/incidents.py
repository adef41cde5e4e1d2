"""The breach register: incidents and the notices each rule requires."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core import clock
from core.accounts.access import Principal
from core.errors import NotFound
from core.extensions import db
from core.privacy.models import BreachIncident, BreachNotice
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


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
    """Return the clinic's breach register, newest first, with each incident's notices."""
    return list(
        db.session.scalars(
            select(BreachIncident)
            .options(selectinload(BreachIncident.notices))
            .order_by(BreachIncident.id.desc())
        )
    )


@transaction
def mark_notice_sent(incident_id: int, notice_id: int) -> BreachNotice:
    """Record that a breach notice went out."""
    notice = db.session.get(BreachNotice, notice_id)
    if notice is None or notice.incident_id != incident_id:
        raise NotFound("No such notice for this incident.")
    if notice.sent_at is None:
        notice.sent_at = clock.now()
    return notice
