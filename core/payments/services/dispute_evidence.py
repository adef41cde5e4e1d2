"""The evidence answering a card dispute, written from what the platform stored about the booking.

Stripe's evidence has text fields and file fields; only text fields are filled
(the policy's wording goes in as text, since Stripe's ``cancellation_policy``
and ``receipt`` fields take uploaded files). What goes in: the client's name
and email, the booking's time, service and place, the policy clauses the client
accepted (when, from which address and browser), the booking's events, the
messages sent about it, and the receipt. Never health data: no intake
answers, treatment notes, consents or the booking's clinical requirements are
read here, so none can leak into what a card network sees.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from core import clock
from core.bookings.models import (
    Booking,
    BookingCharge,
    BookingEvent,
    ChargeKind,
    PolicyAcceptance,
    PolicyVersion,
)
from core.catalog.models import Service
from core.clients.models import Client
from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind
from core.messaging.models import OutboxMessage, OutboxStatus
from core.payments.models import CardAgreement, Payment, PaymentStatus
from core.tenancy.models import Clinic, Location

#: The evidence fields the platform fills, and the only ones a manager may edit before submitting.
TEXT_FIELDS = (
    "customer_name",
    "customer_email_address",
    "customer_purchase_ip",
    "service_date",
    "product_description",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "access_activity_log",
    "uncategorized_text",
)

#: Stripe's limit for one text field of evidence is 20,000 characters.
FIELD_LENGTH = 20_000

#: Booking details that say when, never what was done to whom: the only ones copied out.
_TIMING_DETAILS = ("from", "to", "arrived_at")

#: What each charge of a booking is called in evidence.
_CHARGE_NAMES = {
    ChargeKind.deposit: "deposit",
    ChargeKind.prepayment: "prepayment",
    ChargeKind.late_cancellation_fee: "late cancellation fee",
    ChargeKind.no_show_fee: "no-show fee",
    ChargeKind.late_arrival_fee: "late arrival fee",
}

_CHANNELS = {
    "online": "on the clinic's online booking page",
    "self_service": "through the client's own booking link",
    "staff": "with the clinic's staff",
}

_ACTORS = {"client": "by the client", "staff": "by the clinic", "system": "automatically"}

#: What each booking event is called in the activity log (its action, less ``_by_<who>``).
_ACTIVITY = {
    "booked": "booking made",
    "confirmed": "booking confirmed",
    "cancelled": "booking cancelled",
    "rescheduled": "booking moved",
    "no_show": "booking marked a no-show",
    "completed": "visit completed",
    "hold_expired": "hold lapsed",
}


def _who(event: BookingEvent) -> str:
    """Who acted: after booking, a client acts only through their own booking link."""
    if event.actor == "client" and event.action != "booked":
        return "by the client, through their own booking link"
    return _ACTORS.get(event.actor, event.actor)


def _activity_name(event: BookingEvent) -> str:
    action = event.action.split("_by_")[0]
    if action.startswith("checked_in"):
        return "client checked in"
    return _ACTIVITY.get(action, action.replace("_", " "))


def _utc(moment: datetime) -> str:
    return clock.as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _local(moment: datetime, zone: str) -> str:
    return clock.as_utc(moment).astimezone(ZoneInfo(zone)).strftime(f"%Y-%m-%d %H:%M ({zone})")


def charge_name(purpose: str) -> str | None:
    """Return what a payment's purpose is called in evidence; None when it is no booking's charge."""
    try:
        return _CHARGE_NAMES[ChargeKind(purpose)]
    except ValueError:
        return None


def assemble(clinic: Clinic, payment: Payment | None) -> dict[str, str] | None:
    """Return the evidence for a dispute of ``payment``, as Stripe's text fields; None if none exists.

    Only a booking's deposit, prepayment or fee has evidence stored: a
    payment of a bill, a membership or an unknown payment has none.
    """
    if payment is None or payment.booking_id is None or charge_name(payment.purpose) is None:
        return None
    booking = db.session.get(Booking, payment.booking_id)
    if booking is None:
        return None
    client = db.session.get_one(Client, booking.client_id)
    service = db.session.get_one(Service, booking.service_id)
    location = db.session.get_one(Location, booking.location_id)
    charge = (
        db.session.get(BookingCharge, payment.booking_charge_id)
        if payment.booking_charge_id
        else None
    )
    version = db.session.get(PolicyVersion, booking.policy_version_id)
    acceptances = list(
        db.session.scalars(
            select(PolicyAcceptance)
            .where(PolicyAcceptance.booking_id == booking.id)
            .order_by(PolicyAcceptance.id)
        )
    )
    events = list(
        db.session.scalars(
            select(BookingEvent)
            .where(BookingEvent.booking_id == booking.id)
            .order_by(BookingEvent.id)
        )
    )
    messages = list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.booking_id == booking.id, OutboxMessage.status == OutboxStatus.sent
            )
            .order_by(OutboxMessage.sent_at, OutboxMessage.id)
        )
    )
    cards = list(
        db.session.scalars(
            select(CardAgreement)
            .where(
                CardAgreement.booking_id == booking.id,
                CardAgreement.status == PaymentStatus.succeeded,
            )
            .order_by(CardAgreement.id)
        )
    )
    paid_at = db.session.scalar(
        select(LedgerEntry.at)
        .where(
            LedgerEntry.payment_id == payment.id,
            LedgerEntry.kind.in_(
                [
                    LedgerKind.deposit_received,
                    LedgerKind.prepayment_received,
                    LedgerKind.fee_charged,
                ]
            ),
        )
        .order_by(LedgerEntry.id)
        .limit(1)
    )
    zone = location.timezone
    what = charge_name(payment.purpose) or payment.purpose
    clauses = {
        str(c.get("id")): str(c.get("text") or "") for c in (version.clauses if version else [])
    }

    evidence = {
        "customer_name": f"{client.legal_first_name} {client.legal_last_name}",
        "customer_email_address": client.email or "",
        "customer_purchase_ip": next((a.ip_address for a in acceptances if a.ip_address), ""),
        "service_date": clock.as_utc(booking.starts_at)
        .astimezone(ZoneInfo(zone))
        .date()
        .isoformat(),
        "product_description": (
            f"{service.name} at {clinic.legal_name or clinic.name}, {location.name}, "
            f"booked for {_local(booking.starts_at, zone)}. The disputed payment is the "
            f"{what} of {payment.amount.format()} for this appointment."
        ),
        "cancellation_policy_disclosure": _disclosure(
            clinic, booking, acceptances, cards, clauses, version
        ),
        "cancellation_rebuttal": _rebuttal(booking, charge, what, payment, events, zone),
        "access_activity_log": _activity(booking, events, acceptances, messages, paid_at, what),
        "uncategorized_text": _receipt(
            clinic, booking, service, payment, paid_at, what, messages, zone
        ),
    }
    return {field: text[:FIELD_LENGTH] for field, text in evidence.items() if text}


def _disclosure(
    clinic: Clinic,
    booking: Booking,
    acceptances: list[PolicyAcceptance],
    cards: list[CardAgreement],
    clauses: dict[str, str],
    version: PolicyVersion | None,
) -> str:
    lines = []
    for acceptance in acceptances:
        lines.append(
            f"The client explicitly accepted {clinic.name}'s policy (version {version.digest[:12] if version else '?'}) "
            f"{_CHANNELS.get(acceptance.channel, acceptance.channel)} at {_utc(acceptance.accepted_at)}, "
            f"from IP address {acceptance.ip_address or 'not recorded'}, with the browser "
            f'"{acceptance.user_agent or "not recorded"}". The acceptance was recorded when given, '
            "with the clauses shown, and is never changed."
        )
    if not acceptances:
        lines.append(
            f"This policy was in force for the booking when it was made at "
            f"{_utc(booking.policy_accepted_at)}; no separate acceptance by the client was recorded."
        )
    for card in cards:
        lines.append(
            f"The client saved their card to guarantee the booking under this policy at "
            f"{_utc(card.agreed_at)}."
        )
    accepted = [c for a in acceptances for c in a.clause_ids] or list(clauses)
    lines.append("The policy's words, as the client was shown them:")
    lines.extend(f"[{cid}] {clauses[cid]}" for cid in dict.fromkeys(accepted) if cid in clauses)
    return "\n".join(lines)


def _rebuttal(
    booking: Booking,
    charge: BookingCharge | None,
    what: str,
    payment: Payment,
    events: list[BookingEvent],
    zone: str,
) -> str:
    lines = []
    if charge is not None and charge.clause_text:
        lines.append(
            f"The {what} of {payment.amount.format()} was charged under this clause of the policy "
            f'the client accepted ({charge.clause_id}): "{charge.clause_text}"'
        )
    starts = clock.as_utc(booking.starts_at)
    for event in events:
        if event.action.startswith(("cancelled", "no_show", "rescheduled", "checked_in")):
            notice = (starts - clock.as_utc(event.at)).total_seconds() / 3600
            when = (
                f"{notice:.0f} hours before the appointment"
                if notice >= 0
                else "after the appointment's start"
            )
            lines.append(
                f"{_action(event)} {_who(event)} at "
                f"{_local(event.at, zone)}, {when} (booked for {_local(booking.starts_at, zone)})."
            )
    return "\n".join(lines)


def _action(event: BookingEvent) -> str:
    details = {k: event.details[k] for k in _TIMING_DETAILS if k in (event.details or {})}
    words = event.action.replace("_", " ")
    if event.action.startswith("cancelled"):
        words = "The booking was cancelled"
    elif event.action == "no_show":
        words = "The client did not come: the booking was marked a no-show"
    elif event.action == "rescheduled":
        words = f"The booking was moved from {details.get('from')} to {details.get('to')}"
    elif event.action.startswith("checked_in"):
        words = f"The client arrived at {details.get('arrived_at')}"
    return words


def _activity(
    booking: Booking,
    events: list[BookingEvent],
    acceptances: list[PolicyAcceptance],
    messages: list[OutboxMessage],
    paid_at: datetime | None,
    what: str,
) -> str:
    entries: list[tuple[datetime, str]] = []
    for event in events:
        clause = f" under policy clause {event.clause_id}" if event.clause_id else ""
        entries.append(
            (
                clock.as_utc(event.at),
                f"{_activity_name(event)} {_who(event)}"
                f" (status {event.from_status or 'new'} -> {event.to_status}){clause}",
            )
        )
    for acceptance in acceptances:
        entries.append(
            (
                clock.as_utc(acceptance.accepted_at),
                f"policy accepted {_CHANNELS.get(acceptance.channel, acceptance.channel)} "
                f"from {acceptance.ip_address or 'an unrecorded address'}"
                + (
                    ", using the client's own booking link"
                    if acceptance.channel == "self_service"
                    else ""
                ),
            )
        )
    for message in messages:
        if message.sent_at is not None:
            entries.append(
                (
                    clock.as_utc(message.sent_at),
                    f"{message.kind.replace('_', ' ')} sent to the client by {message.channel}",
                )
            )
    if paid_at is not None:
        entries.append((clock.as_utc(paid_at), f"{what} paid"))
    entries.sort(key=lambda entry: entry[0])
    return "\n".join(f"{_utc(at)}  {line}" for at, line in entries)


def _receipt(
    clinic: Clinic,
    booking: Booking,
    service: Service,
    payment: Payment,
    paid_at: datetime | None,
    what: str,
    messages: list[OutboxMessage],
    zone: str,
) -> str:
    lines = [
        f"Receipt: {payment.amount.format()} paid to {clinic.legal_name or clinic.name}"
        + (f" at {_utc(paid_at)}" if paid_at else "")
        + f", the {what} for {service.name} booked for {_local(booking.starts_at, zone)}"
        + (
            f" (Stripe payment {payment.stripe_payment_intent_id})."
            if payment.stripe_payment_intent_id
            else "."
        ),
    ]
    reminders = [m for m in messages if m.kind == "reminder" and m.sent_at is not None]
    if reminders:
        lines.append(
            "Reminders of the appointment sent to the client: "
            + ", ".join(f"{m.channel} at {_utc(m.sent_at)}" for m in reminders if m.sent_at)
            + "."
        )
    return "\n".join(lines)


def edited(evidence: dict[str, str], edits: dict[str, Any]) -> dict[str, str]:
    """Return ``evidence`` with a manager's ``edits`` to its text fields; an empty edit removes one."""
    merged = dict(evidence)
    for field, text in edits.items():
        if field not in TEXT_FIELDS:
            continue
        if text:
            merged[field] = str(text)[:FIELD_LENGTH]
        else:
            merged.pop(field, None)
    return merged
