"""Processors and recipients holding a client's data, and the notices a deletion sends them."""

from __future__ import annotations

import dataclasses
from datetime import date

import stripe
from flask import current_app
from sqlalchemy import func, or_, select

from core import clock
from core.audit import services as audit
from core.bookings.models import Booking, BookingCharge
from core.clients.models import Client
from core.errors import DomainError, NotFound, Refused
from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind
from core.money import Money
from core.payments import stripe_api
from core.payments.models import Payment
from core.privacy.calendars import local_day
from core.privacy.models import (
    DataRecipient,
    PrivacyRequest,
    ProcessorNotice,
    ProcessorNoticeStatus,
)
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, transaction, unit_of_work


@dataclasses.dataclass(frozen=True)
class ProcessorItem:
    """A service provider or recipient holding the client's data, and what a deletion does there."""

    processor: str  # stripe, email_provider, sms_provider, data_recipient
    name: str
    reference: str | None
    action: str  # delete, keep, notify (staff tell them), record (for the operator)
    detail: str
    account: str | None = None
    data_recipient_id: int | None = None


#: A fee in these states is still owed by the client.
UNPAID_FEE = ("owed", "declined", "no_card")


#: A membership in these states is billed to the client's Stripe customer.
BILLED_MEMBERSHIP = ("incomplete", "trialing", "active", "past_due", "unpaid")


#: What happens at the platform's own message providers, to which it makes no deletion call.
PROVIDER_NOTE = (
    "the platform makes no deletion call to it, so the notice is recorded for the platform's "
    "operator to pass on under its agreement with the provider."
)


def processors_holding(clinic: Clinic, record: Client) -> list[ProcessorItem]:
    """Return each processor and recipient holding the client's data, and what a deletion does there.

    The customer on the clinic's Stripe account; the platform's email (SMTP)
    and SMS providers, by address and number; and every recipient registered
    at the clinic that the disclosure log shows received this client's data.
    """
    held = []
    if record.stripe_customer_id:
        held.append(_stripe_item(clinic, record))
    if record.email:
        held.append(
            ProcessorItem(
                "email_provider",
                "Email provider (SMTP)",
                record.email,
                "record",
                f"Email to this address went through the platform's SMTP relay; {PROVIDER_NOTE}",
            )
        )
    if record.phone:
        twilio = bool(current_app.config.get("TWILIO_ACCOUNT_SID"))
        held.append(
            ProcessorItem(
                "sms_provider",
                "SMS provider (Twilio)" if twilio else "SMS provider",
                record.phone,
                "record",
                f"Texts to this number went through the platform's SMS provider; {PROVIDER_NOTE}",
            )
        )
    for recipient, days in _recipients_of(clinic, record):
        on = ", ".join(day.isoformat() for day in days)
        held.append(
            ProcessorItem(
                "data_recipient",
                recipient_label(recipient),
                f"disclosed on {on}"[:200],
                "notify",
                f"{recipient.name} received the client's data ({recipient.role}, for "
                f"{recipient.purpose}): the clinic tells them to delete it, then records the "
                "notice as sent.",
                data_recipient_id=recipient.id,
            )
        )
    return held


def _stripe_item(clinic: Clinic, record: Client) -> ProcessorItem:
    """Decide what happens to the client's Stripe customer, and say why.

    Deleted, with its saved cards, unless the clinic still needs it: a fee
    still owed (collected from the card on file, under the policy the client
    agreed to), a card dispute still open (the clinic answers with its
    evidence), or a membership Stripe still bills to it (deleting the
    customer would cancel it unannounced). Payment records kept under a
    retention hold do not keep the customer: the clinic's books keep the
    money trail by id, and Stripe keeps the charges themselves, so refunds
    and disputes on them still work.
    """
    customer = record.stripe_customer_id
    account = clinic.stripe_account_id
    if not account:
        return ProcessorItem(
            "stripe",
            "Stripe",
            customer,
            "notify",
            f"The clinic's Stripe account is not connected, so the platform cannot delete the "
            f"customer {customer}: the clinic deletes it from its Stripe dashboard, then records "
            "the notice as sent.",
        )
    reasons = _stripe_keep_reasons(record)
    if reasons:
        return ProcessorItem(
            "stripe", "Stripe", customer, "keep", _kept_because(reasons), account=account
        )
    return ProcessorItem(
        "stripe",
        "Stripe",
        customer,
        "delete",
        f"The customer {customer} and its saved cards are deleted from the clinic's Stripe "
        f"account ({account}); the payments already made stay in Stripe's records and the "
        "clinic's books.",
        account=account,
    )


def _kept_because(reasons: list[str]) -> str:
    return (
        f"Kept on the clinic's Stripe account while {'; '.join(reasons)}. It is deleted once "
        "nothing holds it (retry the request's notices)."
    )


def _stripe_keep_reasons(record: Client) -> list[str]:
    """Return why the clinic still needs the client's Stripe customer, if it does."""
    from core.payments.services import FEES
    from core.sales.models import ClientMembership, Sale

    bookings = select(Booking.id).where(Booking.client_id == record.id)
    reasons = [
        f"a {kind.replace('_', ' ')} of {Money(amount, currency).format()} is still owed"
        for kind, amount, currency in db.session.execute(
            select(BookingCharge.kind, BookingCharge.amount_minor, BookingCharge.currency)
            .where(
                BookingCharge.booking_id.in_(bookings),
                BookingCharge.kind.in_([kind.value for kind in FEES]),
                BookingCharge.status.in_(UNPAID_FEE),
            )
            .order_by(BookingCharge.id)
        )
    ]
    payments = select(Payment.id).where(
        or_(
            Payment.booking_id.in_(bookings),
            Payment.sale_id.in_(select(Sale.id).where(Sale.client_id == record.id)),
        )
    )
    disputes: dict[str, set[LedgerKind]] = {}
    for kind, reference in db.session.execute(
        select(LedgerEntry.kind, LedgerEntry.reference).where(
            LedgerEntry.kind.in_(
                [LedgerKind.dispute_opened, LedgerKind.dispute_won, LedgerKind.dispute_lost]
            ),
            or_(
                LedgerEntry.client_id == record.id,
                LedgerEntry.booking_id.in_(bookings),
                LedgerEntry.payment_id.in_(payments),
            ),
        )
    ):
        disputes.setdefault(reference, set()).add(kind)
    reasons += [
        f"the card dispute {reference} is open"
        for reference, kinds in sorted(disputes.items())
        if kinds == {LedgerKind.dispute_opened}
    ]
    billed = db.session.scalar(
        select(func.count())
        .select_from(ClientMembership)
        .where(
            ClientMembership.client_id == record.id,
            ClientMembership.status.in_(BILLED_MEMBERSHIP),
        )
    )
    if billed:
        reasons.append("a membership is billed to it (end the membership first)")
    return reasons


def recipient_label(recipient: DataRecipient) -> str:
    """Return how a registered recipient is named in the disclosure log."""
    return f"{recipient.name} ({recipient.country})"


def _recipients_of(clinic: Clinic, record: Client) -> list[tuple[DataRecipient, list[date]]]:
    """Return the registered recipients the disclosure log shows received the client's data.

    Each with the clinic's local days of those disclosures, oldest first.
    """
    disclosed: dict[str, list[date]] = {}
    for event in audit.disclosures(record.id):
        if event.recipient:
            day = local_day(clock.as_utc(event.at), clinic.timezone)
            days = disclosed.setdefault(event.recipient, [])
            if day not in days:
                days.append(day)
    return [
        (recipient, disclosed[recipient_label(recipient)])
        for recipient in db.session.scalars(select(DataRecipient).order_by(DataRecipient.id))
        if recipient_label(recipient) in disclosed
    ]


def _notice(request: PrivacyRequest, record: Client, item: ProcessorItem) -> ProcessorNotice:
    """Return the notice recording what the deletion asks of one processor (the intent)."""
    status = {
        "keep": ProcessorNoticeStatus.kept,
        "record": ProcessorNoticeStatus.recorded,
    }.get(item.action, ProcessorNoticeStatus.pending)
    return ProcessorNotice(
        request_id=request.id,
        client_id=record.id,
        processor=item.processor,
        name=item.name,
        reference=item.reference,
        account=item.account,
        data_recipient_id=item.data_recipient_id,
        action=item.action,
        status=status,
        outcome=item.detail if item.action in ("keep", "record") else None,
    )


def carry_out_notices(clinic: Clinic, request: PrivacyRequest, *, again: bool = False) -> None:
    """Delete the Stripe customer a committed deletion decided to delete, and record the outcome.

    Runs once the deletion has committed: each call to Stripe sits between two
    short units of work (the intent read before it, the answer written after),
    so no row is locked while Stripe answers. ``again`` also retries a failed
    call and looks again at a customer kept for a reason that may have ended
    (a fee since paid, a dispute closed).
    """
    statuses = [ProcessorNoticeStatus.pending]
    if again:
        statuses += [ProcessorNoticeStatus.failed, ProcessorNoticeStatus.kept]
    with unit_of_work():  # a read only: nothing stays open while Stripe answers
        due = list(
            db.session.scalars(
                select(ProcessorNotice.id)
                .where(
                    ProcessorNotice.request_id == request.id,
                    ProcessorNotice.processor == "stripe",
                    ProcessorNotice.action.in_(["delete", "keep"]),
                    ProcessorNotice.status.in_(statuses),
                )
                .order_by(ProcessorNotice.id)
            )
        )
    for notice_id in due:
        _delete_stripe_customer(clinic, notice_id)


def _delete_stripe_customer(clinic: Clinic, notice_id: int) -> None:
    with unit_of_work():
        notice = db.session.get(ProcessorNotice, notice_id)
        if notice.status == ProcessorNoticeStatus.deleted:
            return  # another attempt finished it since it was listed
        if notice.status == ProcessorNoticeStatus.kept:
            reasons = _stripe_keep_reasons(db.session.get(Client, notice.client_id))
            if reasons:
                notice.outcome = _kept_because(reasons)
                notice.attempted_at = clock.now()
                return
        notice.action = "delete"  # nothing holds it any more, if it was kept
        customer, account = notice.reference, notice.account
    no_open_unit("deleting a Stripe customer")
    at = clock.now()
    try:
        existed = stripe_api.delete_customer(account or stripe_api.account_of(clinic), customer)
    except (stripe.StripeError, DomainError) as error:
        status, outcome = ProcessorNoticeStatus.failed, _failure(error)
    else:
        status = ProcessorNoticeStatus.deleted
        outcome = (
            f"Stripe deleted the customer {customer} and its saved cards."
            if existed
            else f"Stripe holds no customer {customer} on this account any more (deleted before)."
        )
    with unit_of_work():
        notice = db.session.get(ProcessorNotice, notice_id, with_for_update=True)
        if notice.status == ProcessorNoticeStatus.deleted:
            return  # another attempt finished first; a failure must not undo it
        notice.status = status
        notice.outcome = outcome
        notice.attempted_at = at
        if status == ProcessorNoticeStatus.deleted:
            notice.action = "delete"
            notice.sent_at = clock.now()
            record = db.session.get(Client, notice.client_id)
            if record.stripe_customer_id == customer:
                # The cards went with the customer: nothing is left to charge.
                record.stripe_customer_id = None
                record.stripe_payment_method_id = None
                record.card_expires_on = None


def _failure(error: Exception) -> str:
    """Say in a line why Stripe could not be asked, for staff reading the notice."""
    if isinstance(error, DomainError):
        detail = error.detail
    else:
        detail = getattr(error, "user_message", None) or type(error).__name__
    return f"Not deleted yet: {detail} Retried with the request's notices."[:1000]


@transaction
def mark_processor_notice_sent(
    request: PrivacyRequest, notice_id: int, outcome: str | None
) -> ProcessorNotice:
    """Record that staff sent a notice the platform cannot send itself (a recipient, the dashboard)."""
    notice = db.session.get(ProcessorNotice, notice_id)
    if notice is None or notice.request_id != request.id:
        raise NotFound("No such notice for this privacy request.")
    if notice.action not in ("notify", "record"):
        raise Refused(
            "The platform carries out this notice itself; retry the request's notices instead.",
            kind="notice-carried-out-by-platform",
        )
    if notice.status != ProcessorNoticeStatus.sent:
        notice.status = ProcessorNoticeStatus.sent
        notice.sent_at = clock.now()
        notice.outcome = outcome or "Sent by the clinic."
    return notice
