"""Events for the clinic's own systems: what each type carries, written with its cause.

Lower layers call ``core.events.publish(type, subject, **details)`` where the
change is made; :func:`record` (registered with ``core.events.on_publish``)
writes, in that same transaction, one event row with its whole payload and one
delivery for each enabled endpoint listening for the type. A booking that rolls
back is never sent; one that commits is sent even if the worker dies.

The payload is the contract with the clinic's developers (``docs/webhooks.md``):
money as ``{"amount": <minor units>, "currency": "NZD"}``, times in ISO 8601
UTC, ids only where a record holds more. Client events carry contact data
(name, email, phone), never health data.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core import clock, request_ids
from core.bookings.models import Booking
from core.clients.models import Client
from core.events import Publication, on_publish
from core.extensions import db
from core.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.money import Money
from core.payments.models import Payment
from core.tenancy.kept import kept
from core.tenancy.scope import require_clinic_ref

#: Every event type an endpoint may listen for, with what it means.
EVENT_TYPES: dict[str, str] = {
    "booking.created": "A booking was made: held for its guarantee, or confirmed at once.",
    "booking.confirmed": "A booking was confirmed (at once, or when its guarantee came in).",
    "booking.cancelled": "A booking was cancelled (by the client or staff), or its hold lapsed.",
    "booking.rescheduled": "A booking moved to a new time; it keeps its id.",
    "booking.no_show": "The client did not come to a confirmed booking.",
    "payment.succeeded": "Money was received by card: a deposit, prepayment, fee or bill.",
    "payment.refunded": "Money paid by card was refunded, in part or in full.",
    "dispute.opened": "A client's bank disputed a card payment and withdrew its amount.",
    "client.created": "A client was added (contact details only).",
    "client.updated": "A client's contact details changed (contact details only).",
}


def moment(value: datetime | None) -> str | None:
    """Return ``value`` in ISO 8601 UTC (``2027-03-01T17:00:00Z``)."""
    if value is None:
        return None
    return clock.as_utc(value).isoformat().replace("+00:00", "Z")


def money(amount: Money | None) -> dict[str, Any] | None:
    """Return ``amount`` as the payload writes money: minor units and an ISO currency."""
    return None if amount is None else {"amount": amount.minor, "currency": amount.currency}


def _booking(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "status": str(booking.status),
        "client_id": booking.client_id,
        "service_id": booking.service_id,
        "provider_id": booking.provider_id,
        "location_id": booking.location_id,
        "starts_at": moment(booking.starts_at),
        "ends_at": moment(booking.ends_at),
        "source": booking.source,
        "price": money(Money(booking.price_minor, booking.currency)),
    }


def _payment(payment: Payment | None) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {
        "id": payment.id,
        "booking_id": payment.booking_id,
        "sale_id": payment.sale_id,
        "purpose": payment.purpose,
        "status": str(payment.status),
        "amount": money(payment.amount),
    }


def _client(client: Client) -> dict[str, Any]:
    # Contact data only: the endpoint is the clinic's, but its systems are not
    # bound by the health-data rules this platform keeps (no intake, notes, birth date).
    return {
        "id": client.id,
        "first_name": client.legal_first_name,
        "last_name": client.legal_last_name,
        "preferred_name": client.preferred_name,
        "email": client.email,
        "phone": client.phone,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Money):
        return money(value)
    if isinstance(value, datetime):
        return moment(value)
    return value


def _payment_order_key(payment: Payment | None, fallback: str) -> str:
    # A booking's payments go in line with the booking's own events.
    if payment is not None and payment.booking_id is not None:
        return f"booking:{payment.booking_id}"
    return f"payment:{payment.id}" if payment is not None else fallback


def describe(publication: Publication) -> tuple[str, dict[str, Any]]:
    """Return the order key and the ``data`` of ``publication``'s payload."""
    kind, subject = publication.type, publication.subject
    extra = {name: _plain(value) for name, value in publication.details.items()}
    family = kind.split(".", 1)[0]
    if family == "booking":
        return f"booking:{subject.id}", {"booking": _booking(subject), **extra}
    if family == "client":
        return f"client:{subject.id}", {"client": _client(subject)}
    if kind == "dispute.opened":
        dispute = publication.details["dispute"]
        currency = str(dispute.get("currency") or "").upper()
        data = {
            "dispute": {
                "id": dispute.get("id"),
                "amount": money(Money(int(dispute["amount"]), currency)),
                "reason": dispute.get("reason"),
                "charge": dispute.get("charge"),
            },
            "payment": _payment(subject),
        }
        return _payment_order_key(subject, f"dispute:{dispute.get('id')}"), data
    if kind == "payment.refunded":
        refunded = Money(int(publication.details["refunded"]), subject.currency)
        refund = {"id": publication.details.get("refund_id"), "amount": money(refunded)}
        return _payment_order_key(subject, "payment"), {
            "payment": _payment(subject),
            "refund": refund,
        }
    return _payment_order_key(subject, "payment"), {"payment": _payment(subject), **extra}


_LISTENING = "clinic_saas.webhook_endpoints"


def _listening(event_type: str) -> list[int]:
    """The enabled endpoints listening for ``event_type``, read once per transaction at most.

    A booking publishes two or three events in one unit of work; reading the
    endpoints once keeps what it costs the database to one statement, and
    none while the clinic's setup is as an earlier request found it.
    """
    session = db.session()
    endpoints = session.info.get(_LISTENING)
    if endpoints is None:
        # Part of the clinic's setup: kept between requests while it is unchanged.
        endpoints = session.info[_LISTENING] = kept("webhook_endpoints", None, _enabled_endpoints)
    return [endpoint_id for endpoint_id, types in endpoints if event_type in types]


def _enabled_endpoints() -> list[tuple[int, frozenset[str]]]:
    rows = db.session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
            WebhookEndpoint.enabled.is_(True)
        )
    )
    return [(endpoint_id, frozenset(types or ())) for endpoint_id, types in rows]


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_endpoints(session: Session) -> None:
    session.info.pop(_LISTENING, None)


@on_publish
def record(publication: Publication) -> None:
    """Write the event and its deliveries, if any enabled endpoint listens for its type."""
    if publication.type not in EVENT_TYPES:
        raise ValueError(f"{publication.type!r} is not an event type (see EVENT_TYPES)")
    listening = _listening(publication.type)
    if not listening:
        return
    order_key, data = describe(publication)
    now = clock.now()
    event = WebhookEvent(
        public_id="evt_" + secrets.token_hex(12),
        type=publication.type,
        order_key=order_key,
        created_at=now,
        request_id=request_ids.current(),
    )
    event.payload = {
        "id": event.public_id,
        "type": publication.type,
        "created": moment(now),
        "clinic": require_clinic_ref().slug,
        "data": data,
    }
    db.session.add(event)
    db.session.add_all(
        WebhookDelivery(endpoint_id=endpoint_id, event=event, order_key=order_key, due_at=now)
        for endpoint_id in listening
    )
