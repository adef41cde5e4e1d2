"""Audit events and the head of each clinic's hash chain."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import Model, StoredEnum, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class AuditAction(enum.StrEnum):
    """What was done to health data."""

    read = "read"
    create = "create"
    update = "update"
    delete = "delete"
    export = "export"
    disclose = "disclose"
    emergency_access = "emergency_access"
    review = "review"


class AuditEvent(ClinicScoped, Model):
    """One access to a client's health data: who, which client, what, when, from where.

    Rows are never updated or deleted (the database refuses both), and each
    carries the hash of the one before it, so an edit anywhere breaks the
    chain from that row on.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        UniqueConstraint("clinic_id", "seq"),
        Index("ix_audit_event_clinic_client_at", "clinic_id", "client_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int]
    at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[AuditAction] = mapped_column(StoredEnum(AuditAction, 32))
    resource: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[int | None]
    client_id: Mapped[int | None] = mapped_column(index=True)
    fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    reason: Mapped[str | None] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(String(200))
    emergency: Mapped[bool] = mapped_column(default=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChain(ClinicScoped, Model):
    """The head of a clinic's audit chain; locking it orders concurrent appends."""

    __tablename__ = "audit_chain"
    __table_args__ = (UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(default=0)
    head: Mapped[str] = mapped_column(String(64))
