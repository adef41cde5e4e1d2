"""The outbox: every message to send, written in the same transaction as its cause."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class OutboxStatus(enum.StrEnum):
    """Where a message stands."""

    pending = "pending"
    sending = "sending"  # claimed by a worker until lease_expires_at
    sent = "sent"
    withdrawn = "withdrawn"  # its booking was cancelled or moved
    skipped = "skipped"  # not allowed when due (no consent, quiet hours refused)
    failed = "failed"  # gave up after repeated errors


class OutboxMessage(ClinicScoped, Model):
    """A message due at ``due_at``; ``dedupe_key`` makes writing it twice impossible."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("clinic_id", "dedupe_key"),
        Index("ix_outbox_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # reminder
    channel: Mapped[str] = mapped_column(String(16))  # email, sms
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("client.id"))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    status: Mapped[OutboxStatus] = mapped_column(
        StoredEnum(OutboxStatus, 16),
        default=OutboxStatus.pending,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    sent_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
    last_error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The request that queued it: sending it carries that id (logs, calls out).
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
