"""A booking's requirements read back from its stored record as the same typed decision."""

from __future__ import annotations

import pytest

from core.bookings.models import Booking
from core.bookings.services import as_record
from core.hooks.decisions import (
    BookingRequirements,
    Clause,
    DepositOutcome,
    Guarantee,
    requirements_from_record,
)
from core.money import Money

DEPOSIT = Clause("bijoux.deposit", "A $50 deposit is required to book.", "policy page")


@pytest.mark.parametrize(
    "decided",
    [
        BookingRequirements(clauses=()),
        BookingRequirements(
            clauses=(DEPOSIT,), guarantee=Guarantee.card_on_file, deposit=Money(5000, "USD")
        ),
        BookingRequirements(
            clauses=(DEPOSIT, Clause("nz.prepay", "Prepay in full.")),
            guarantee=Guarantee.card_or_gift_certificate,
            prepayment=Money(12000, "NZD"),
            prepayment_refundable=False,
            parental_consent_required=True,
        ),
        BookingRequirements(clauses=(), refused=True, refusal_reason="under 18"),
    ],
)
def test_what_a_booking_stores_reads_back_as_the_decision_it_was(decided):
    assert requirements_from_record(as_record(decided)) == decided
    assert Booking(requirements=as_record(decided)).needs == decided


def test_what_became_of_a_booking_is_kept_beside_its_requirements():
    booking = Booking(requirements=as_record(BookingRequirements(clauses=(DEPOSIT,))))
    assert booking.deposit_outcome is None
    booking.note(deposit_outcome=DepositOutcome.forfeited, gift_certificate_id=7)
    assert booking.deposit_outcome is DepositOutcome.forfeited
    assert booking.requirements["gift_certificate_id"] == 7
    assert booking.needs.clauses == (DEPOSIT,)
