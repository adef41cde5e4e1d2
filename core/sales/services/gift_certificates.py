"""Gift certificates: their codes, what each has left, and a booking guaranteed by one."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from core import ledger
from core.bookings import services as bookings
from core.bookings.models import Booking
from core.errors import NotFound, Refused, field_error
from core.extensions import db
from core.money import Money
from core.sales.models import GiftCertificate
from core.sales.services.common import _invalid
from core.tenancy.models import Clinic
from core.unit_of_work import transaction

#: Gift certificate codes: unambiguous characters, 16 of them (80 bits).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code() -> str:
    """Return a fresh gift certificate code, e.g. ``7KQ2-M9XD-3HTW-P0RB``."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def _code_digest(code: str) -> str:
    # Read as people type it: any case, any separators, O for 0 and I or L for 1.
    normal = code.upper().translate(str.maketrans("OIL", "011", " -"))
    return hashlib.sha256(normal.encode()).hexdigest()


def gift_certificate(code: str) -> GiftCertificate:
    """Return the active gift certificate with ``code``."""
    found = db.session.scalar(
        select(GiftCertificate).where(GiftCertificate.code_digest == _code_digest(code))
    )
    if found is None or not found.active:
        raise _invalid("code", "No gift certificate has this code.", NotFound)
    return found


def gift_certificate_balance(certificate: GiftCertificate) -> Money:
    return ledger.balance(certificate.account, certificate.currency)


@transaction
def confirm_with_gift_certificate(
    clinic: Clinic, booking: Booking, code: str, actor_user_id: int | None
) -> Booking:
    """Confirm a held booking guaranteed by a gift certificate, only while it has a balance."""
    certificate = gift_certificate(code)
    if gift_certificate_balance(certificate).minor <= 0:
        raise Refused(
            "This gift certificate has been used up.",
            errors=[field_error("gift_certificate_code", "used up")],
        )
    booking.note(gift_certificate_id=certificate.id)
    return bookings.confirm(clinic, booking, "gift_certificate", actor_user_id)
