"""Providers, weekly working hours in each location's local time, and time off."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import ForeignKey, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.accounts.models import Membership
from core.extensions import Model, UtcTimestamp
from core.tenancy.scope import ClinicScoped


class Provider(ClinicScoped, Model):
    """A member of staff who performs services and has a calendar.

    ``credential`` (``physician``, ``nurse``, ``esthetician``...) lets
    policies tell medical from spa services (Bijoux: no gratuity for
    physicians or nurses).
    """

    __tablename__ = "provider"
    __table_args__ = (UniqueConstraint("clinic_id", "membership_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    membership_id: Mapped[int] = mapped_column(ForeignKey("membership.id"))
    display_name: Mapped[str] = mapped_column(String(200))
    credential: Mapped[str | None] = mapped_column(String(50))
    active: Mapped[bool] = mapped_column(default=True)
    # Bumped under lock by every booking of this provider: the row lock (and on
    # SQLite the write lock it takes) makes the overlap check and the insert
    # one step, so two requests can never both take the same time.
    lock_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    membership: Mapped[Membership] = relationship()
    hours: Mapped[list[WorkingHours]] = relationship(
        back_populates="provider", order_by="WorkingHours.weekday, WorkingHours.starts"
    )


class WorkingHours(ClinicScoped, Model):
    """A weekly block of working time at one location, in that location's local time.

    Stored as wall-clock times and turned into UTC per date, so 9:00 stays
    9:00 across daylight-saving changes.
    """

    __tablename__ = "working_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    weekday: Mapped[int]  # Monday 0 ... Sunday 6
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)

    provider: Mapped[Provider] = relationship(back_populates="hours")


class TimeOff(ClinicScoped, Model):
    """A period a provider does not work (holiday, training, sickness), in UTC."""

    __tablename__ = "time_off"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    ends_at: Mapped[datetime] = mapped_column(UtcTimestamp())
    reason: Mapped[str | None] = mapped_column(String(200))
