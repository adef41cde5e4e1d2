"""The periodic jobs, as plain functions: Celery and the in-process runner both call these."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from core.bookings.services import expire_holds
from core.extensions import db
from core.messaging.delivery import deliver_due
from core.tenancy.models import Clinic, ClinicStatus
from core.tenancy.scope import clinic_scope

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one pass of the periodic jobs did."""

    holds_expired: int
    messages_sent: int
    messages_skipped: int
    messages_retried: int


def expire_all_holds() -> int:
    """Free the slots of every clinic's lapsed holds."""
    total = 0
    clinic_ids = list(
        db.session.scalars(select(Clinic.id).where(Clinic.status == ClinicStatus.active))
    )
    db.session.remove()
    for clinic_id in clinic_ids:
        with clinic_scope(db.session.get(Clinic, clinic_id)):
            total += expire_holds()
            db.session.commit()
    return total


def tick() -> TickReport:
    """Run every periodic job once: expire holds, then deliver due messages."""
    expired = expire_all_holds()
    delivered = deliver_due()
    if expired or delivered.sent or delivered.retried:
        log.info("jobs: %s holds expired, %s messages sent", expired, delivered.sent)
    return TickReport(expired, delivered.sent, delivered.skipped, delivered.retried)
