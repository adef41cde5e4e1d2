"""A clinic's webhook endpoints: registering them, their delivery log, and replays."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select, update

from core import clock
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.integrations import destinations
from core.integrations.models import (
    UNFINISHED,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from core.integrations.publishing import EVENT_TYPES
from core.integrations.signing import new_secret
from core.unit_of_work import transaction, unit_of_work


def event_types() -> list[dict[str, str]]:
    """Return every event type an endpoint may listen for, with what it means."""
    return [{"type": kind, "description": words} for kind, words in EVENT_TYPES.items()]


def checked_url(url: str) -> str:
    """Return ``url`` if the platform may call it, or raise Invalid naming the field ``url``.

    Resolves the host name (a network call): call it before a unit of work opens.
    """
    config = current_app.config
    try:
        destinations.check(
            url,
            allow_http=bool(config.get("WEBHOOKS_ALLOW_HTTP", False)),
            allow_private=bool(config.get("WEBHOOKS_ALLOW_PRIVATE", False)),
        )
    except destinations.UnsafeDestination as refused:
        raise Invalid(
            f"The webhook URL is refused: it {refused.reason}.",
            kind="webhook-url-refused",
            errors=[field_error("url", refused.reason)],
        ) from None
    return url


def endpoints() -> list[WebhookEndpoint]:
    """Return the current clinic's webhook endpoints, oldest first."""
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def endpoint(endpoint_id: int) -> WebhookEndpoint:
    """Return the current clinic's endpoint ``endpoint_id`` or raise NotFound."""
    found = db.session.get(WebhookEndpoint, endpoint_id)
    if found is None:
        raise NotFound("No such webhook endpoint at this clinic.")
    return found


def create_endpoint(data: dict[str, Any]) -> WebhookEndpoint:
    """Register an endpoint for ``data["event_types"]`` with a new secret (``secret``, shown once)."""
    url = checked_url(data["url"])  # before the unit: resolving the host waits on the network
    with unit_of_work():
        made = WebhookEndpoint(
            url=url,
            description=data.get("description"),
            event_types=sorted(set(data["event_types"])),
            secret=new_secret(),
            enabled=True,
        )
        db.session.add(made)
        db.session.flush()
    return made


def update_endpoint(found: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change an endpoint's URL, description, event types, or enable or disable it.

    Enabling an endpoint that was disabled sends what waited for it, in order, at once.
    """
    if "url" in changes:
        checked_url(changes["url"])
    with unit_of_work():
        for name in ("url", "description"):
            if name in changes:
                setattr(found, name, changes[name])
        if "event_types" in changes:
            found.event_types = sorted(set(changes["event_types"]))
        if changes.get("enabled") is True and not found.enabled:
            now = clock.now()
            found.enabled = True
            found.disabled_at = found.disabled_reason = found.failing_since = None
            found.consecutive_failures = 0
            db.session.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.endpoint_id == found.id,
                    WebhookDelivery.status == DeliveryStatus.pending,
                )
                .values(due_at=now)
            )
        elif changes.get("enabled") is False and found.enabled:
            found.enabled = False
            found.disabled_at = clock.now()
            found.disabled_reason = "Disabled by the clinic's staff."
        db.session.flush()
    return found


@transaction
def delete_endpoint(found: WebhookEndpoint) -> None:
    """Remove an endpoint and its delivery log; nothing more is sent to it."""
    db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == found.id))
    db.session.delete(found)
    db.session.flush()


def _line(delivery: WebhookDelivery, public_id: str, kind: str) -> dict[str, Any]:
    waiting = delivery.status in (DeliveryStatus.pending, DeliveryStatus.sending)
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": public_id,
        "event_type": kind,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "last_attempt_at": delivery.last_attempt_at,
        "next_attempt_at": delivery.due_at if waiting else None,
        "delivered_at": delivery.delivered_at,
        "created_at": delivery.created_at,
        "replay_of_id": delivery.replay_of_id,
    }


def deliveries(endpoint_id: int, *, limit: int, before: int | None = None) -> list[dict[str, Any]]:
    """Return an endpoint's deliveries, newest first, ``limit`` at most, older than ``before``."""
    endpoint(endpoint_id)
    query = (
        select(WebhookDelivery, WebhookEvent.public_id, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return [_line(*row) for row in db.session.execute(query)]


@transaction
def replay(delivery_id: int) -> dict[str, Any]:
    """Send a delivery's event to its endpoint again, as a new delivery with the same event id.

    The receiver sees the same ``id`` and can tell it has had the event before.
    It goes in line behind any delivery of the same subject still waiting.
    """
    original = db.session.get(WebhookDelivery, delivery_id)
    if original is None:
        raise NotFound("No such webhook delivery at this clinic.")
    target = endpoint(original.endpoint_id)
    if not target.enabled:
        raise Refused(
            "The endpoint is disabled: enable it first (PATCH with enabled true).",
            kind="webhook-endpoint-disabled",
        )
    event = db.session.get_one(WebhookEvent, original.event_id)
    again = WebhookDelivery(
        endpoint_id=target.id,
        event_id=event.id,
        order_key=original.order_key,
        replay_of_id=original.id,
        due_at=clock.now(),
    )
    db.session.add(again)
    db.session.flush()
    return _line(again, event.public_id, event.type)


#: How long the delivery log keeps an event once no delivery of it is still to be sent.
LOG_KEPT_FOR = timedelta(days=30)


def _forget_events(events: Any) -> int:
    """Delete the events ``events`` selects (their ids), with every delivery of them."""
    ids = list(db.session.scalars(events))
    if not ids:
        return 0
    # Replays point at the deliveries they repeat: all of an event's go in one statement.
    db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_id.in_(ids)))
    db.session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
    return len(ids)


def forget_client(client_id: int) -> int:
    """Delete the events that carry a client's contact details, sent or not: their erasure.

    Client events are the only ones holding contact details; booking and payment
    events name the client by id alone.
    """
    return _forget_events(
        select(WebhookEvent.id).where(WebhookEvent.order_key == f"client:{client_id}")
    )


@transaction
def prune_log(now: datetime | None = None) -> int:
    """Delete events older than LOG_KEPT_FOR with nothing left to send; return how many."""
    cutoff = (now or clock.now()) - LOG_KEPT_FOR
    unfinished = select(WebhookDelivery.event_id).where(WebhookDelivery.status.in_(UNFINISHED))
    return _forget_events(
        select(WebhookEvent.id).where(
            WebhookEvent.created_at < cutoff, WebhookEvent.id.not_in(unfinished)
        )
    )
