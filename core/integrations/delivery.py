"""Sending due webhook deliveries: claimed with a lease, sent between units of work, retried with backoff.

Each pass, per clinic: read the due deliveries (one short read), then for each
claim it with a conditional UPDATE (pending and due, or sending with a lapsed
lease -> sending with a new lease) and commit; call the endpoint with nothing
open; record the outcome in a second short unit. Two workers never send one
delivery at once, and a worker that dies leaves the lease to lapse.

Rules (documented for the clinic's developers in ``docs/webhooks.md``):

- **Retries**: a failed attempt (anything but 2xx, a timeout, a refused
  connection) is tried again after 1, 2, 4, 8 ... minutes, never more than an
  hour apart, for three days after the delivery was made; then it is
  ``failed``.
- **Order**: a delivery is not attempted while an earlier delivery of the same
  subject (booking, client, or payment without a booking) to the same endpoint
  is still pending or being sent.
- **Disabling**: an endpoint whose every attempt has failed for three days is
  disabled and the clinic is emailed; its pending deliveries wait, and go
  again once it is enabled (PATCH).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import aliased

from core import clock, request_ids
from core.accounts.models import Membership, Role, User
from core.extensions import db
from core.integrations import destinations, sending
from core.integrations.models import (
    UNFINISHED,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from core.integrations.services import prune_log
from core.integrations.signing import HEADER, sign
from core.messaging import outbox
from core.tenancy.models import Clinic
from core.tenancy.services import each_clinic
from core.unit_of_work import no_open_unit, transaction, unit_of_work

log = logging.getLogger(__name__)

#: Longer than one attempt can take (connect and read timeouts), so a live worker keeps its claim.
LEASE = timedelta(minutes=2)
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=1)
#: How long a delivery is retried before it is given up.
RETRY_FOR = timedelta(days=3)
#: How long an endpoint may fail every attempt before it is disabled.
DISABLE_AFTER = timedelta(days=3)


def backoff(attempts: int) -> timedelta:
    """Return how long to wait after the ``attempts``-th failed attempt: 1, 2, 4 ... minutes, at most an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


@dataclass(frozen=True)
class Attempt:
    """One claimed delivery, with all the call needs, read before the claim committed."""

    delivery_id: int
    endpoint_id: int
    url: str
    secret: str
    event_id: str
    event_type: str
    payload: dict[str, Any]
    #: The claim's lease: only the worker holding this lease records the outcome.
    leased_until: datetime | None = None
    #: The request that caused the event, passed on as Request-Id.
    request_id: str | None = None


@dataclass
class WebhookReport:
    """What one delivery pass did."""

    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    disabled: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: WebhookReport) -> None:
        for name in ("succeeded", "retried", "failed", "disabled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)


def due(now: datetime) -> Any:
    """Which deliveries are due at ``now``: waiting for their time, or claimed under a lapsed
    lease (a delivery to a disabled endpoint is due too, but waits for it: see _due_ids)."""
    return or_(
        (WebhookDelivery.status == DeliveryStatus.pending) & (WebhookDelivery.due_at <= now),
        (WebhookDelivery.status == DeliveryStatus.sending)
        & (WebhookDelivery.lease_expires_at <= now),
    )


def _due_ids(now: datetime, limit: int) -> list[tuple[int, int]]:
    """Deliveries due now, to enabled endpoints, with no earlier one of their subject unfinished."""
    earlier = aliased(WebhookDelivery)
    held_back = (
        select(earlier.id)
        .where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.order_key == WebhookDelivery.order_key,
            earlier.id < WebhookDelivery.id,
            earlier.status.in_(UNFINISHED),
        )
        .exists()
    )
    return [
        (delivery_id, endpoint_id)
        for delivery_id, endpoint_id in db.session.execute(
            select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.enabled.is_(True), due(now), ~held_back)
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
    ]


@transaction
def claim(delivery_id: int, now: datetime) -> Attempt | None:
    """Take a due delivery for this worker; return None if another worker has it or it may not go."""
    # The lease runs from the claim itself, not from the start of the pass: a pass
    # that has spent minutes on slow endpoints must not claim with a lapsed lease.
    leased_until = clock.now() + LEASE
    # An UPDATE's result is a cursor's: it says how many rows matched.
    taken = cast(
        "CursorResult[Any]",
        db.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, due(now))
            .values(
                status=DeliveryStatus.sending,
                lease_expires_at=leased_until,
                attempts=WebhookDelivery.attempts + 1,
            ),
        ),
    )
    if taken.rowcount != 1:
        return None
    row = db.session.execute(
        select(
            WebhookEndpoint.id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.enabled,
            WebhookEvent.public_id,
            WebhookEvent.type,
            WebhookEvent.payload,
            WebhookEvent.request_id,
        )
        .select_from(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    if not row.enabled:
        # Disabled since it was listed: it waits, unattempted, for the endpoint's return.
        db.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(
                status=DeliveryStatus.pending,
                lease_expires_at=None,
                attempts=WebhookDelivery.attempts - 1,
            )
        )
        return None
    return Attempt(
        delivery_id,
        row.id,
        row.url,
        row.secret,
        row.public_id,
        row.type,
        row.payload,
        leased_until,
        row.request_id,
    )


def _settings() -> dict[str, Any]:
    config = current_app.config
    return {
        "allow_http": bool(config.get("WEBHOOKS_ALLOW_HTTP", False)),
        "allow_private": bool(config.get("WEBHOOKS_ALLOW_PRIVATE", False)),
        "connect_timeout": float(config.get("WEBHOOKS_CONNECT_TIMEOUT", 3)),
        "read_timeout": float(config.get("WEBHOOKS_READ_TIMEOUT", 5)),
    }


def body_of(payload: dict[str, Any]) -> bytes:
    """Return the bytes sent (and signed) for ``payload``: compact JSON in UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def send(attempt: Attempt, settings: dict[str, Any] | None = None) -> sending.Outcome:
    """Call the endpoint once with ``attempt``'s event, signed; between units of work only."""
    no_open_unit("delivering a webhook")
    settings = settings or _settings()
    try:
        # Checked again at every attempt: the name may resolve elsewhere than at registration.
        destination = destinations.check(
            attempt.url,
            allow_http=settings["allow_http"],
            allow_private=settings["allow_private"],
        )
    except destinations.UnsafeDestination as refused:
        return sending.Outcome(error=f"refused to call the URL: {refused.reason}"[:500])
    body = body_of(attempt.payload)
    headers = {
        HEADER: sign(body, attempt.secret),
        "ClinicSaas-Event-Id": attempt.event_id,
        "ClinicSaas-Event-Type": attempt.event_type,
        "ClinicSaas-Delivery": str(attempt.delivery_id),
        **({request_ids.HEADER: attempt.request_id} if attempt.request_id else {}),
    }
    return sending.post(
        destination,
        body,
        headers,
        connect_timeout=settings["connect_timeout"],
        read_timeout=settings["read_timeout"],
    )


def _owner_address(clinic: Clinic) -> str | None:
    """The clinic's contact address, or its first active owner's when it has none."""
    if clinic.contact_email:
        return clinic.contact_email
    return db.session.scalar(
        select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == Role.owner, Membership.active.is_(True))
        .order_by(Membership.id)
        .limit(1)
    )


def _disable(clinic: Clinic, endpoint: WebhookEndpoint, now: datetime) -> None:
    since = clock.as_utc(endpoint.failing_since or now)
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = (
        f"Every attempt failed from {since:%Y-%m-%d %H:%M} UTC for "
        f"{DISABLE_AFTER.days} days ({endpoint.consecutive_failures} attempts)."
    )
    outbox.queue(
        "staff_alert",
        dedupe_key=f"webhook-disabled:{endpoint.id}:{int(now.timestamp())}",
        to=_owner_address(clinic),
        subject=f"Webhook endpoint disabled: {endpoint.url}"[:200],
        body=(
            f"{clinic.name} stopped sending events to {endpoint.url}: "
            f"{endpoint.disabled_reason} New events are not kept for it while it is disabled; "
            "deliveries still waiting are kept, and those given up stay in its log to replay. "
            "Fix the receiving system, then enable the endpoint again (PATCH "
            f'.../webhook-endpoints/{endpoint.id} with {{"enabled": true}}); what is waiting '
            "is sent in order."
        ),
    )


@dataclass(frozen=True)
class Recorded:
    """What an attempt's outcome did to its delivery, and whether it disabled the endpoint."""

    status: DeliveryStatus
    disabled: bool = False


@transaction
def record_outcome(clinic: Clinic, attempt: Attempt, outcome: sending.Outcome) -> Recorded:
    """Record what the endpoint answered; schedule the retry, give up, or disable the endpoint."""
    now = clock.now()
    delivery = db.session.get(WebhookDelivery, attempt.delivery_id, populate_existing=True)
    if (
        delivery is None
        or delivery.status != DeliveryStatus.sending
        or delivery.lease_expires_at is None
        or clock.as_utc(delivery.lease_expires_at) != attempt.leased_until
    ):
        # Deleted with its endpoint, or taken over by another worker after the lease lapsed.
        return Recorded(DeliveryStatus.sending)
    endpoint = db.session.get_one(
        WebhookEndpoint, attempt.endpoint_id, populate_existing=True, with_for_update=True
    )
    delivery.last_attempt_at = now
    delivery.last_status_code = outcome.status_code
    delivery.lease_expires_at = None
    if outcome.succeeded:
        delivery.status = DeliveryStatus.succeeded
        delivery.delivered_at = now
        delivery.last_error = None
        endpoint.failing_since = None
        endpoint.consecutive_failures = 0
        return Recorded(delivery.status)
    delivery.last_error = outcome.error or f"the endpoint answered HTTP {outcome.status_code}"
    if now - clock.as_utc(delivery.created_at) >= RETRY_FOR:
        delivery.status = DeliveryStatus.failed
    else:
        delivery.status = DeliveryStatus.pending
        delivery.due_at = now + backoff(delivery.attempts)
    endpoint.consecutive_failures += 1
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    disabled = endpoint.enabled and now - clock.as_utc(endpoint.failing_since) >= DISABLE_AFTER
    if disabled:
        _disable(clinic, endpoint, now)
    return Recorded(delivery.status, disabled)


def deliver_for_clinic(
    clinic: Clinic, now: datetime | None = None, limit: int = 100
) -> WebhookReport:
    """Send the current clinic's due deliveries; call inside its scope."""
    report = WebhookReport()
    now = now or clock.now()
    with unit_of_work():  # a read only, ended before any endpoint is called
        due = _due_ids(now, limit)
    settings = _settings() if due else {}
    failing: set[int] = set()
    for delivery_id, endpoint_id in due:
        if endpoint_id in failing:
            # It failed once this pass: its other deliveries wait for the next, rather
            # than spend the pass on timeouts (they are not counted as attempts).
            continue
        attempt = claim(delivery_id, now)
        if attempt is None:
            continue
        with request_ids.carrying(attempt.request_id or request_ids.current()):
            outcome = send(attempt, settings)
        recorded = record_outcome(clinic, attempt, outcome)
        report.disabled += recorded.disabled
        if recorded.status == DeliveryStatus.succeeded:
            report.succeeded += 1
            continue
        failing.add(endpoint_id)
        report.errors.append(f"delivery {delivery_id}: {outcome.error or outcome.status_code}")
        if recorded.status == DeliveryStatus.failed:
            report.failed += 1
        elif recorded.status == DeliveryStatus.pending:
            report.retried += 1
    return report


def deliver_due(now: datetime | None = None) -> WebhookReport:
    """Send every clinic's due webhook deliveries, one clinic scope at a time."""
    total = WebhookReport()
    for clinic in each_clinic():
        try:
            total.add(deliver_for_clinic(clinic, now))
            prune_log(now)
        except Exception:
            # One clinic's failure must not stop the others' deliveries.
            db.session.rollback()
            log.exception("webhook deliveries failed for clinic %s; retried next tick", clinic.slug)
    return total
