"""The periodic jobs, as plain functions: Celery and the in-process runner both call these."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from core import idempotency, request_ids
from core.bookings.services import expire_holds
from core.defaults.jurisdiction import baseline_settings
from core.extensions import db
from core.hooks.views import ClinicView
from core.integrations.delivery import deliver_due as deliver_webhooks
from core.messaging.delivery import deliver_due
from core.payments import services as payments
from core.privacy import services as privacy
from core.sales import services as sales
from core.tenancy.services import each_clinic
from core.unit_of_work import unit_of_work

log = logging.getLogger(__name__)


@dataclass
class TickReport:
    """What one pass of the periodic jobs did."""

    holds_expired: int
    messages_sent: int
    messages_skipped: int
    messages_retried: int
    records_purged: int = 0
    deadline_alerts: int = 0
    fees_charged: int = 0
    evidence_submitted: int = 0
    webhooks_sent: int = 0


def expire_all_holds() -> int:
    """Free the slots of every clinic's lapsed holds."""
    total = 0
    for _ in each_clinic():
        with unit_of_work():
            total += expire_holds()
    return total


def privacy_duties() -> tuple[int, int]:
    """Purge records whose retention hold has ended; alert clinics to privacy deadlines near."""
    purged = alerts = 0
    for clinic in each_clinic():
        try:
            with unit_of_work():
                purged_here = privacy.purge_expired_holds(clinic)
                days = baseline_settings(ClinicView.of(clinic))["deadline_alert_days"]
                alerts_here = privacy.alert_nearing_deadlines(clinic, timedelta(days=days))
        except Exception:
            # One clinic's failure must not stop the others' purges, or anyone's messages.
            log.exception("privacy duties failed for clinic %s; retried next tick", clinic.slug)
            continue
        purged += purged_here
        alerts += alerts_here
    return purged, alerts


def charge_fees() -> int:
    """Charge the fees clinics' policies made due, and refund or keep deposits as they decided."""
    charged = 0
    for clinic in each_clinic():
        if not clinic.stripe_account_id:
            continue
        try:
            charged += payments.charge_owed_fees(clinic)
            payments.settle_deposits(clinic)
            payments.flag_expiring_cards(clinic)
        except Exception:
            # Anything Stripe said yes to is healed by its webhook; the rest is retried.
            db.session.rollback()  # ends whatever read was open when it failed
            log.exception("charging fees failed for clinic %s; retried next tick", clinic.slug)
    return charged


def submit_dispute_evidence() -> int:
    """Submit the evidence of disputes at every clinic that sends it without review."""
    submitted = 0
    for clinic in each_clinic():
        # Not only clinics with an account now: a dispute is answered on the account it was
        # made on, which a clinic that disconnected still has at Stripe.
        try:
            submitted += payments.submit_queued_evidence(clinic)
        except Exception:
            db.session.rollback()
            log.exception("dispute evidence failed for clinic %s; retried next tick", clinic.slug)
    return submitted


def expire_store_credit() -> int:
    """Record the expiry of store credit past its date, at every clinic."""
    expired = 0
    for clinic in each_clinic():
        try:
            expired += sales.expire_store_credit(clinic)
        except Exception:
            db.session.rollback()
            log.exception(
                "store credit expiry failed for clinic %s; retried next tick", clinic.slug
            )
    return expired


def forget_old_idempotency_keys() -> int:
    """Delete Idempotency-Key answers past their day, at every clinic."""
    forgotten = 0
    for _clinic in each_clinic():
        forgotten += idempotency.forget_old_keys()
    return forgotten


def tick() -> TickReport:
    """Run every periodic job once: expire holds, privacy duties, fees, then deliver due messages.

    The pass has an id of its own (``tick-...``), carried into its log lines and its calls
    to Stripe; a message or webhook a request left carries that request's id instead.
    """
    with request_ids.carrying(request_ids.new("tick-")):
        return _tick()


def _tick() -> TickReport:
    expired = expire_all_holds()
    purged, alerts = privacy_duties()
    fees = charge_fees()
    evidence = submit_dispute_evidence()
    expire_store_credit()
    forget_old_idempotency_keys()
    # Webhooks first: an endpoint disabled now has its owner's email sent in this tick.
    webhooks = deliver_webhooks()
    delivered = deliver_due()
    if expired or delivered.sent or delivered.retried or purged or alerts or fees:
        log.info(
            "jobs %s: %s holds expired, %s record groups purged, %s deadline alerts, "
            "%s fees charged, %s messages sent",
            request_ids.current(),
            expired,
            purged,
            alerts,
            fees,
            delivered.sent,
        )
    return TickReport(
        expired,
        delivered.sent,
        delivered.skipped,
        delivered.retried,
        purged,
        alerts,
        fees,
        evidence,
        webhooks.succeeded,
    )
