"""The outbox's one door: every message the platform sends is queued here, in its cause's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from core import clock, request_ids
from core.extensions import db
from core.messaging.models import OutboxMessage


def queue(
    kind: str,
    *,
    dedupe_key: str,
    subject: str,
    body: str,
    channel: str = "email",
    to: str | None = None,
    client_id: int | None = None,
    booking_id: int | None = None,
    due_at: datetime | None = None,
    **details: Any,
) -> OutboxMessage:
    """Queue a message to send at ``due_at`` (now by default), once per ``dedupe_key``.

    It is written in the current transaction, so it is sent only if its cause commits.
    Address it to a client (``client_id``: their consents and channels decide at sending
    time) or to an address (``to``: the clinic's staff, a privacy requester). ``details``
    (a clause id, a template's data) travel with it to the sender.
    """
    message = OutboxMessage(
        kind=kind,
        channel=channel,
        client_id=client_id,
        booking_id=booking_id,
        dedupe_key=dedupe_key,
        due_at=due_at or clock.now(),
        request_id=request_ids.current(),
        details={
            "subject": subject,
            "body": body,
            **({"to": to} if to is not None else {}),
            **details,
        },
    )
    db.session.add(message)
    return message


def is_queued(dedupe_key: str) -> bool:
    """Return whether a message with ``dedupe_key`` was queued already (sent or not)."""
    found = select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    return db.session.scalar(found) is not None
