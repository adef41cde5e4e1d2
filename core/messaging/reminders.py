"""Appointment reminders: written to the outbox with the booking, withdrawn when it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, update

from core import clock, request_ids
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


def due(clinic: Clinic, booking: Any, timezone: str) -> list[dict[str, Any]]:
    """Return the outbox rows of the booking's reminders still ahead, less their booking id and key.

    Only reminders before the appointment and after now are written; see
    :func:`dedupe_key` for the rest of each row.
    """
    now = clock.now()
    request_id = request_ids.current()
    channels = booking_settings(clinic)["reminder_channels"]
    starts_at = clock.as_utc(booking.starts_at)
    reminders = [
        {
            "clinic_id": booking.clinic_id,
            "kind": "reminder",
            "channel": channel,
            "client_id": booking.client_id,
            "due_at": when,
            "status": OutboxStatus.pending,
            "attempts": 0,
            "details": {"rule": rule},
            "created_at": now,
            "request_id": request_id,
        }
        for rule, when in due_times(clinic, starts_at, timezone)
        if now < when < starts_at
        for channel in channels
    ]
    if now >= starts_at:
        return reminders
    # The confirmation goes at once, written with the reminders (one INSERT with the
    # booking): its text, link and calendar file are made when it is sent.
    return [
        {
            "clinic_id": booking.clinic_id,
            "kind": "booking_confirmed",
            "channel": "email",
            "client_id": booking.client_id,
            "due_at": now,
            "status": OutboxStatus.pending,
            "attempts": 0,
            "details": {"rule": "confirmed"},
            "created_at": now,
            "request_id": request_id,
        },
        *reminders,
    ]


def dedupe_key(booking_id: Any, row: dict[str, Any], starts_at: datetime) -> tuple[str, Any, str]:
    """Return the parts of a reminder's key: it names the booking, rule, channel and start time.

    The booking id stands between the two strings; a caller that does not
    know it yet (an INSERT of the booking in the same statement) joins them in SQL.
    """
    rule = row["details"]["rule"]
    return (
        f"{row['kind']}:",
        booking_id,
        f":{rule}:{row['channel']}:{clock.as_utc(starts_at).isoformat()}",
    )


def write(booking: Any, rows: list[dict[str, Any]]) -> int:
    """Insert reminder rows from :func:`due` for a booking already flushed; return how many."""
    if not rows:
        return 0
    full = []
    for row in rows:
        before, booking_id, after = dedupe_key(booking.id, row, booking.starts_at)
        full.append({**row, "booking_id": booking_id, "dedupe_key": f"{before}{booking_id}{after}"})
    # One INSERT of their own rather than the unit of work: nothing reads
    # them back in the request that writes them.
    db.session.execute(insert(OutboxMessage), full)
    return len(full)


def schedule(clinic: Clinic, booking: Any) -> int:
    """Write the booking's reminders to the outbox, in the booking's transaction; return how many.

    A reminder's key names the booking, rule, channel and start time, so
    writing it twice is refused by the database.
    """
    location = db.session.get(Location, booking.location_id)
    return write(booking, due(clinic, booking, location.timezone))


def withdraw(booking: Any) -> int:
    """Withdraw the booking's reminders not yet sent (it was cancelled or moved)."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.booking_id == booking.id, OutboxMessage.status == OutboxStatus.pending)
        .values(status=OutboxStatus.withdrawn)
    )
    return result.rowcount or 0
