"""The periodic jobs, as plain functions: Celery and the in-process runner both call these."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.bookings.services import expire_holds
from core.extensions import db
from core.messaging.delivery import deliver_due
from core.tenancy.services import each_active_clinic

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
    for _ in each_active_clinic():
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
