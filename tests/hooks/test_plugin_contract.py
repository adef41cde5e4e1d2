"""One author's mistake stays their clinics' problem: refused at load, or a 503 naming it.

Plugins here are installed as an author's are: a module and an entry point in
the ``clinic_saas`` group (a ``.dist-info`` on ``sys.path``), loaded by a new
plugin host. Answers are checked on the API's paths, preview and real
transition alike, and nothing is moved when a plugin answers wrongly.
"""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core.bookings.models import Booking
from core.extensions import db
from core.hooks import (
    CancellationDecision,
    Clause,
    DepositOutcome,
    Money,
    PluginFailed,
    PluginHost,
    PluginRefused,
    contract_problems,
    hookimpl,
)
from core.ledger.models import LedgerEntry
from core.tenancy.models import Clinic
from core.tenancy.services import PLUGIN_HOST_KEY
from core.testing import ClinicKit
from tests.helpers import (
    PASSWORD,
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
)
from tests.local_days import clinic_day, local_time

BROKEN = {
    # A hook name with one "l" too few: pluggy would never call it.
    "typo_policy": """
        from core.hooks import hookimpl

        @hookimpl
        def clinic_cancelation_decision(clinic, booking, at, by):
            return None
    """,
    # An argument no hook passes.
    "signature_policy": """
        from core.hooks import hookimpl

        @hookimpl
        def clinic_cancellation_decision(clinic, booking, when):
            return None
    """,
    # A module that does not import.
    "import_policy": """
        import clinic_saas_no_such_module
    """,
}


@pytest.fixture
def installed_broken(tmp_path, monkeypatch):
    """Install three broken plugins and one sound one, as ``pip install`` would."""
    modules = {**BROKEN, "sound_policy": "from core.defaults.policy import *\n"}
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    info = tmp_path / "broken_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[clinic_saas]\n" + "".join(f"{name} = {name}\n" for name in modules)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return PluginHost()


def _clinic(*enabled: str) -> Clinic:
    return Clinic(
        slug="kowhai",
        name="Kowhai Skin",
        timezone="Pacific/Auckland",
        currency="NZD",
        country="NZ",
        enabled_plugins=list(enabled),
        plugin_settings={},
    )


def test_a_misspelled_hook_is_refused_at_load_with_the_nearest_name(installed_broken):
    reason = installed_broken.refused["typo_policy"]
    assert "'clinic_cancelation_decision' is not a hook" in reason
    assert "did you mean 'clinic_cancellation_decision'?" in reason
    assert not installed_broken.has_plugin("typo_policy")


def test_a_wrong_signature_is_refused_at_load(installed_broken):
    reason = installed_broken.refused["signature_policy"]
    assert "clinic_cancellation_decision takes 'when', which the hook does not pass" in reason
    assert "(it passes clinic, booking, at, by)" in reason


def test_an_import_error_is_refused_at_load(installed_broken):
    reason = installed_broken.refused["import_policy"]
    assert reason.startswith("cannot be imported (ModuleNotFoundError")
    assert "clinic_saas_no_such_module" in reason


@pytest.mark.parametrize("plugin", sorted(BROKEN))
def test_clinics_enabling_a_refused_plugin_are_unavailable_and_say_why(installed_broken, plugin):
    with pytest.raises(PluginFailed) as failed:
        installed_broken.for_clinic(_clinic(plugin))
    assert failed.value.status == 503
    assert failed.value.plugin == plugin
    assert failed.value.reason == installed_broken.refused[plugin]
    assert installed_broken.unavailable(_clinic(plugin)).startswith(f"plugin {plugin!r}:")


def test_every_other_clinic_keeps_working_beside_refused_plugins(installed_broken):
    kit = ClinicKit(installed_broken)
    clinic = kit.clinic(plugins=["sound_policy"])
    booking = kit.booking(clinic, starts_at="2027-03-10 14:00")
    decision = kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(days=3), by="client"
    )
    assert isinstance(decision, CancellationDecision)
    assert installed_broken.unavailable(clinic) is None


def test_the_app_starts_and_the_operator_sees_refused_plugins(installed_broken, app):
    # A host with a refused plugin is what create_app gets from a broken install.
    app.extensions[PLUGIN_HOST_KEY] = installed_broken
    with app.app_context():
        make_clinic("kowhai", enabled_plugins=["typo_policy"])
        make_clinic("beta")
    result = app.test_cli_runner().invoke(args=["clinics", "plugins"])
    assert result.exit_code == 0, result.output
    assert "typo_policy [REFUSED: 'clinic_cancelation_decision' is not a hook" in result.output
    assert "beta:" in result.output
    health = app.test_client().get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    # Public: the plugins' names and a count; the reasons are the operator's.
    assert health.get_json()["plugins"] == {
        "refused": ["import_policy", "signature_policy", "typo_policy"],
        "clinics_unavailable": 1,
    }
    assert "clinic_cancelation_decision" not in health.get_data(as_text=True)
    created = app.test_cli_runner().invoke(
        args=["operator", "create", "--email", "ops@example.com", "--name", "Ops"],
        env={"CLINIC_SAAS_PASSWORD": PASSWORD},
    )
    assert created.exit_code == 0, created.output
    operator = app.test_client()
    signed_in = operator.post(
        "/api/v1/platform/session", json={"email": "ops@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 201
    details = operator.get("/api/v1/platform/plugins").get_json()
    assert details["refused"]["typo_policy"].startswith(
        "'clinic_cancelation_decision' is not a hook"
    )
    assert details["clinics_unavailable"] == {
        "kowhai": "plugin 'typo_policy': " + installed_broken.refused["typo_policy"]
    }


# --- wrong answers, on the API's paths ------------------------------------------


class FloatFee:
    """Answers with a float for a fee: the most likely slip."""

    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return CancellationDecision(
            clause=Clause("float.cancel", "Cancellations cost $40."),
            fee=40.0,
            deposit=DepositOutcome.kept,
            within_notice_window=True,
        )


class DictAnswer:
    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return {"fee": "40.00", "clause": "cancel"}


class NoClause:
    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return CancellationDecision(
            clause=None,
            fee=Money(4000, clinic.currency),
            deposit=DepositOutcome.kept,
            within_notice_window=True,
        )


class WrongCurrency:
    @hookimpl
    def clinic_cancellation_decision(self, clinic, booking, at, by):
        return CancellationDecision(
            clause=Clause("usd.cancel", "Cancellations cost US$40."),
            fee=Money(4000, "EUR"),
            deposit=DepositOutcome.kept,
            within_notice_window=True,
        )


WRONG_ANSWERS = {
    "float_fee": (FloatFee, "CancellationDecision: fee is a float; amounts are Money"),
    "dict_answer": (DictAnswer, "answered a dict, not a CancellationDecision"),
    "no_clause": (NoClause, "CancellationDecision: clause is missing"),
    "wrong_currency": (
        WrongCurrency,
        "CancellationDecision: fee is in EUR; the clinic charges in USD",
    ),
}


@pytest.fixture
def alpha_booking(app):
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com")
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    auth = {"Authorization": f"Bearer {token}"}
    http = app.test_client()
    api = "/api/v1/clinics/alpha"
    client_id = http.post(
        f"{api}/clients",
        json={"legal_first_name": "Aroha", "legal_last_name": "Ngata", "email": "a@example.com"},
        headers=auth,
    ).get_json()["id"]
    location = http.get(f"{api}/locations", headers=auth).get_json()["items"][0]["id"]
    zone = "America/Los_Angeles"
    made = http.post(
        f"{api}/bookings",
        json={
            "client_id": client_id,
            "service_id": service,
            "location_id": location,
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
        },
        headers=auth,
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    return {"api": api, "auth": auth, "booking": made.get_json()["id"]}


def _enable(app, name: str) -> None:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic.enabled_plugins = [name]
        db.session.commit()


def _state(app, booking_id: int) -> tuple[Any, int]:
    from core.tenancy.scope import clinic_scope

    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            status = db.session.scalar(select(Booking.status).where(Booking.id == booking_id))
            entries = db.session.scalar(select(func.count()).select_from(LedgerEntry))
    return status, entries


@pytest.mark.parametrize("name", sorted(WRONG_ANSWERS))
def test_a_wrong_answer_is_a_503_naming_the_plugin_on_preview_and_cancellation(
    app, alpha_booking, name, caplog
):
    plugin, reason = WRONG_ANSWERS[name]
    http = app.test_client()
    api, auth, booking_id = alpha_booking["api"], alpha_booking["auth"], alpha_booking["booking"]
    before = _state(app, booking_id)
    with app.extensions[PLUGIN_HOST_KEY].registered(plugin(), name):
        _enable(app, name)
        preview = http.get(
            f"{api}/bookings/{booking_id}/cancellation-preview",
            query_string={"by": "client"},
            headers=auth,
        )
        cancelled = http.post(
            f"{api}/bookings/{booking_id}/cancellation", json={"by": "client"}, headers=auth
        )
    for response in (preview, cancelled):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.content_type == "application/problem+json"
        body = response.get_json()
        assert body["plugin"] == name
        assert body["hook"] == "clinic_cancellation_decision"
        assert reason in body["detail"]
        assert "Nothing was changed" in body["detail"]
    assert _state(app, booking_id) == before  # still confirmed, no ledger entry
    assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_a_tenants_file_enabling_a_refused_plugin_is_refused_with_the_reason(installed_broken):
    from core.tenancy.tenants_file import validate_tenant_document
    from core.testing.kit import MINIMAL_DOCUMENT

    document = {
        **MINIMAL_DOCUMENT,
        "locations": [
            {"slug": "main", "name": "Main", "country": "US", "timezone": "America/Los_Angeles"}
        ],
        "plugins": {"enabled": ["typo_policy"]},
    }
    data, errors = validate_tenant_document(document, "kowhai.toml", installed_broken)
    assert data is None
    assert [(e.field, e.reason) for e in errors] == [
        (
            "plugins.enabled.0",
            "plugin 'typo_policy' is installed but refused: "
            + installed_broken.refused["typo_policy"],
        )
    ]


def test_an_installed_app_keeps_its_instance_files_outside_the_package(tmp_path, monkeypatch):
    from core import config

    monkeypatch.setattr(config, "PROJECT_ROOT", tmp_path / "site-packages")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert config.default_instance_path() == tmp_path / "data" / "clinic-saas"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.default_instance_path() == tmp_path / "home" / ".local/share/clinic-saas"


# --- the host's own edges ---------------------------------------------------------


def test_a_refused_replacement_puts_the_installed_plugin_back():
    host = PluginHost()
    installed = host.get_plugin("nz_privacy")

    class Typo:
        @hookimpl
        def clinic_privacy_right(self, clinic):
            return None

    with pytest.raises(PluginRefused), host.registered(Typo(), "nz_privacy"):
        pass
    assert host.get_plugin("nz_privacy") is installed


def test_arguments_are_checked_as_pluggy_passes_them():
    class KeywordOnly:
        @hookimpl
        def clinic_gift_card_terms(self, *, clinic):
            return None

    class WithDefault:
        @hookimpl
        def clinic_gift_card_terms(self, clinic, note="never passed"):
            return None

    assert contract_problems(KeywordOnly()) == [
        "clinic_gift_card_terms takes 'clinic' after '*'; hooks pass their arguments by "
        "position, so take it as an ordinary argument"
    ]
    assert contract_problems(WithDefault()) == []


def test_the_cores_own_missing_argument_is_not_blamed_on_a_plugin():
    host = PluginHost()
    with pytest.raises(TypeError, match="clinic_cancellation_decision takes"):
        host.for_clinic(_clinic()).clinic_cancellation_decision(clinic=_clinic(), at=None)


def test_a_refused_core_default_leaves_no_clinic_with_half_its_rules():
    host = PluginHost()
    host.unregister("default_policy")
    host.refused["default_policy"] = "cannot be imported (ImportError: broken install)"
    with pytest.raises(PluginFailed) as failed:
        host.for_clinic(_clinic())
    assert failed.value.plugin == "default_policy"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("fee", Money(-500, "NZD"), "fee is -NZ$5.00; amounts owed or returned are never negative"),
        ("fee", Money(500, "USD"), "fee is in USD; the clinic charges in NZD"),
        ("deposit", "kept", "deposit is 'kept'; use DepositOutcome"),
        ("within_notice_window", None, "within_notice_window is missing"),
    ],
)
def test_each_field_of_an_answer_is_checked(field, value, reason):
    from core.hooks.answers import problem

    decision = CancellationDecision(
        clause=Clause("k.c", "Words."),
        fee=Money(500, "NZD"),
        deposit=DepositOutcome.kept,
        within_notice_window=True,
    )
    wrong = dataclasses.replace(decision, **{field: value})
    assert problem("clinic_cancellation_decision", decision, _clinic()) is None
    assert reason in problem("clinic_cancellation_decision", wrong, _clinic())


def test_a_date_is_not_a_datetime():
    from datetime import UTC, datetime

    from core.hooks import RetentionRule
    from core.hooks.answers import problem

    rule = RetentionRule(Clause("r", "Keep it."), keep_until=datetime(2030, 1, 1, tzinfo=UTC))
    assert "keep_until is a datetime; give a date" in problem("clinic_retention_rule", rule)


def test_plugins_are_shown_frozen_views_never_rows():
    from types import SimpleNamespace

    from core.hooks import IncidentView

    seen = []

    class Curious:
        @hookimpl
        def clinic_breach_obligations(self, clinic, incident):
            seen.append(incident)
            with pytest.raises(dataclasses.FrozenInstanceError):
                incident.affected_count = 0
            return None

    row = SimpleNamespace(
        discovered_at=None,
        affected_count=600,
        affected_by_region={"CA": 600},
        encrypted=False,
        health_data=True,
        serious_harm_likely=True,
    )
    host = PluginHost()
    with host.registered(Curious(), "curious"):
        host.for_clinic(_clinic("curious")).answers(
            "clinic_breach_obligations", clinic=_clinic("curious"), incident=row
        )
    assert isinstance(seen[0], IncidentView)
    assert row.affected_count == 600
    with pytest.raises(TypeError):
        seen[0].affected_by_region["CA"] = 0


def test_settings_a_plugin_changes_stay_its_own_copy():
    from core.defaults.policy import NAME, DefaultPolicySettings
    from core.hooks import settings_of

    clinic = ClinicKit().clinic(settings={"default_policy": {"deposit": "25.00"}})
    settings_of(clinic, NAME, DefaultPolicySettings)["deposit"] = "0.00"
    assert settings_of(clinic, NAME, DefaultPolicySettings)["deposit"] == "25.00"
