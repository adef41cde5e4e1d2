"""What the clinic's privacy rules give: the rights offered, deadlines, who may act for a client."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from core import clock
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import Clause, PrivacyRight, RequestDeadline
from core.messaging import outbox
from core.privacy.calendars import local_day
from core.privacy.models import OPEN_STATUSES, PrivacyRequest
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for

#: A parent may act for a client younger than this unless a plugin says younger.
REPRESENTATIVE_AGE = 18


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
        raise Refused(
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
