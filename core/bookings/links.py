"""Signed self-service links: a client manages one booking without an account."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from core import clock
from core.bookings.models import Booking
from core.errors import NotFound
from core.extensions import db
from core.secret_keys import secret_keys

SALT = "booking-self-service"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(secret_keys(), salt=SALT)


def token_for(booking: Any) -> str:
    """Return the signed token for ``booking``'s self-service link.

    It names the clinic, the booking and its current nonce (changing the
    nonce revokes every link), and lapses some days after the appointment.
    """
    days = current_app.config["SELF_SERVICE_LINK_DAYS"]
    expires = clock.as_utc(booking.ends_at) + timedelta(days=days)
    return _serializer().dumps(
        {
            "c": booking.clinic_id,
            "b": booking.id,
            "n": booking.manage_nonce,
            "e": int(expires.timestamp()),
        }
    )


def visit_url(booking: Any, clinic_slug: str) -> str:
    """Return the address of the booking's own page, for messages sent outside any request."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return f"{base}/book/{clinic_slug}/visit/{token_for(booking)}"


def read_token(token: str, clinic_id: int) -> tuple[int, str]:
    """Return (booking id, nonce) from a valid token for this clinic; otherwise 404."""
    try:
        data = _serializer().loads(token)
    except BadSignature:
        raise NotFound("This link is not valid.") from None
    if not isinstance(data, dict) or data.get("c") != clinic_id:
        raise NotFound("This link is not valid.")
    if int(data.get("e", 0)) < clock.now().timestamp():
        raise NotFound("This link has expired; please contact the clinic.", kind="link-expired")
    return int(data["b"]), str(data["n"])


def booking_for(token: str, clinic_id: int) -> Booking:
    """Return the booking a self-service link opens; a link tampered with, stale or revoked is 404."""
    booking_id, nonce = read_token(token, clinic_id)
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.manage_nonce != nonce:
        raise NotFound("This link is not valid.")
    return booking


#: A signed link token as it appears in an address (payload and signature, dot-separated).
_TOKEN_IN_PATH = re.compile(r"/[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}")


def hidden(line: str) -> str:
    """``line`` with every signed link token in it replaced by ``/[link]``."""
    return _TOKEN_IN_PATH.sub("/[link]", line)


class LinkTokensHidden(logging.Filter):
    """Keep link tokens out of access logs: a logged address is seen by more people than its client."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _TOKEN_IN_PATH.search(message):
            record.msg, record.args = hidden(message), ()
        return True
