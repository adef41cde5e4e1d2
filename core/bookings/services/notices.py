"""Telling the client, in the clinic's own words, what a policy decision means for them."""

from __future__ import annotations

from typing import Any

from core import clock
from core.bookings.models import Booking
from core.hooks.decisions import DepositOutcome
from core.messaging import outbox

#: What the client is told of their money, by what the policy decided for it.
DEPOSIT_TOLD = {
    DepositOutcome.kept: "The amount you paid ahead stays with this appointment.",
    DepositOutcome.moved: "The amount you paid ahead moves to your new time.",
    DepositOutcome.refunded: "The amount you paid ahead will be refunded to your card.",
    DepositOutcome.forfeited: "The amount you paid ahead is kept under the clinic's policy.",
    DepositOutcome.credited: "The amount you paid ahead becomes credit for future services.",
}


def tell_client(booking: Booking, subject: str, decision: Any) -> None:
    """Email the client what a policy decision means for them, in the clinic's own words."""
    lines = [f"{subject}: {booking.service.name} on {clock.as_utc(booking.starts_at):%Y-%m-%d}."]
    fee = getattr(decision, "fee", None)
    if fee:
        lines.append(f"A fee of {fee.format()} applies and is charged to the card on file.")
    told = DEPOSIT_TOLD.get(getattr(decision, "deposit", None))
    if told:
        lines.append(told)
    lines.append(f'Why: "{decision.clause.text}"')
    outbox.queue(
        "booking_notice",
        client_id=booking.client_id,
        booking_id=booking.id,
        dedupe_key=f"notice:{booking.id}:{len(booking.events)}",
        subject=subject,
        body=" ".join(lines),
        clause=decision.clause.id,
    )
