"""Delivering due messages from the outbox: each claimed by one worker, sent once, none lost.

A worker claims a message with a conditional UPDATE (pending, or sending
with a lapsed lease -> sending with a new lease): on both engines only one
worker's update matches, so no two workers send one message. A worker that
dies after claiming leaves the lease to lapse and another picks it up, so
nothing is lost. Each message carries a stable Message-ID derived from its
key for the one window (sent, then died before recording it) in which a
repeat is possible.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time
from flask import current_app
from sqlalchemy import or_, select, update

from core import clock, request_ids
from core.bookings import links
from core.bookings.calendar import calendar_file
from core.bookings.models import Booking, BookingStatus
from core.clients.models import Client, Consent, ConsentKind, ConsentMethod
from core.extensions import db
from core.messaging.channels import (
    DeliveryError,
    Outgoing,
    email_sender,
    make_message_id,
    sms_sender,
)
from core.messaging.models import OutboxMessage, OutboxStatus
from core.tenancy.models import Clinic, Location
from core.tenancy.services import each_clinic, hooks_for
from core.unit_of_work import transaction, unit_of_work

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def due(now: datetime) -> Any:
    """Which messages are due at ``now``: waiting for their time, or claimed with a lapsed lease."""
    return or_(
        (OutboxMessage.status == OutboxStatus.pending) & (OutboxMessage.due_at <= now),
        (OutboxMessage.status == OutboxStatus.sending) & (OutboxMessage.lease_expires_at <= now),
    )


@transaction
def claim(message_id: int, now: datetime) -> bool:
    """Take a due message for this worker; return False if another worker has it."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, due(now))
        .values(
            status=OutboxStatus.sending,
            lease_expires_at=now + LEASE,
            attempts=OutboxMessage.attempts + 1,
        )
    )
    return result.rowcount == 1


@transaction
def _finish(message_id: int, status: OutboxStatus, **values: object) -> None:
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == OutboxStatus.sending)
        .values(status=status, lease_expires_at=None, **values)
    )


def _local_when(local: datetime, locale: str) -> str:
    """A visit's day and time in the clinic's locale: "Friday, March 6, 2026 at 2:00 PM" in
    Boston, "Friday, 6 March 2026 at 2:00 pm" in Auckland."""
    day = format_date(local, "full", locale=locale)
    # CLDR puts a narrow no-break space before AM/PM: a plain one keeps an SMS in GSM-7.
    return f"{day} at {format_time(local, 'short', locale=locale)}".replace("\u202f", " ")


def _confirmation(clinic: Clinic, booking: Booking) -> tuple[str, str, tuple[tuple[str, str, str]]]:
    """The confirmation of a booking: when and where, its own page, a calendar file."""
    location = db.session.get_one(Location, booking.location_id)
    local = clock.as_utc(booking.starts_at).astimezone(ZoneInfo(location.timezone))
    when = _local_when(local, clinic.locale)
    service = booking.service.name
    body = (
        f"Your {service} at {clinic.name} ({location.name}) is booked for {when}.\n\n"
        f"See, move or cancel it, and what cancelling would cost, here: "
        f"{links.visit_url(booking, clinic.slug)}"
    )
    ics = calendar_file(booking, service, clinic, location.name)
    return (
        f"Your {service} at {clinic.name} is booked",
        body,
        (("visit.ics", "text/calendar", ics),),
    )


def _render(
    clinic: Clinic, message: OutboxMessage, booking: Booking, client: Client
) -> tuple[str, str]:
    location = db.session.get_one(Location, booking.location_id)
    local = clock.as_utc(booking.starts_at).astimezone(ZoneInfo(location.timezone))
    when = _local_when(local, clinic.locale)
    subject = f"Reminder: your appointment at {clinic.name}"
    body = (
        f"Hello {client.display_name}, this is a reminder of your appointment at {clinic.name}"
        f" ({location.name}) on {when}."
    )
    if message.channel == "sms":
        # "CANCEL" is a carrier opt-out keyword: never ask clients to reply with it.
        body += " Reply STOP to stop texts, HELP for help. Msg & data rates may apply."
    return subject, body


#: Kinds sent to the client on file, so their consents and quiet hours apply. Staff
#: alerts and privacy notices go to the address they carry (a requester may be
#: a representative, or a client whose details are already deleted).
TO_CLIENT = frozenset(
    {
        "reminder",
        "marketing",
        "payment_request",
        "booking_confirmed",
        "booking_notice",
        "sale_notice",
    }
)

#: The consent each kind of message to a client needs on each channel.
CONSENT_NEEDED = {
    ("reminder", "sms"): ConsentKind.transactional_sms,
    ("marketing", "sms"): ConsentKind.marketing_sms,
    ("marketing", "email"): ConsentKind.marketing_email,
}


#: The consent methods that satisfy a required method; "written" is the strictest.
SATISFIES = {
    "written": {ConsentMethod.written},
    "electronic": {ConsentMethod.written, ConsentMethod.electronic, ConsentMethod.sms_keyword},
    "verbal_recorded": set(ConsentMethod),
}


def consenting(clinic: Clinic, client_ids: Iterable[int], kind: ConsentKind) -> set[int]:
    """Return which of these clients have a standing consent of ``kind`` good enough here.

    The clinic's plugins say how a purpose's consent must have been given
    (``clinic_consent_requirements``): HIPAA wants marketing authorised in
    writing, so an electronic opt-in does not do there. One query for all.
    """
    ids = list(client_ids)
    if not ids:
        return set()
    methods = set(ConsentMethod)
    for requirement in hooks_for(clinic).answers(
        "clinic_consent_requirements", clinic=clinic, purpose=kind.value
    ):
        if requirement.required:
            methods &= SATISFIES.get(requirement.method, set(ConsentMethod))
    return set(
        db.session.scalars(
            select(Consent.client_id).where(
                Consent.client_id.in_(ids),
                Consent.kind == kind,
                Consent.revoked_at.is_(None),
                Consent.method.in_(methods),
            )
        )
    )


CONSENT_WORDS = {
    ConsentKind.transactional_sms: "appointment texts",
    ConsentKind.marketing_sms: "marketing texts",
    ConsentKind.marketing_email: "marketing email",
}


@dataclass(frozen=True)
class Permit:
    """Whether a message may go now: ``reason`` if not, ``not_before`` if only later."""

    reason: str | None = None
    not_before: datetime | None = None


def _allowed(
    clinic: Clinic, message: OutboxMessage, client: Client | None, now: datetime
) -> Permit:
    """Return whether the message may go now, may go later (quiet hours), or may not go."""
    if client is None:
        return Permit("no client on file")
    if message.channel == "sms" and not client.phone:
        return Permit("no phone number")
    if message.channel == "email" and not client.email:
        return Permit("no email address")
    needed = CONSENT_NEEDED.get((message.kind, message.channel))
    if needed is not None and client.id not in consenting(clinic, [client.id], needed):
        return Permit(f"no consent to {CONSENT_WORDS[needed]}")
    answers = hooks_for(clinic).answers(
        "clinic_message_allowed", clinic=clinic, message=message, client=client, now=now
    )
    refused = [a for a in answers if not a.allowed]
    later = [clock.as_utc(a.not_before) for a in refused if a.not_before is not None]
    if refused and len(later) == len(refused):
        return Permit(refused[0].reason or refused[0].clause.text, max(later))
    if refused:
        return Permit(refused[0].reason or refused[0].clause.text)
    return Permit()


def _recipient(
    clinic: Clinic, message: OutboxMessage, client: Client | None
) -> tuple[str | None, str, str]:
    """Return the address, subject and body of a message that is not a booking reminder."""
    details = message.details or {}
    if message.kind in ("staff_alert", "privacy_notice"):
        return details.get("to"), details.get("subject", ""), details.get("body", "")
    to = (client.phone if message.channel == "sms" else client.email) if client else None
    body = details.get("body", "")
    if message.channel == "sms" and message.kind == "marketing":
        body += " Reply STOP to opt out."
    return to, details.get("subject", ""), body


def _message_id_domain() -> str:
    return str(current_app.config.get("MESSAGE_ID_DOMAIN") or "localhost")


def deliver_for_clinic(
    clinic: Clinic, now: datetime | None = None, limit: int = 200
) -> DeliveryReport:
    """Send the current clinic's due messages; call inside its scope."""
    report = DeliveryReport()
    now = now or clock.now()
    with unit_of_work():  # a read only, ended before any message is sent
        due_ids = list(
            db.session.scalars(
                select(OutboxMessage.id).where(due(now)).order_by(OutboxMessage.due_at).limit(limit)
            )
        )
    for message_id in due_ids:
        if not claim(message_id, now):
            continue
        message = db.session.get_one(OutboxMessage, message_id)
        with request_ids.carrying(message.request_id or request_ids.current()):
            _deliver_one(clinic, message, now, report)
    return report


def _deliver_one(
    clinic: Clinic, message: OutboxMessage, now: datetime, report: DeliveryReport
) -> None:
    """Send one claimed message, or settle why it is not sent (yet); count it in ``report``."""
    message_id = message.id
    booking = db.session.get(Booking, message.booking_id) if message.booking_id else None
    client = db.session.get(Client, message.client_id) if message.client_id else None
    if message.kind in ("reminder", "booking_confirmed") and (
        booking is None or booking.status not in (BookingStatus.confirmed,)
    ):
        _finish(message_id, OutboxStatus.withdrawn)
        return
    if message.kind in TO_CLIENT:
        permit = _allowed(clinic, message, client, now)
        if permit.not_before is not None:
            # Quiet hours: the message waits for the client's morning.
            _finish(
                message_id,
                OutboxStatus.pending,
                due_at=permit.not_before,
                last_error=permit.reason,
                attempts=OutboxMessage.attempts - 1,
            )
            report.deferred += 1
            return
        if permit.reason:
            _finish(message_id, OutboxStatus.skipped, last_error=permit.reason)
            report.skipped += 1
            return
    attachments: tuple[tuple[str, str, str], ...] = ()
    if message.kind == "reminder":
        subject, body = _render(clinic, message, booking, client)
        to = client.email if message.channel == "email" else client.phone
    elif message.kind == "booking_confirmed":
        subject, body, attachments = _confirmation(clinic, booking)
        to = client.email if client else None
    else:
        to, subject, body = _recipient(clinic, message, client)
    if not to:
        _finish(message_id, OutboxStatus.skipped, last_error="no address to send to")
        report.skipped += 1
        return
    try:
        if message.channel == "email":
            email_sender().send(
                Outgoing(
                    to,
                    subject,
                    body,
                    make_message_id(_message_id_domain(), message.dedupe_key, clinic_id=clinic.id),
                    attachments,
                ),
                sender=f"{clinic.name} <{clinic.contact_email or 'no-reply@clinic-saas.dev'}>",
                reply_to=clinic.contact_email,
            )
        else:
            sms_sender().send(to, body)
    except DeliveryError as error:
        log.warning(
            "delivery of outbox message %s failed (request %s): %s",
            message_id,
            request_ids.current(),
            error,
        )
        if message.attempts >= MAX_ATTEMPTS:
            _finish(message_id, OutboxStatus.failed, last_error=str(error))
            report.failed += 1
        else:
            backoff = timedelta(minutes=2 ** min(message.attempts, 6))
            _finish(message_id, OutboxStatus.pending, last_error=str(error), due_at=now + backoff)
            report.retried += 1
        report.errors.append(str(error))
        return
    _finish(message_id, OutboxStatus.sent, sent_at=clock.now())
    report.sent += 1


def deliver_due(now: datetime | None = None) -> DeliveryReport:
    """Deliver every clinic's due messages, one clinic scope at a time."""
    total = DeliveryReport()
    for clinic in each_clinic():
        report = deliver_for_clinic(clinic, now)
        for name in ("sent", "skipped", "deferred", "retried", "failed"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.errors.extend(report.errors)
    return total
