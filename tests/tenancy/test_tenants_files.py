"""Clinics come from tenants/ files: the five seed clinics, loaded idempotently, bad files refused whole."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import PROJECT_ROOT
from core.extensions import db
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from core.tenancy.services import plugin_host
from core.tenancy.tenants_file import TenantFileError, load_tenant_files, tenant_files

SEEDS = tenant_files(PROJECT_ROOT / "tenants")


def _load(paths):
    return load_tenant_files(paths, plugin_host())


def _locations(slug):
    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
    with clinic_scope(clinic):
        return {loc.slug: loc for loc in db.session.scalars(select(Location))}


def test_the_five_seed_clinics_load_with_their_locations(app):
    with app.app_context():
        report = _load(SEEDS)
        assert sorted(report.created) == [
            "bijoux",
            "california-aesthetics",
            "him-medspa",
            "jp-medispa",
            "jt-aesthetic",
        ]
        clinics = {c.slug: c for c in db.session.scalars(select(Clinic))}
        assert clinics["jp-medispa"].currency == "NZD"
        assert clinics["jp-medispa"].timezone == "Pacific/Auckland"
        assert clinics["bijoux"].timezone == "America/New_York"
        assert clinics["bijoux"].contact_phone == "+14072134569"  # 407-213-GLOW
        assert clinics["him-medspa"].privacy_email == "privacy@himmedspa.com"


def test_california_aesthetics_has_milpitas_and_glendale_each_with_its_phone(app):
    # Seed: "Milpitas Location: 980 Larkin Rd, Milpitas, CA 95035 / Phone: +1 408-821-1633
    #        Los Angeles Location: 1305 S Central Ave #B00, Glendale, CA 91204 / Phone: +1 747-221-1816"
    with app.app_context():
        _load(SEEDS)
        locations = _locations("california-aesthetics")
        assert set(locations) == {"milpitas", "glendale"}
        milpitas, glendale = locations["milpitas"], locations["glendale"]
        assert (milpitas.street, milpitas.city, milpitas.postal_code) == (
            "980 Larkin Rd",
            "Milpitas",
            "95035",
        )
        assert milpitas.phone == "+14088211633"
        assert (glendale.street, glendale.unit, glendale.city, glendale.postal_code) == (
            "1305 S Central Ave",
            "#B00",
            "Glendale",
            "91204",
        )
        assert glendale.phone == "+17472211816"
        assert {milpitas.timezone, glendale.timezone} == {"America/Los_Angeles"}


def test_loading_again_changes_nothing(app):
    with app.app_context():
        _load(SEEDS)
        report = _load(SEEDS)
        assert report.created == [] and report.updated == []
        assert len(report.unchanged) == 5
        assert db.session.query(Clinic).count() == 5


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(PROJECT_ROOT / "tenants" / name, target)
    return target


def test_an_edited_file_updates_the_clinic_and_retires_dropped_locations(app, tmp_path):
    path = _copy(tmp_path, "california-aesthetics.toml")
    with app.app_context():
        _load([path])
        text = path.read_text().replace("+1 747-221-1816", "+1 747-221-0000")
        glendale_block = text.index('slug = "glendale"')
        path.write_text(
            text.replace('name = "California Aesthetics"', 'name = "California Aesthetics Group"')
        )
        assert _load([path]).updated == ["california-aesthetics"]
        assert _locations("california-aesthetics")["glendale"].phone == "+17472210000"
        # Drop the Glendale block: the location is kept (records point at it) but inactive.
        path.write_text(
            text[: text.rindex("[[locations]]", 0, glendale_block)] + "[plugins]\nenabled = []\n"
        )
        _load([path])
        locations = _locations("california-aesthetics")
        assert locations["glendale"].active is False and locations["milpitas"].active is True


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (lambda t: t.replace('currency = "USD"', 'currency = "XYZ"'), "currency", "ISO 4217"),
        (
            lambda t: t.replace(
                'timezone = "America/Los_Angeles"\ncurrency', 'timezone = "Mars/Base"\ncurrency'
            ),
            "timezone",
            "IANA",
        ),
        (
            lambda t: t.replace('phone = "+1 747-221-1816"', 'phone = "not a phone"'),
            "locations.1.phone",
            "phone",
        ),
        (
            lambda t: t.replace('enabled = ["ccpa"]', 'enabled = ["no_such_plugin"]'),
            "plugins.enabled.0",
            "no plugin named",
        ),
        (
            lambda t: t + "\n[plugins.settings.default_policy]\nlate_cancellation_fee = 50.5\n",
            "plugins.settings.default_policy.late_cancellation_fee",
            "text",
        ),
        (
            lambda t: t + "\n[plugins.settings.default_policy]\nwindow = 48\n",
            "plugins.settings.default_policy.window",
            "Unknown field",
        ),
        (
            lambda t: t + '\n[[plugins.settings.default_policy.fees]]\ncategory = "laser"\n',
            "plugins.settings.default_policy.fees.0.fee",
            "Missing data",
        ),
        (
            lambda t: (
                t
                + '\n[plugins.settings.default_policy]\ncancellation_clause = "Cancel {days} days ahead."\n'
            ),
            "plugins.settings.default_policy.cancellation_clause",
            "placeholder",
        ),
        (
            lambda t: t + '\n[plugins.settings.default_policy]\nbooking_clauses = ["terms"]\n',
            "plugins.settings.default_policy.booking_clauses",
            "neither a clause of this policy nor a notice",
        ),
        (
            lambda t: (
                t
                + '\n[[plugins.settings.default_policy.product_returns]]\nwhen = "opened_box"\noutcome = "refused"\n'
            ),
            "plugins.settings.default_policy.product_returns.0.when",
            "Must be one of",
        ),
        (
            lambda t: t.replace('slug = "california-aesthetics"', 'slug = "California Aesthetics"'),
            "slug",
            "lower-case",
        ),
        (lambda t: "surprise = true\n" + t, "surprise", "Unknown field"),
        (
            lambda t: t.replace('currency = "USD"', 'currency = "USD"\nlocale = "fr_FR"'),
            "locale",
            "not in English",
        ),
        (
            lambda t: t.replace('currency = "USD"', 'currency = "USD"\nlocale = "en_QQQ"'),
            "locale",
            "not a locale",
        ),
        (lambda t: t.replace("[contact]", "[contact"), "(file)", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_with_the_file_the_field_and_the_reason(
    app, tmp_path, edit, field, reason
):
    path = _copy(tmp_path, "california-aesthetics.toml")
    path.write_text(edit(path.read_text()))
    with app.app_context(), pytest.raises(TenantFileError) as refused:
        _load([path])
    errors = refused.value.errors
    assert any(e.file == str(path) and e.field == field and reason in e.reason for e in errors), (
        errors
    )


def test_one_bad_file_means_no_clinic_is_touched(app, tmp_path):
    good = _copy(tmp_path, "bijoux.toml")
    bad = _copy(tmp_path, "jt-aesthetic.toml")
    bad.write_text(
        bad.read_text().replace(
            'country = "US"\ntimezone', 'country = "US"\ntimezone = "Nowhere"\nx'
        )
    )
    with app.app_context():
        with pytest.raises(TenantFileError):
            _load([good, bad])
        assert db.session.query(Clinic).count() == 0


def test_two_files_declaring_one_clinic_are_refused(app, tmp_path):
    first = _copy(tmp_path, "bijoux.toml")
    second = tmp_path / "bijoux-copy.toml"
    second.write_text(first.read_text())
    with app.app_context(), pytest.raises(TenantFileError, match="also declared"):
        _load([first, second])


def test_plugin_settings_are_validated_and_stored(app, tmp_path):
    path = tmp_path / "auckland.toml"
    path.write_text(
        """
slug = "auckland-skin"
name = "Auckland Skin Clinic"
country = "NZ"
timezone = "Pacific/Auckland"
currency = "NZD"

[[locations]]
slug = "ponsonby"
name = "Ponsonby"
country = "NZ"
phone = "09 379 1234"
timezone = "Pacific/Auckland"

[plugins.settings.default_policy]
cancellation_window_hours = 24
late_cancellation_fee = "40"
no_show_fee = "40.00"
"""
    )
    with app.app_context():
        _load([path])
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "auckland-skin"))
        settings = clinic.settings_for("default_policy")
        assert settings["late_cancellation_fee"] == "40.00"
        assert settings["cancellation_window_hours"] == 24
        assert _locations("auckland-skin")["ponsonby"].phone == "+6493791234"


def test_reloading_a_file_keeps_the_operators_suspension(app):
    with app.app_context():
        _load(SEEDS)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "bijoux"))
        clinic.status = "suspended"
        db.session.commit()
        _load(SEEDS)
        assert (
            db.session.scalar(select(Clinic.status).where(Clinic.slug == "bijoux")) == "suspended"
        )


def test_over_long_fields_are_refused_before_anything_is_written(app, tmp_path):
    good = _copy(tmp_path, "bijoux.toml")
    bad = _copy(tmp_path, "jt-aesthetic.toml")
    bad.write_text(
        bad.read_text().replace(
            'name = "JT Aesthetic & Co."', 'name = "JT"\nlegal_name = "' + "x" * 300 + '"'
        )
    )
    with app.app_context():
        with pytest.raises(TenantFileError) as refused:
            _load([good, bad])
        assert any(e.field == "legal_name" for e in refused.value.errors)
        assert db.session.query(Clinic).count() == 0


def test_bijoux_reminds_48_hours_before_and_the_morning_of(app):
    # Bijoux: "we attempt to remind patients of appointments by phone/email/text 48 hours in
    # advance and the morning of."
    from core.bookings.settings import booking_settings

    with app.app_context():
        _load(SEEDS)
        bijoux = db.session.scalar(select(Clinic).where(Clinic.slug == "bijoux"))
        settings = booking_settings(bijoux)
        assert settings["reminder_channels"] == ["email", "sms"]
        assert [r.get("hours_before") for r in settings["reminders"]] == [48, None]
        assert settings["reminders"][1]["morning_of"].isoformat() == "08:00:00"


@pytest.mark.parametrize(
    ("slug", "under", "requires", "applies_to", "quote"),
    [
        # JT Aesthetic & Co.: "Our services and website are not intended for individuals under 18.
        # We do not knowingly collect information from minors without parental consent."
        (
            "jt-aesthetic",
            18,
            "parental_consent",
            "treatment",
            "not intended for individuals under 18",
        ),
        # California Aesthetics: "Our services are not intended for individuals under the age of 18."
        (
            "california-aesthetics",
            18,
            "parental_consent",
            "treatment",
            "not intended for individuals under the age of 18",
        ),
        # Bijoux: "all those under 18 years of age are not permitted in the treatment rooms unless
        # undergoing a treatment with written parental permission"
        ("bijoux", 18, "written_parental_permission", "treatment", "written parental permission"),
        # Bijoux: "our environment is not conducive to babies and children under the age of 12"
        ("bijoux", 12, "refused", "premises", "children under the age of 12"),
        # Him.: "We do not knowingly collect personal data from children under the age of 13 without parental consent."
        ("him-medspa", 13, "parental_consent", "data_collection", "children under the age of 13"),
    ],
)
def test_each_clinics_age_rules_come_from_its_file(app, slug, under, requires, applies_to, quote):
    from core.tenancy.services import hooks_for

    with app.app_context():
        _load(SEEDS)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        rules = hooks_for(clinic).answers("clinic_age_rules", clinic=clinic)
        # The clinic's own rules (its file's); jurisdiction plugins add theirs beside them.
        match = [
            r
            for r in rules
            if r.under == under
            and r.applies_to == applies_to
            and r.clause.id.startswith("default_policy.")
        ]
        assert len(match) == 1
        assert match[0].requires == requires
        assert quote in match[0].clause.text


def test_jp_medispa_sets_no_age_rule_because_its_policy_states_none(app):
    from core.tenancy.services import hooks_for

    with app.app_context():
        _load(SEEDS)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "jp-medispa"))
        rules = hooks_for(clinic).answers("clinic_age_rules", clinic=clinic)
        # Only New Zealand law's rule on who may act for a child (Code rule 11(4)): no gate.
        assert [(r.applies_to, r.under) for r in rules] == [("representative", 16)]


def _rights(http, slug):
    body = http.get(f"/api/v1/clinics/{slug}/privacy-rights").get_json()
    return {item["right"]: [c["text"] for c in item["clauses"]] for item in body["items"]}


def test_each_clinic_offers_the_privacy_rights_its_policy_and_law_give(app):
    with app.app_context():
        _load(SEEDS)
    http = app.test_client()
    california = _rights(http, "california-aesthetics")
    # California Aesthetics: "Object to the processing of your personal information. Request
    # restriction of the processing of your personal information. Request data portability.
    # Withdraw your consent at any time where we relied on your consent to process your
    # personal information."
    assert (
        "Request restriction of the processing of your personal information."
        in california["restrict"]
    )
    assert "Object to the processing of your personal information." in california["object"]
    assert "Request data portability." in california["portability"]
    assert california["withdraw_consent"][0].startswith("Withdraw your consent at any time")
    # Him. Medspa (CCPA): "Not be discriminated against for exercising your privacy rights"
    assert "non_discrimination" in _rights(http, "him-medspa")
    # JP MediSpa: "If you request us to ... we will take reasonable steps to ensure its deletion"
    jp = _rights(http, "jp-medispa")
    assert jp["delete"][0].startswith("If you request us to")
    assert {"access", "correct", "complain"} <= set(jp)
    # Bijoux (Florida) promises no deletion right; the baseline gives access, correction and
    # the marketing opt-out.
    assert set(_rights(http, "bijoux")) == {"access", "correct", "opt_out_marketing"}


def test_a_clinic_writes_money_and_dates_in_the_locale_its_file_chooses(app, client, tmp_path):
    from babel.dates import format_date

    from core.accounts.models import Role
    from core.money import Money
    from core.tenancy.documents import document_of
    from tests.helpers import issue_token, make_staff

    path = _copy(tmp_path, "california-aesthetics.toml")
    text = path.read_text()
    path.write_text(text.replace('currency = "USD"', 'currency = "USD"\nlocale = "en-gb"'))
    with app.app_context():
        _load([path])
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "california-aesthetics"))
        assert clinic.locale == "en_GB"
        with clinic_scope(clinic):
            assert Money(4000, "USD").format() == "US$40.00"
            assert format_date(date(2026, 3, 6), "long", locale=clinic.locale) == "6 March 2026"
            assert document_of(clinic)["locale"] == "en_GB"  # written back as it was read
        make_staff("california-aesthetics", "owner@ca.example.com", Role.owner)
    token = issue_token(app, "california-aesthetics", "owner@ca.example.com")
    profile = client.get(
        "/api/v1/clinics/california-aesthetics", headers={"Authorization": f"Bearer {token}"}
    )
    assert profile.get_json()["locale"] == "en_GB"

    path.write_text(text)  # the choice dropped: English as written in its country again
    with app.app_context():
        _load([path])
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "california-aesthetics"))
        assert clinic.locale == "en_US"
        with clinic_scope(clinic):
            assert Money(4000, "USD").format() == "$40.00"
            assert "locale" not in document_of(clinic)
