"""The kit plugin authors test with, ``plugins new`` and ``plugins check``, used as an author would."""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta

import pytest

from core.config import PROJECT_ROOT
from core.hooks import (
    BookingRequirements,
    CancellationDecision,
    Clause,
    DepositOutcome,
    Guarantee,
    Money,
    PluginHost,
    hookimpl,
)
from core.tenancy.services import PLUGIN_HOST_KEY
from core.testing import KitError, assert_decision, assert_keeps_contract
from core.testing.contract_check import check_plugin
from core.testing.scaffold import ScaffoldError, write_plugin

JT = PROJECT_ROOT / "tenants" / "jt-aesthetic.toml"


class FloatFee:
    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return CancellationDecision(
            Clause("f.c", "Forty dollars."), 40.0, DepositOutcome.none, True
        )


def test_a_clinic_from_its_tenants_file_answers_as_in_production(clinic_kit):
    # JT Aesthetic: "Deposits made to secure appointments are non-refundable."
    jt = clinic_kit.clinic(JT)
    assert jt.slug == "jt-aesthetic" and jt.currency == "USD"
    assert jt.enabled_plugins == ("hipaa_aligned", "ccpa")
    client = clinic_kit.client()
    requirements = clinic_kit.hooks(jt).clinic_booking_requirements(
        clinic=jt,
        service=clinic_kit.service(jt, price="300.00"),
        client=client,
        starts_at=clinic_kit.booking(jt, starts_at="2027-03-10 14:00").starts_at,
    )
    assert_keeps_contract("clinic_booking_requirements", requirements, jt)
    assert_decision(
        requirements, BookingRequirements, deposit="50.00", guarantee=Guarantee.card_on_file
    )


def test_bad_settings_are_refused_naming_the_field(clinic_kit):
    with pytest.raises(KitError) as refused:
        clinic_kit.clinic(settings={"default_policy": {"deposit": 50.0}})
    assert "plugins.settings.default_policy.deposit" in str(refused.value)
    assert 'Write amounts as text with at most two decimals, for example "50.00"' in str(
        refused.value
    )


def test_times_as_text_are_the_clinics_local_time(clinic_kit):
    auckland = clinic_kit.clinic(timezone="Pacific/Auckland", country="NZ", currency="NZD")
    booking = clinic_kit.booking(auckland, starts_at="2027-03-10 14:00")
    assert booking.starts_at.utcoffset() == timedelta(hours=13)  # NZDT
    assert booking.price == Money(10000, "NZD")


def test_use_puts_a_plugin_in_place_of_the_installed_one_and_back(clinic_kit):
    installed = clinic_kit.host.get_plugin("nz_privacy")
    replacement = object()
    clinic_kit.use(replacement, "nz_privacy")  # pluggy alone: "Plugin name already registered"
    assert clinic_kit.host.get_plugin("nz_privacy") is replacement
    clinic_kit.close()
    assert clinic_kit.host.get_plugin("nz_privacy") is installed


def test_a_wrong_answer_fails_through_the_kit_naming_the_plugin(clinic_kit):
    from core.hooks import PluginFailed

    clinic_kit.use(FloatFee(), "float_fee")
    clinic = clinic_kit.clinic(plugins=["float_fee"])
    booking = clinic_kit.booking(clinic, starts_at="2027-03-10 14:00")
    with pytest.raises(PluginFailed) as failed:
        clinic_kit.hooks(clinic).clinic_cancellation_decision(
            clinic=clinic, booking=booking, at=booking.starts_at, by="client"
        )
    assert failed.value.plugin == "float_fee"
    assert "fee is a float" in failed.value.reason


def _import(path, name):
    spec = importlib.util.spec_from_file_location(name, path / "src" / name / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_plugins_new_writes_a_plugin_that_keeps_the_contract(tmp_path, clinic_kit):
    written = write_plugin("glow_policy", tmp_path, "Glow Spa's cancellation policy")
    root = tmp_path / "glow_policy"
    assert {p.relative_to(root).as_posix() for p in written} == {
        "pyproject.toml",
        "README.md",
        "docs/glow_policy.md",
        "src/glow_policy/__init__.py",
        "src/glow_policy/py.typed",
        "tenants/example.toml",
        "tests/test_glow_policy.py",
    }
    assert 'glow_policy = "glow_policy"' in (root / "pyproject.toml").read_text()
    module = _import(root, "glow_policy")
    try:
        clinic_kit.use(module, "glow_policy")
        clinic = clinic_kit.clinic(root / "tenants" / "example.toml")
        booking = clinic_kit.booking(clinic, service="facial", starts_at="2027-03-10 14:00")
        decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
            clinic=clinic, booking=booking, at=booking.starts_at - timedelta(hours=2), by="client"
        )
        assert_decision(decision, clause="glow_policy.cancellation", fee="40.00")
        report = check_plugin(
            "glow_policy", root / "tenants" / "example.toml", host=clinic_kit.host
        )
        assert report.ok, report
    finally:
        sys.modules.pop("glow_policy", None)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Glow", "is not a plugin name"),
        ("class", "is not a plugin name"),
        ("x", "is not a plugin name"),
        ("core", "is taken"),
        ("pluggy", "is taken"),
    ],
)
def test_plugins_new_refuses_a_name_that_is_not_a_package_name(tmp_path, name, reason):
    with pytest.raises(ScaffoldError, match=reason):
        write_plugin(name, tmp_path)


def test_plugins_new_never_writes_over_a_folder(tmp_path):
    (tmp_path / "glow_policy").mkdir()
    with pytest.raises(ScaffoldError, match="exists already"):
        write_plugin("glow_policy", tmp_path)


def test_plugins_check_passes_the_core_default_on_a_seed_clinic():
    report = check_plugin("default_policy", JT)
    assert report.ok, report
    hooks = {r.hook for r in report.results}
    assert {"clinic_cancellation_decision", "clinic_refund_decision"} <= hooks
    assert all(r.answer != "raised" for r in report.results)


def test_plugins_check_reports_each_wrong_answer():
    host = PluginHost()
    with host.registered(FloatFee(), "float_fee"):
        report = check_plugin("float_fee", host=host)
    assert not report.ok
    bad = [r for r in report.results if r.problem is not None]
    assert bad and all("fee is a float" in r.problem for r in bad)


def test_plugins_check_says_what_settings_a_plugin_needs(tmp_path):
    write_plugin("rimu_policy", tmp_path)
    module = _import(tmp_path / "rimu_policy", "rimu_policy")
    host = PluginHost()
    try:
        with host.registered(module, "rimu_policy"):
            report = check_plugin("rimu_policy", host=host)
    finally:
        sys.modules.pop("rimu_policy", None)
    assert report.settings_problem == (
        "the plugin needs settings (cancellation_clause, source); "
        "give --tenants FILE with a clinic that enables it"
    )


def test_plugins_check_and_new_on_the_command_line(app, tmp_path):
    runner = app.test_cli_runner()
    with app.extensions[PLUGIN_HOST_KEY].registered(FloatFee(), "float_fee"):
        checked = runner.invoke(args=["plugins", "check", "float_fee"])
    assert checked.exit_code == 1
    assert "BAD clinic_cancellation_decision" in checked.output
    assert "some answers break the contract" in checked.output
    missing = runner.invoke(args=["plugins", "check", "no_such_plugin"])
    assert missing.exit_code == 1 and "not installed" in missing.output
    made = runner.invoke(args=["plugins", "new", "kauri_policy", "--directory", str(tmp_path)])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "kauri_policy" / "src" / "kauri_policy" / "__init__.py").is_file()


def test_a_title_with_quotes_stays_one_string_in_the_pyproject(tmp_path):
    import tomllib

    write_plugin("quote_policy", tmp_path, 'The "Glow" spa\'s policy')
    project = tomllib.loads((tmp_path / "quote_policy" / "pyproject.toml").read_text())
    assert project["project"]["description"].startswith('The "Glow" spa\'s policy')
