"""A clinic's data keys: random AES-256 keys, stored only wrapped by a master key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.extensions import Model, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class ClinicDataKey(ClinicScoped, Model):
    """One version of a clinic's data key.

    The newest version not retired encrypts; every version decrypts what it
    encrypted, so rotation never strands data. ``wrapped`` is the key sealed
    with AES-GCM under the master key ``master_key_id``.
    """

    __tablename__ = "clinic_data_key"
    __table_args__ = (UniqueConstraint("clinic_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]
    master_key_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)
    retired_at: Mapped[datetime | None] = mapped_column(UtcTimestamp())
