"""The plugin host: entry points, per-clinic plugin sets, core defaults last, failing closed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from types import SimpleNamespace

import pytest

from core.hooks import (
    CORE_DEFAULTS,
    BookingView,
    CancellationDecision,
    Clause,
    DepositOutcome,
    Guarantee,
    Money,
    PluginFailed,
    PluginHost,
    PluginRefused,
    RefundOutcome,
    ServiceView,
    hookimpl,
)
from core.tenancy.models import Clinic

STARTS = datetime(2026, 12, 10, 17, 0, tzinfo=UTC)


def clinic(slug="alpha", enabled=(), settings=None, currency="USD"):
    return Clinic(
        slug=slug,
        name=slug,
        timezone="America/Los_Angeles",
        currency=currency,
        country="US",
        enabled_plugins=list(enabled),
        plugin_settings=settings or {},
    )


class FlatFeePolicy:
    """A clinic policy that charges $75 for any cancellation."""

    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return CancellationDecision(
            clause=Clause("flat.cancel", "Every cancellation costs $75."),
            fee=Money(7500, clinic.currency),
            deposit=DepositOutcome.forfeited,
            within_notice_window=True,
        )


class BrokenPolicy:
    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        raise KeyError("fee table")


@pytest.fixture
def host():
    return PluginHost()


def test_core_defaults_are_registered_through_the_entry_point_group(host):
    group = {ep.name for ep in entry_points(group="clinic_saas")}
    assert group >= CORE_DEFAULTS
    assert set(host.plugin_names()) >= CORE_DEFAULTS


def test_a_misspelled_hook_fails_loudly_at_registration(host):
    class Misspelled:
        @hookimpl
        def clinic_cancelation_decision(self, clinic, booking, at, by):  # one "l"
            return None

    with pytest.raises(PluginRefused) as refused:
        host.register(Misspelled(), "misspelled")
    assert refused.value.name == "misspelled"
    assert "did you mean 'clinic_cancellation_decision'" in refused.value.reason
    assert not host.has_plugin("misspelled")


def test_a_clinics_own_plugin_answers_before_the_core_default(host):
    with host.registered(FlatFeePolicy(), "flat_fee"):
        decision = host.for_clinic(clinic(enabled=["flat_fee"])).clinic_cancellation_decision(
            clinic=clinic(enabled=["flat_fee"]),
            booking=_booking(),
            at=STARTS,
            by="client",
        )
    assert decision.fee == Money(7500, "USD")
    assert decision.clause.id == "flat.cancel"


def test_a_plugin_reaches_only_the_clinics_that_enable_it(host):
    with host.registered(FlatFeePolicy(), "flat_fee"):
        beta = clinic("beta")
        decision = host.for_clinic(beta).clinic_cancellation_decision(
            clinic=beta,
            booking=_booking(),
            at=STARTS - timedelta(days=5),
            by="client",
        )
    assert decision.fee == Money(0, "USD")
    assert decision.clause.id == "default_policy.cancellation"


def test_a_raising_plugin_fails_closed_and_is_named(host, caplog):
    with host.registered(BrokenPolicy(), "broken_policy"):
        alpha = clinic(enabled=["broken_policy"])
        with pytest.raises(PluginFailed) as raised:
            host.for_clinic(alpha).clinic_cancellation_decision(
                clinic=alpha, booking=_booking(), at=STARTS, by="client"
            )
    assert raised.value.plugin == "broken_policy"
    assert raised.value.status == 503
    assert "broken_policy" in raised.value.detail
    assert "Nothing was changed" in raised.value.detail
    assert any("broken_policy" in r.getMessage() for r in caplog.records)


def test_plugin_failure_reaches_the_client_as_a_problem_document(app, host):
    from core.accounts.access import declare_public

    @app.get("/policy-check")
    def policy_check():
        with host.registered(BrokenPolicy(), "broken_policy"):
            alpha = clinic(enabled=["broken_policy"])
            host.for_clinic(alpha).clinic_cancellation_decision(
                clinic=alpha, booking=_booking(), at=STARTS, by="client"
            )
        return {"charged": True}

    declare_public(app, "policy_check")
    response = app.test_client().get("/policy-check")
    assert response.status_code == 503
    body = response.get_json()
    assert body["plugin"] == "broken_policy"
    assert body["hook"] == "clinic_cancellation_decision"
    assert "charged" not in body


def test_a_clinic_enabling_a_plugin_that_is_not_installed_fails_closed(host):
    with pytest.raises(PluginFailed) as raised:
        host.for_clinic(clinic(enabled=["uninstalled_policy"]))
    assert raised.value.plugin == "uninstalled_policy"


def test_decisions_are_immutable():
    decision = CancellationDecision(
        clause=Clause("x", "text"),
        fee=Money(100, "USD"),
        deposit=DepositOutcome.kept,
        within_notice_window=True,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.fee = Money(0, "USD")


def test_jurisdiction_answers_are_collected_from_every_plugin(host):
    from core.hooks import PrivacyRight, RightOffered

    class Portability:
        @hookimpl
        def clinic_privacy_rights(self, clinic):
            return [RightOffered(PrivacyRight.portability, Clause("gdpr.20", "Data portability."))]

    with host.registered(Portability(), "portability"):
        alpha = clinic(enabled=["portability"])
        rights = {
            r.right for r in host.for_clinic(alpha).answers("clinic_privacy_rights", clinic=alpha)
        }
    assert {PrivacyRight.access, PrivacyRight.correct, PrivacyRight.portability} <= rights


# --- the platform default policy, tuned by settings ----------------------------


def test_default_policy_charges_the_configured_fee_inside_the_window(host):
    settings = {
        "default_policy": {"cancellation_window_hours": 24, "late_cancellation_fee": "40.00"}
    }
    nz = clinic(settings=settings, currency="NZD")
    hooks = host.for_clinic(nz)
    booking = _booking()
    late = hooks.clinic_cancellation_decision(
        clinic=nz, booking=booking, at=STARTS - timedelta(hours=23), by="client"
    )
    early = hooks.clinic_cancellation_decision(
        clinic=nz, booking=booking, at=STARTS - timedelta(hours=25), by="client"
    )
    assert late.fee == Money(4000, "NZD") and late.within_notice_window
    assert early.fee == Money(0, "NZD") and not early.within_notice_window
    assert "24 hours" in late.clause.text and "NZ$40.00" in late.clause.text


def test_default_policy_refunds_need_a_manager(host):
    plain = clinic()
    decision = host.for_clinic(plain).clinic_refund_decision(
        clinic=plain,
        item=SimpleNamespace(kind="service", amount_paid=Money(12000, "USD")),
        reason="unhappy",
        at=STARTS,
    )
    assert decision.outcome == RefundOutcome.refund
    assert decision.amount == Money(12000, "USD")
    assert decision.requires_manager_approval


def test_default_policy_guarantee_and_deposit_come_from_settings(host):
    tuned = clinic(settings={"default_policy": {"guarantee": "card_on_file", "deposit": "25.00"}})
    requirements = host.for_clinic(tuned).clinic_booking_requirements(
        clinic=tuned, service=None, client=None, starts_at=STARTS
    )
    assert requirements.guarantee == Guarantee.card_on_file
    assert requirements.deposit == Money(2500, "USD")


def _booking(minutes=60, category="laser", paid=None):
    service = ServiceView(1, "Treatment", category, minutes, Money(10000, "USD"))
    return BookingView(
        id=1,
        status="confirmed",
        source="online",
        starts_at=STARTS,
        ends_at=STARTS + timedelta(minutes=minutes),
        service=service,
        price=service.price,
        deposit_paid=paid,
    )


def test_default_policy_takes_a_fee_table_by_duration_and_the_clinics_own_words(host):
    glow = clinic(
        settings={
            "default_policy": {
                "source": "Glow Spa terms",
                "cancellation_window_hours": 36,
                "fees": [
                    {"category": "laser", "max_minutes": 45, "fee": "40.00"},
                    {"category": "laser", "min_minutes": 46, "fee": "90.00"},
                ],
                "late_cancellation_fee": "25.00",
                "cancellation_clause": "Tell us {hours} hours ahead, or the table fee applies.",
            }
        }
    )
    hooks = host.for_clinic(glow)
    late = STARTS - timedelta(hours=30)
    fees = [
        hooks.clinic_cancellation_decision(
            clinic=glow, booking=_booking(minutes, category), at=late, by="client"
        ).fee
        for minutes, category in ((30, "laser"), (60, "laser"), (60, "facial"))
    ]
    assert fees == [Money(4000, "USD"), Money(9000, "USD"), Money(2500, "USD")]
    own = Clause(
        "default_policy.cancellation",
        "Tell us 36 hours ahead, or the table fee applies.",
        "Glow Spa terms",
    )
    decision = hooks.clinic_cancellation_decision(
        clinic=glow, booking=_booking(), at=late, by="client"
    )
    assert decision.clause == own
    # A missed appointment owes the table's fee; a clause the clinic did not word (late
    # arrival) quotes its own cancellation clause, never words it did not write.
    assert hooks.clinic_no_show_decision(clinic=glow, booking=_booking(30)).fee == Money(
        4000, "USD"
    )
    arrived = hooks.clinic_late_arrival_decision(
        clinic=glow, booking=_booking(), arrived_at=STARTS + timedelta(minutes=20)
    )
    assert arrived.clause == own and arrived.reschedule_fee == Money(9000, "USD")


@pytest.mark.parametrize(
    ("settings", "early", "late_outcome", "late_fee"),
    [
        (
            {"late_cancellation_fee": "30.00"},
            DepositOutcome.refunded,
            DepositOutcome.forfeited,
            3000,
        ),
        (
            {"deposit_on_cancellation": "forfeited"},
            DepositOutcome.forfeited,
            DepositOutcome.forfeited,
            0,
        ),
        (
            {
                "late_cancellation_fee": "30.00",
                "deposit_on_cancellation": "credited",
                "paid_ahead_replaces_fee": True,
            },
            DepositOutcome.credited,
            DepositOutcome.forfeited,
            0,
        ),
    ],
)
def test_default_policy_money_paid_ahead_goes_as_the_clinic_says(
    host, settings, early, late_outcome, late_fee
):
    tuned = clinic(settings={"default_policy": {"cancellation_window_hours": 48, **settings}})
    hooks = host.for_clinic(tuned)
    paid = _booking(paid=Money(5000, "USD"))

    def cancel(hours_before, by="client"):
        return hooks.clinic_cancellation_decision(
            clinic=tuned, booking=paid, at=STARTS - timedelta(hours=hours_before), by=by
        )

    assert cancel(72).deposit == early and cancel(72).fee == Money(0, "USD")
    assert cancel(24).deposit == late_outcome and cancel(24).fee == Money(late_fee, "USD")
    # A cancellation by the clinic never costs the client.
    assert cancel(24, by="clinic").deposit == DepositOutcome.refunded


def test_the_culprit_is_the_clinics_plugin_even_when_another_shares_its_code(host):
    class BasePolicy:
        fail = False

        @hookimpl
        def clinic_cancellation_decision(self, clinic, booking, at, by):
            if self.fail:
                raise RuntimeError("boom")

    broken, innocent = BasePolicy(), BasePolicy()
    broken.fail = True
    with host.registered(broken, "broken_one"), host.registered(innocent, "innocent_other"):
        alpha = clinic(enabled=["broken_one"])
        with pytest.raises(PluginFailed) as raised:
            host.for_clinic(alpha).clinic_cancellation_decision(
                clinic=alpha, booking=_booking(), at=STARTS, by="client"
            )
    assert raised.value.plugin == "broken_one"
