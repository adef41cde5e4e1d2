"""A clinic's webhook endpoints, the events published to them and each delivery's log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.encryption import EncryptedText
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.kept import part_of_setup
from core.tenancy.scope import ClinicScoped


@part_of_setup(ignoring=("failing_since", "consecutive_failures", "updated_at"))
class WebhookEndpoint(ClinicScoped, Model):
    """An HTTPS address of the clinic's own systems, and the event types it is sent."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Shown once when the endpoint is made; kept encrypted under the clinic's data key.
    secret: Mapped[str] = mapped_column(EncryptedText("webhook_endpoint.secret"))
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    # The first failed attempt since the last success: the endpoint is disabled once
    # every attempt has failed for DISABLE_AFTER.
    failing_since: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(
        UtcTimestamp(), default=clock.now, onupdate=clock.now
    )


class WebhookEvent(ClinicScoped, Model):
    """One event as sent: its public id (``evt_...``), type and whole payload, kept for replays."""

    __tablename__ = "webhook_event"
    __table_args__ = (UniqueConstraint("clinic_id", "public_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    # What the event is about (``booking:12``, ``client:7``): deliveries of one
    # subject to one endpoint go one at a time, in order.
    order_key: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    # The request that caused it, sent as Request-Id with every delivery: a clinic's
    # developer can quote it to find the cause in the platform's logs.
    request_id: Mapped[str | None] = mapped_column(String(128))


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands."""

    pending = "pending"  # waiting for its time (the first attempt, or a retry)
    sending = "sending"  # claimed by a worker until lease_expires_at
    succeeded = "succeeded"  # the endpoint answered 2xx
    failed = "failed"  # given up after RETRY_FOR of failed attempts


#: Statuses that hold back later deliveries of the same subject to the same endpoint.
UNFINISHED = (DeliveryStatus.pending, DeliveryStatus.sending)


class WebhookDelivery(ClinicScoped, Model):
    """One event to send to one endpoint, retried until it succeeds or is given up."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "status", "due_at"),
        Index("ix_webhook_delivery_order", "endpoint_id", "order_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_event.id"), index=True)
    order_key: Mapped[str] = mapped_column(String(64))
    replay_of_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_delivery.id"))
    status: Mapped[DeliveryStatus] = mapped_column(
        StoredEnum(DeliveryStatus, 16), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    event: Mapped[WebhookEvent] = relationship()
