"""Providers and their schedules: weekly hours per location, and time off."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from core.accounts.models import Membership
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.schedules.models import Provider, TimeOff, WorkingHours
from core.tenancy.models import Location
from core.unit_of_work import transaction


def providers(active_only: bool = False, *, with_hours: bool = False) -> list[Provider]:
    """Return the current clinic's providers; ``with_hours`` loads all their hours in one query."""
    statement = select(Provider).order_by(Provider.display_name, Provider.id)
    if with_hours:
        statement = statement.options(selectinload(Provider.hours))
    if active_only:
        statement = statement.where(Provider.active.is_(True))
    return list(db.session.scalars(statement))


def provider(provider_id: int) -> Provider:
    """Return provider ``provider_id`` of the current clinic, or raise 404."""
    found = db.session.get(Provider, provider_id)
    if found is None:
        raise NotFound("No such provider at this clinic.")
    return found


@transaction
def add_provider(membership_id: int, display_name: str | None, credential: str | None) -> Provider:
    """Give a staff member a calendar so clients can book them."""
    membership = db.session.get(Membership, membership_id)
    if membership is None or not membership.active:
        raise Invalid(
            "No such staff member.",
            errors=[field_error("membership_id", "not active staff of this clinic")],
        )
    if db.session.scalar(select(Provider).where(Provider.membership_id == membership_id)):
        raise Refused(
            "This staff member is already a provider.",
            errors=[field_error("membership_id", "already a provider")],
        )
    found = Provider(
        membership_id=membership_id,
        display_name=display_name or membership.user.name,
        credential=credential,
    )
    db.session.add(found)
    db.session.flush()
    return found


@transaction
def update_provider(found: Provider, changes: dict[str, Any]) -> Provider:
    """Change a provider's display name, credential or active flag."""
    for key, value in changes.items():
        setattr(found, key, value)
    db.session.flush()
    return found


@transaction
def set_hours(found: Provider, blocks: list[dict[str, Any]]) -> list[WorkingHours]:
    """Replace the provider's weekly hours with ``blocks`` (weekday, starts, ends, location)."""
    for index, block in enumerate(blocks):
        if db.session.get(Location, block["location_id"]) is None:
            raise Invalid(
                "No such location.",
                errors=[field_error(f"hours.{index}.location_id", "not a location of this clinic")],
            )
        if block["ends"] <= block["starts"]:
            raise Invalid(
                "A block must end after it starts.",
                errors=[field_error(f"hours.{index}.ends", "must be after starts")],
            )
    by_day: dict[int, list[dict[str, Any]]] = {}
    for block in blocks:
        by_day.setdefault(block["weekday"], []).append(block)
    for day, day_blocks in by_day.items():
        ordered = sorted(day_blocks, key=lambda b: b["starts"])
        for before, after in itertools.pairwise(ordered):
            if after["starts"] < before["ends"]:
                raise Invalid(
                    f"Blocks overlap on weekday {day}.",
                    errors=[field_error("hours", "blocks on one day may not overlap")],
                )
    # Through the session, not a bulk DELETE: the flush then moves the provider's calendar
    # version (bookings.availability), so no kept availability answer outlives the old hours.
    for previous in found.hours:
        db.session.delete(previous)
    db.session.flush()
    created = [WorkingHours(provider_id=found.id, **block) for block in blocks]
    db.session.add_all(created)
    db.session.flush()
    db.session.expire(found, ["hours"])  # the loaded list still holds the blocks just deleted
    return created


@transaction
def add_time_off(
    found: Provider, starts_at: datetime, ends_at: datetime, reason: str | None
) -> TimeOff:
    """Record a period the provider does not work."""
    if ends_at <= starts_at:
        raise Invalid(
            "Time off must end after it starts.",
            errors=[field_error("ends_at", "must be after starts_at")],
        )
    off = TimeOff(provider_id=found.id, starts_at=starts_at, ends_at=ends_at, reason=reason)
    db.session.add(off)
    db.session.flush()
    return off


def time_off(found: Provider) -> list[TimeOff]:
    """Return the provider's time off, soonest first."""
    return list(
        db.session.scalars(
            select(TimeOff).where(TimeOff.provider_id == found.id).order_by(TimeOff.starts_at)
        )
    )
