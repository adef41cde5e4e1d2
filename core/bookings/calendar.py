"""A booking as a calendar file (RFC 5545), for the client's own calendar: the page's and the email's."""

from __future__ import annotations

from typing import Any

from core import clock
from core.bookings.models import Booking, BookingStatus

_STAMP = "%Y%m%dT%H%M%SZ"


def _text(value: str) -> str:
    """Escape a TEXT value of RFC 5545 (backslash, semicolon, comma, newline)."""
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def calendar_file(booking: Booking, service_name: str, clinic: Any, where: str = "") -> str:
    """Return ``booking`` as a one-event iCalendar file, with CRLF line ends as the format asks."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//clinic-saas//booking//EN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:booking-{booking.id}@{clinic.slug}.clinic-saas",
        f"DTSTAMP:{clock.now().strftime(_STAMP)}",
        f"DTSTART:{clock.as_utc(booking.starts_at).strftime(_STAMP)}",
        f"DTEND:{clock.as_utc(booking.ends_at).strftime(_STAMP)}",
        f"SUMMARY:{_text(f'{service_name} at {clinic.name}')}",
        *([f"LOCATION:{_text(where)}"] if where else []),
        f"STATUS:{'CANCELLED' if booking.status == BookingStatus.cancelled else 'CONFIRMED'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(lines) + "\r\n"
