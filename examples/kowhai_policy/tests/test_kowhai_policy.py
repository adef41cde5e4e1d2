"""Kōwhai Skin Clinic's policy, tested with the clinic-saas kit (the ``clinic_kit`` fixture).

Each test quotes the sentence of the clinic's policy it checks.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from core.hooks import (
    CancellationDecision,
    ClinicView,
    DepositOutcome,
    NoShowDecision,
    RefundOutcome,
)
from core.testing import ClinicKit, assert_decision, assert_keeps_contract

TENANTS = Path(__file__).parent.parent / "tenants" / "kowhai-skin.toml"


@pytest.fixture
def clinic(clinic_kit: ClinicKit) -> ClinicView:
    return clinic_kit.clinic(TENANTS)


def test_the_plugin_is_installed_and_keeps_the_contract(clinic_kit: ClinicKit) -> None:
    assert clinic_kit.host.has_plugin("kowhai_policy")
    assert "kowhai_policy" not in clinic_kit.host.refused


def test_cancelling_with_less_than_24_hours_notice_costs_half_the_treatment(
    clinic_kit: ClinicKit, clinic: ClinicView
) -> None:
    # "Cancellations with less notice are charged 50% of the treatment price."
    booking = clinic_kit.booking(clinic, service="hydrafacial", starts_at="2027-03-10 14:00")
    decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(hours=23), by="client"
    )
    assert_keeps_contract("clinic_cancellation_decision", decision, clinic)
    assert_decision(
        decision,
        CancellationDecision,
        clause="kowhai_policy.cancellation",
        quotes="charged 50% of the treatment price",
        fee="124.50",
        within_notice_window=True,
        counts_as_late_cancellation=True,
        deposit=DepositOutcome.none,
    )


def test_cancelling_with_24_hours_notice_is_free(clinic_kit: ClinicKit, clinic: ClinicView) -> None:
    # "Please give us at least 24 hours' notice if you need to cancel."
    booking = clinic_kit.booking(
        clinic, service="anti-wrinkle", starts_at="2027-03-10 14:00", deposit_paid="100.00"
    )
    decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(hours=24), by="client"
    )
    assert_decision(decision, fee="0.00", within_notice_window=False)
    assert decision.deposit == DepositOutcome.refunded


def test_a_missed_appointment_is_charged_in_full(clinic_kit: ClinicKit, clinic: ClinicView) -> None:
    # "Appointments missed without notice are charged in full."
    booking = clinic_kit.booking(clinic, service="anti-wrinkle", starts_at="2027-03-10 14:00")
    decision = clinic_kit.hooks(clinic).clinic_no_show_decision(clinic=clinic, booking=booking)
    assert_decision(decision, NoShowDecision, clause="kowhai_policy.no_show", fee="499.00")


def test_when_the_clinic_cancels_the_default_policy_answers(
    clinic_kit: ClinicKit, clinic: ClinicView
) -> None:
    booking = clinic_kit.booking(clinic, service="hydrafacial", starts_at="2027-03-10 14:00")
    decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(hours=2), by="clinic"
    )
    assert decision.clause.id.startswith("default_policy.")
    assert decision.fee.minor == 0


def test_refunds_stay_with_the_default_policy(clinic_kit: ClinicKit, clinic: ClinicView) -> None:
    from types import SimpleNamespace

    from core.hooks import Money

    item = SimpleNamespace(
        kind="service", amount_paid=Money(24900, "NZD"), sold_at=None, condition=None, quantity=1
    )
    decision = clinic_kit.hooks(clinic).clinic_refund_decision(
        clinic=clinic,
        item=item,
        reason="unhappy",
        at=clinic_kit.booking(clinic, starts_at="2027-03-10 14:00").starts_at,
    )
    assert decision.outcome in set(RefundOutcome)
    assert decision.clause.id.startswith("default_policy.")


def test_the_settings_are_checked_when_the_clinic_is_loaded(clinic_kit: ClinicKit) -> None:
    from core.testing import KitError

    with pytest.raises(KitError, match="late_cancellation_percent"):
        clinic_kit.clinic(
            TENANTS.read_text(encoding="utf-8").replace(
                "late_cancellation_percent = 50", "late_cancellation_percent = 150"
            )
        )
