"""Appointment reminders: written to the outbox with the booking, withdrawn when it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update

from core import clock
from core.bookings.settings import booking_settings
from core.extensions import db
from core.messaging.models import OutboxMessage, OutboxStatus
from core.tenancy.models import Clinic, Location


def due_times(clinic: Clinic, starts_at: datetime, timezone: str) -> list[tuple[str, datetime]]:
    """Return (rule, due time in UTC) for each reminder the clinic sets, for one appointment.

    ``hours_before`` is an absolute duration (48 hours is 48 hours, DST or
    not); ``morning_of`` is a wall-clock time on the appointment's local date.
    """
    starts_at = clock.as_utc(starts_at)
    out = []
    for rule in booking_settings(clinic)["reminders"]:
        if "hours_before" in rule:
            out.append(
                (f"{rule['hours_before']}h", starts_at - timedelta(hours=rule["hours_before"]))
            )
        else:
            tz = ZoneInfo(timezone)
            day = starts_at.astimezone(tz).date()
            local = datetime.combine(day, rule["morning_of"], tzinfo=tz)
            out.append((f"morning-{rule['morning_of'].strftime('%H%M')}", local.astimezone(UTC)))
    return out


def schedule(clinic: Clinic, booking: Any) -> int:
    """Write the booking's reminders to the outbox, in the booking's transaction; return how many.

    Only reminders still ahead (and before the appointment) are written; a
    reminder's key names the booking, rule, channel and start time, so
    writing it twice is refused by the database. The rows go in one INSERT
    of their own rather than through the unit of work: nothing reads them
    back in the request that writes them.
    """
    now = clock.now()
    location = db.session.get(Location, booking.location_id)
    channels = booking_settings(clinic)["reminder_channels"]
    starts_at = clock.as_utc(booking.starts_at)
    rows = [
        {
            "clinic_id": booking.clinic_id,
            "kind": "reminder",
            "channel": channel,
            "booking_id": booking.id,
            "client_id": booking.client_id,
            "dedupe_key": f"reminder:{booking.id}:{rule}:{channel}:{starts_at.isoformat()}",
            "due_at": due,
            "status": OutboxStatus.pending,
            "attempts": 0,
            "details": {"rule": rule},
            "created_at": now,
        }
        for rule, due in due_times(clinic, booking.starts_at, location.timezone)
        if now < due < starts_at
        for channel in channels
    ]
    if rows:
        db.session.execute(insert(OutboxMessage), rows)
    return len(rows)


def withdraw(booking: Any) -> int:
    """Withdraw the booking's reminders not yet sent (it was cancelled or moved)."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.booking_id == booking.id, OutboxMessage.status == OutboxStatus.pending)
        .values(status=OutboxStatus.withdrawn)
    )
    return result.rowcount or 0
