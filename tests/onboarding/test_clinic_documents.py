"""A clinic joins through the operator API from its document, is kept in revisions, opens when ready.

The document is the one a tenants/ file holds, as JSON; it is validated by the
same code with the same field-level errors. ``clinics export`` writes a clinic
back as a file that loads to no change.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config import PROJECT_ROOT
from core.extensions import db
from core.tenancy.models import Clinic, ClinicRevision
from core.tenancy.scope import clinic_scope
from tests.helpers import PASSWORD, assert_problem, issue_token, make_provider, make_staff

SEEDS = sorted((PROJECT_ROOT / "tenants").glob("*.toml"))


def _document(**changes):
    document = {
        "slug": "kowhai-skin",
        "name": "Kōwhai Skin Clinic",
        "country": "NZ",
        "timezone": "Pacific/Auckland",
        "currency": "NZD",
        "contact": {"email": "kiaora@kowhaiskin.example.nz"},
        "locations": [
            {
                "slug": "ponsonby",
                "name": "Ponsonby",
                "country": "NZ",
                "timezone": "Pacific/Auckland",
            }
        ],
        "services": [
            {
                "slug": "hydrafacial",
                "name": "HydraFacial",
                "category": "facials",
                "duration_minutes": 60,
                "price": "249.00",
                "locations": ["ponsonby"],
            }
        ],
        "plugins": {"enabled": ["nz_privacy"]},
    }
    document.update(changes)
    return document


@pytest.fixture
def operator(app):
    created = app.test_cli_runner().invoke(
        args=["operator", "create", "--email", "ops@example.com", "--name", "Ops"],
        env={"CLINIC_SAAS_PASSWORD": PASSWORD},
    )
    assert created.exit_code == 0, created.output
    http = app.test_client()
    signed_in = http.post(
        "/api/v1/platform/session", json={"email": "ops@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 201
    return http


def test_the_operator_creates_a_clinic_from_its_document(app, operator):
    made = operator.post("/api/v1/platform/clinics", json=_document())
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json() == {
        "slug": "kowhai-skin",
        "status": "onboarding",
        "outcome": "created",
        "revision": 1,
    }
    kept = operator.get("/api/v1/platform/clinics/kowhai-skin/document").get_json()
    assert kept["services"][0]["price"] == "249.00"
    assert kept["plugins"]["enabled"] == ["nz_privacy"]
    again = operator.post("/api/v1/platform/clinics", json=_document())
    assert_problem(again, 409, "clinic-exists")


def test_each_field_error_is_named(app, operator):
    bad = _document(timezone="Mars/Olympus", idle_timeout_minutes=0)
    bad["locations"][0]["country"] = "NZL"
    body = assert_problem(
        operator.post("/api/v1/platform/clinics", json=bad), 422, "invalid-clinic-document"
    )
    assert {e["field"] for e in body["errors"]} == {
        "timezone",
        "idle_timeout_minutes",
        "locations.0.country",
    }
    currency = assert_problem(
        operator.post("/api/v1/platform/clinics", json=_document(currency="XYZ")), 422
    )
    assert [e["field"] for e in currency["errors"]] == ["currency"]
    with app.app_context():
        assert db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai-skin")) is None
    # Plugin settings are checked by the plugin's schema, once the rest is sound.
    settings = _document(
        plugins={"enabled": ["nz_privacy"], "settings": {"default_policy": {"deposit": 50.0}}}
    )
    body = assert_problem(operator.post("/api/v1/platform/clinics", json=settings), 422)
    assert [e["field"] for e in body["errors"]] == ["plugins.settings.default_policy.deposit"]
    status = assert_problem(
        operator.post("/api/v1/platform/clinics", json=_document(status="active")), 422
    )
    assert [e["field"] for e in status["errors"]] == ["status"]


def test_each_change_is_kept_with_who_made_it(app, operator):
    operator.post("/api/v1/platform/clinics", json=_document())
    unchanged = operator.put("/api/v1/platform/clinics/kowhai-skin/document", json=_document())
    assert unchanged.get_json()["outcome"] == "unchanged"
    dearer = _document()
    dearer["services"][0]["price"] = "269.00"
    changed = operator.put("/api/v1/platform/clinics/kowhai-skin/document", json=dearer)
    assert changed.get_json() == {
        "slug": "kowhai-skin",
        "status": "onboarding",
        "outcome": "updated",
        "revision": 2,
    }
    revisions = operator.get("/api/v1/platform/clinics/kowhai-skin/revisions").get_json()["items"]
    assert [(r["number"], r["source"]) for r in revisions] == [(2, "api"), (1, "api")]
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai-skin"))
        with clinic_scope(clinic):
            kept = db.session.scalars(
                select(ClinicRevision.document).order_by(ClinicRevision.number)
            ).all()
            operator_id = db.session.scalar(select(ClinicRevision.changed_by_user_id))
    assert [d["services"][0]["price"] for d in kept] == ["249.00", "269.00"]
    assert operator_id is not None
    renamed = operator.put(
        "/api/v1/platform/clinics/kowhai-skin/document", json=_document(slug="kowhai")
    )
    assert [e["field"] for e in assert_problem(renamed, 422)["errors"]] == ["slug"]


def test_an_onboarding_clinic_is_closed_to_clients_and_opens_once_ready(app, operator):
    operator.post("/api/v1/platform/clinics", json=_document())
    http = app.test_client()
    menu = http.get("/api/v1/clinics/kowhai-skin/services")
    assert_problem(menu, 403, "clinic-closed")
    assert "not taking bookings online yet" in menu.get_json()["detail"]
    page = http.get("/book/kowhai-skin/")
    assert page.status_code == 403
    assert "not taking bookings online yet" in page.get_data(as_text=True)
    with app.app_context():
        make_staff("kowhai-skin", "owner@kowhai.example.nz")
    token = issue_token(app, "kowhai-skin", "owner@kowhai.example.nz")
    owner = {"Authorization": f"Bearer {token}"}
    ready = http.get("/api/v1/clinics/kowhai-skin/readiness", headers=owner).get_json()
    assert ready["ready"] is False and ready["status"] == "onboarding"
    assert [m["item"] for m in ready["missing"]] == ["stripe", "policy", "providers"]
    early = operator.patch("/api/v1/platform/clinics/kowhai-skin", json={"status": "active"})
    assert assert_problem(early, 409, "clinic-not-ready")["missing"] == [
        "stripe",
        "policy",
        "providers",
    ]
    read = http.get("/api/v1/clinics/kowhai-skin/document", headers=owner).get_json()
    assert read["revision"] == 1 and read["document"]["slug"] == "kowhai-skin"
    # The operator changes the document after the owner read it: the old revision is refused.
    dearer = _document()
    dearer["services"][0]["price"] = "269.00"
    operator.put("/api/v1/platform/clinics/kowhai-skin/document", json=dearer)
    stale = http.post(
        "/api/v1/clinics/kowhai-skin/policy-acceptance", json={"revision": 1}, headers=owner
    )
    assert assert_problem(stale, 409, "revision-changed")["current"] == 2
    accepted = http.post(
        "/api/v1/clinics/kowhai-skin/policy-acceptance", json={"revision": 2}, headers=owner
    )
    assert accepted.status_code == 200 and accepted.get_json()["number"] == 2
    with app.app_context():
        provider = make_provider("kowhai-skin", "aroha@kowhai.example.nz", location="ponsonby")
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai-skin"))
        with clinic_scope(clinic):
            from core.catalog.models import Service, ServiceProvider

            service = db.session.scalar(select(Service.id))
            db.session.add(ServiceProvider(service_id=service, provider_id=provider))
            db.session.commit()
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai-skin"))
        clinic.stripe_account_id, clinic.stripe_charges_enabled = "acct_kowhai", True
        db.session.commit()
    ready = http.get("/api/v1/clinics/kowhai-skin/readiness", headers=owner).get_json()
    assert ready == {"ready": True, "status": "onboarding", "missing": []}
    opened = operator.patch("/api/v1/platform/clinics/kowhai-skin", json={"status": "active"})
    assert opened.get_json()["status"] == "active"
    assert http.get("/api/v1/clinics/kowhai-skin/services").status_code == 200
    # Suspended and reopened, it must still be ready: its Stripe account has lost charges.
    operator.patch("/api/v1/platform/clinics/kowhai-skin", json={"status": "suspended"})
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai-skin"))
        clinic.stripe_charges_enabled = False
        db.session.commit()
    reopen = operator.patch("/api/v1/platform/clinics/kowhai-skin", json={"status": "active"})
    assert assert_problem(reopen, 409, "clinic-not-ready")["missing"] == ["stripe"]


def test_a_clinic_with_bookings_to_come_is_not_retired(app, operator):
    from tests.helpers import make_clinic

    with app.app_context():
        make_clinic("alpha")
    retired = operator.patch("/api/v1/platform/clinics/alpha", json={"status": "retired"})
    assert retired.get_json()["status"] == "retired"
    again = operator.patch("/api/v1/platform/clinics/alpha", json={"status": "active"})
    assert_problem(again, 409, "clinic-retired")
    assert_problem(app.test_client().get("/api/v1/clinics/alpha/services"), 403, "clinic-closed")


def test_retiring_waits_for_the_bookings_still_to_come(app, operator, monkeypatch):
    from core.onboarding import services
    from tests.helpers import make_clinic

    with app.app_context():
        make_clinic("beta")
    monkeypatch.setattr(services, "bookings_ahead", lambda clinic: 2)
    refused = operator.patch("/api/v1/platform/clinics/beta", json={"status": "retired"})
    body = assert_problem(refused, 409, "bookings-ahead")
    assert body["bookings"] == 2 and "cancel or move them first" in body["detail"]


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_a_clinic_exported_loads_back_to_no_change(app, seed, tmp_path):
    runner = app.test_cli_runner()
    loaded = runner.invoke(args=["clinics", "load", str(seed)])
    assert loaded.exit_code == 0, loaded.output
    slug = tomllib.loads(seed.read_text())["slug"]
    out = tmp_path / f"{slug}.toml"
    exported = runner.invoke(args=["clinics", "export", slug, "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(args=["clinics", "load", str(out)])
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"unchanged: {slug}"
    assert tomllib.loads(Path(out).read_text())["slug"] == slug


def test_the_operator_sees_each_clinics_state_stripe_and_plugins(app, operator):
    from tests.helpers import make_clinic

    with app.app_context():
        make_clinic("alpha")
        make_clinic("beta", enabled_plugins=["no_such_plugin"])
    operator.post("/api/v1/platform/clinics", json=_document())
    onboarding = operator.get("/api/v1/platform/clinics", query_string={"status": "onboarding"})
    assert [c["slug"] for c in onboarding.get_json()["items"]] == ["kowhai-skin"]
    found = operator.get("/api/v1/platform/clinics", query_string={"q": "KŌWHAI"}).get_json()
    assert found["total"] == 1
    (kowhai,) = found["items"]
    assert kowhai["status"] == "onboarding"
    assert kowhai["stripe_connected"] is False and kowhai["rules_unavailable"] is None
    first = operator.get("/api/v1/platform/clinics", query_string={"limit": 1}).get_json()
    assert first["has_more"] is True
    page = operator.get(
        "/api/v1/platform/clinics", query_string={"limit": 1, "after": first["next_after"]}
    )
    assert page.get_json()["total"] == 3
    (beta,) = page.get_json()["items"]
    assert beta["slug"] == "beta"
    assert beta["rules_unavailable"] == "plugin 'no_such_plugin': the plugin is not installed"
    wild = operator.get("/api/v1/platform/clinics", query_string={"q": "%"}).get_json()
    assert wild["total"] == 0  # a wildcard is searched for as itself
