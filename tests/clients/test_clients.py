"""Client records: contact data for all staff, health data only for clinical roles, every access audited."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import pytest
import time_machine
from PIL import Image
from sqlalchemy import select, text

from core import clock
from core.accounts.models import Role
from core.audit.models import AuditEvent
from core.clients.models import ClinicalNote
from core.extensions import db
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import assert_problem, login, make_clinic, make_staff
from tests.local_days import born_aged, born_turning

INTAKE = {
    "medical_history": "Rosacea since 2019",
    "current_medications": ["isotretinoin"],
    "allergies": ["lidocaine"],
    "sensitivities": {"aromas": ["lavender"], "ingredients": ["fragrance"]},
    "pregnant_or_possibly_pregnant": False,
    "high_blood_pressure": True,
    "sun_or_tanning_bed_exposure": "tanning bed weekly",
}
CLIENT = {
    "legal_first_name": "Zoë",
    "legal_last_name": "Hernández",
    "preferred_name": "Zo",
    "date_of_birth": "1990-04-02",
    "email": "zoe@example.com",
    "phone": "(408) 555-0134",
}
CONSENT = {
    "text": "I agree to before and after photos for my clinical record.",
    "text_version": "2025-01",
    "method": "electronic",
}


@pytest.fixture
def clinic(app):
    with app.app_context():
        make_clinic("alpha")
        make_clinic("beta")
        for role in Role:
            make_staff("alpha", f"{role.value}@alpha.example.com", role)
        make_staff("beta", "owner@beta.example.com", Role.owner)
    return app


def staff(app, role: str, slug: str = "alpha"):
    client = app.test_client()
    assert login(client, slug, f"{role}@{slug}.example.com").status_code == 201
    return client


@pytest.fixture
def provider(clinic):
    return staff(clinic, "provider")


@pytest.fixture
def desk(clinic):
    return staff(clinic, "front_desk")


@pytest.fixture
def manager(clinic):
    return staff(clinic, "manager")


def new_client(http, **overrides):
    response = http.post("/api/v1/clinics/alpha/clients", json={**CLIENT, **overrides})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 120, 90))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = {1: "N", 2: (37.0, 25.0, 0.0), 3: "W", 4: (121.0, 54.0, 0.0)}
    exif[0x8825] = gps
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def events(app, **filters):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            query = select(AuditEvent).order_by(AuditEvent.seq)
            for key, value in filters.items():
                query = query.where(getattr(AuditEvent, key) == value)
            return [
                {
                    c: getattr(e, c)
                    for c in (
                        "seq",
                        "action",
                        "resource",
                        "client_id",
                        "actor_role",
                        "fields",
                        "emergency",
                        "ip",
                        "user_agent",
                        "reason",
                        "recipient",
                    )
                }
                for e in db.session.scalars(query)
            ]


# --- contact records ---------------------------------------------------------------


def test_front_desk_creates_and_finds_clients(desk):
    client_id = new_client(desk)
    record = desk.get(f"/api/v1/clinics/alpha/clients/{client_id}").get_json()
    assert record["phone"] == "+14085550134"
    assert record["display_name"] == "Zo Hernández"
    for query in ("zoe", "hernan", "ZO HERN", "zoe@exa", "4085550134", "555-0134"):
        found = desk.get("/api/v1/clinics/alpha/clients", query_string={"q": query}).get_json()
        assert [c["id"] for c in found["items"]] == [client_id], query


def test_bad_contact_details_name_the_field(desk):
    body = assert_problem(
        desk.post(
            "/api/v1/clinics/alpha/clients",
            json={**CLIENT, "phone": "12", "date_of_birth": "2999-01-01"},
        ),
        422,
    )
    assert {e["field"] for e in body["errors"]} == {"phone", "date_of_birth"}


def test_a_client_of_another_clinic_does_not_exist_here(clinic, desk):
    client_id = new_client(desk)
    other = staff(clinic, "owner", "beta")
    assert_problem(other.get(f"/api/v1/clinics/beta/clients/{client_id}"), 404)
    assert (
        other.get("/api/v1/clinics/beta/clients", query_string={"q": "zoe"}).get_json()["items"]
        == []
    )


# --- minimum necessary ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["intake", "intake/versions", "notes", "products", "adverse-reactions", "photos", "export"],
)
def test_front_desk_never_sees_health_data(desk, provider, path):
    # COMPLIANCE.md, minimum necessary (164.502(b), 164.514(d)): "each role sees only the fields it needs"
    client_id = new_client(desk)
    provider.post(f"/api/v1/clinics/alpha/clients/{client_id}/intake", json={"answers": INTAKE})
    body = assert_problem(
        desk.get(f"/api/v1/clinics/alpha/clients/{client_id}/{path}"), 403, "health-data-restricted"
    )
    assert "break-glass" in body["detail"]


def test_the_rule_is_in_the_service_not_only_the_view(clinic, desk):
    from core.accounts.access import Principal
    from core.accounts.models import Membership
    from core.clients import services
    from core.errors import NotAllowed, as_problem

    client_id = new_client(desk)
    with clinic.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            membership = db.session.scalar(
                select(Membership).where(Membership.role == Role.front_desk)
            )
            actor = Principal(user=membership.user, via="session", membership=membership)
            with pytest.raises(NotAllowed) as refused:
                services.intake(actor, services.client(client_id))
            assert as_problem(refused.value).status == 403


@pytest.mark.parametrize("role", ["provider", "manager", "owner"])
def test_clinical_roles_read_and_write_health_data(clinic, role):
    http = staff(clinic, role)
    client_id = new_client(http)
    assert (
        http.post(
            f"/api/v1/clinics/alpha/clients/{client_id}/intake", json={"answers": INTAKE}
        ).status_code
        == 201
    )
    intake = http.get(f"/api/v1/clinics/alpha/clients/{client_id}/intake").get_json()
    assert intake["answers"]["allergies"] == ["lidocaine"]
    assert intake["answers"]["sensitivities"]["aromas"] == ["lavender"]


# --- versioned intake and append-only notes --------------------------------------------------


def test_an_intake_update_adds_a_version_and_keeps_the_old_one(provider):
    # COMPLIANCE.md, amendment (164.526): "append the amendment, never overwrite"
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}/intake"
    provider.post(base, json={"answers": INTAKE})
    assert_problem(provider.post(base, json={"answers": {**INTAKE, "allergies": []}}), 422)
    second = provider.post(
        base,
        json={
            "answers": {**INTAKE, "allergies": ["latex"]},
            "change_reason": "new allergy reported",
        },
    )
    assert second.get_json()["version"] == 2
    assert provider.get(base).get_json()["answers"]["allergies"] == ["latex"]
    assert provider.get(f"{base}/versions/1").get_json()["answers"]["allergies"] == ["lidocaine"]
    assert [v["version"] for v in provider.get(f"{base}/versions").get_json()["items"]] == [1, 2]


def test_a_note_amendment_appends_and_the_original_stays(provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}/notes"
    original = provider.post(
        base, json={"kind": "skin", "body": "Dry patches on left cheek"}
    ).get_json()
    amendment = provider.post(
        f"{base}/{original['id']}/amendments",
        json={"kind": "skin", "body": "Correction: right cheek"},
    )
    assert amendment.status_code == 201
    notes = provider.get(base).get_json()["items"]
    assert [(n["body"], n["amends_note_id"]) for n in notes] == [
        ("Dry patches on left cheek", None),
        ("Correction: right cheek", original["id"]),
    ]


def test_adverse_reactions_link_to_the_product_that_caused_them(provider):
    # JP MediSpa: "to have a record should you suffer an adverse reaction to a particular Product."
    client_id = new_client(provider)
    other_id = new_client(provider, email="other@example.com")
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    product = provider.post(
        f"{base}/products", json={"product": "Vitamin C serum", "setting": "at_home"}
    ).get_json()
    reaction = provider.post(
        f"{base}/adverse-reactions",
        json={
            "product_use_id": product["id"],
            "description": "Redness and itching",
            "severity": "mild",
            "occurred_on": "2026-11-01",
        },
    )
    assert reaction.status_code == 201
    assert reaction.get_json()["product_use_id"] == product["id"]
    foreign = provider.post(
        f"/api/v1/clinics/alpha/clients/{other_id}/adverse-reactions",
        json={
            "product_use_id": product["id"],
            "description": "x",
            "severity": "mild",
            "occurred_on": "2026-11-01",
        },
    )
    assert assert_problem(foreign, 422)["errors"][0]["field"] == "product_use_id"


# --- the audit trail -----------------------------------------------------------------------


def test_each_health_access_leaves_an_audit_event(clinic, provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(
        f"{base}/intake", json={"answers": INTAKE}, headers={"User-Agent": "ClinicTablet/1.0"}
    )
    provider.get(f"{base}/intake", headers={"User-Agent": "ClinicTablet/1.0"})
    provider.get(f"{base}/export")
    trail = events(clinic, client_id=client_id)
    assert [(e["action"], e["resource"]) for e in trail] == [
        ("create", "health_intake"),
        ("read", "health_intake"),
        ("export", "client"),
    ]
    first = trail[0]
    assert first["actor_role"] == "provider"
    assert "allergies" in first["fields"] and "medical_history" in first["fields"]
    assert first["ip"] == "127.0.0.1" and first["user_agent"] == "ClinicTablet/1.0"
    # Contact reads are not health data and leave no trail.
    provider.get(f"{base}")
    assert len(events(clinic, client_id=client_id)) == 3


def test_managers_query_the_trail_and_front_desk_cannot(clinic, provider, manager, desk):
    client_id = new_client(provider)
    provider.post(f"/api/v1/clinics/alpha/clients/{client_id}/intake", json={"answers": INTAKE})
    found = manager.get(
        "/api/v1/clinics/alpha/audit/events", query_string={"client_id": client_id}
    ).get_json()
    assert [e["action"] for e in found["items"]] == ["create"]
    assert found["items"][0]["fields"]
    assert_problem(desk.get("/api/v1/clinics/alpha/audit/events"), 403)
    assert manager.get("/api/v1/clinics/alpha/audit/verification").get_json() == {
        "intact": True,
        "checked": 1,
        "first_broken_seq": None,
        "reason": None,
    }


def test_the_app_cannot_change_or_delete_audit_events(clinic, provider):
    # COMPLIANCE.md, audit controls (164.312(b), (c)): "append-only log of reads, writes, exports of
    # health data; no silent overwrite"
    client_id = new_client(provider)
    provider.get(f"/api/v1/clinics/alpha/clients/{client_id}/notes")
    with clinic.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            event = db.session.scalar(select(AuditEvent))
            event.reason = "nothing to see"
            with pytest.raises(Exception, match=r"append-only|permission denied"):
                db.session.commit()
            db.session.rollback()
            db.session.delete(db.session.scalar(select(AuditEvent)))
            with pytest.raises(Exception, match=r"append-only|permission denied"):
                db.session.commit()


def test_tampering_with_the_trail_is_detected(clinic, provider, manager, database):
    client_id = new_client(provider)
    for _ in range(3):
        provider.get(f"/api/v1/clinics/alpha/clients/{client_id}/notes")
    # Someone with the database owner's powers edits the second event.
    with clinic.app_context():
        engine = database.owner if database.is_postgres else db.engine
        with engine.begin() as conn:
            if database.is_postgres:
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
                conn.execute(text("UPDATE audit_event SET actor_role = 'owner' WHERE seq = 2"))
                conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
            else:
                conn.execute(text("DROP TRIGGER audit_event_no_update"))
                conn.execute(text("UPDATE audit_event SET actor_role = 'owner' WHERE seq = 2"))
    report = manager.get("/api/v1/clinics/alpha/audit/verification").get_json()
    assert report["intact"] is False
    assert report["first_broken_seq"] == 2
    assert report["reason"] == "the event was altered"


# --- consents and photos -----------------------------------------------------------------


def test_a_photo_is_refused_without_photo_consent(provider):
    client_id = new_client(provider)
    body = assert_problem(
        provider.post(
            f"/api/v1/clinics/alpha/clients/{client_id}/photos",
            data={"kind": "before", "image": (io.BytesIO(jpeg_with_gps()), "before.jpg")},
            content_type="multipart/form-data",
        ),
        409,
        "photo-consent-missing",
    )
    assert "consented to clinical photos" in body["detail"]


def test_a_photo_is_stored_encrypted_without_its_location(clinic, provider, desk):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    assert (
        provider.post(f"{base}/consents", json={**CONSENT, "kind": "clinical_photos"}).status_code
        == 201
    )
    raw = jpeg_with_gps()
    assert b"PhoneMaker" in raw
    uploaded = provider.post(
        f"{base}/photos",
        data={
            "kind": "before",
            "caption": "left profile",
            "image": (io.BytesIO(raw), "before.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    photo = uploaded.get_json()
    assert (photo["width"], photo["height"], photo["content_type"]) == (64, 48, "image/jpeg")
    image = provider.get(f"{base}/photos/{photo['id']}/image")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    served = Image.open(io.BytesIO(image.data))
    assert served.size == (64, 48)
    assert not served.getexif()  # no GPS, no camera make
    assert b"PhoneMaker" not in image.data
    stored = list(
        (
            clinic.config["PHOTO_STORAGE_DIR"]
            and __import__("pathlib").Path(clinic.config["PHOTO_STORAGE_DIR"])
        ).rglob("*")
    )
    files = [p for p in stored if p.is_file()]
    assert len(files) == 1
    assert b"\xff\xd8" not in files[0].read_bytes()[:4]  # not a JPEG on disk: ciphertext
    assert_problem(desk.get(f"{base}/photos/{photo['id']}/image"), 403)


def test_a_file_that_is_not_a_photo_is_refused(provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(f"{base}/consents", json={**CONSENT, "kind": "clinical_photos"})
    response = provider.post(
        f"{base}/photos",
        data={"kind": "before", "image": (io.BytesIO(b"%PDF-1.7 not an image"), "x.jpg")},
        content_type="multipart/form-data",
    )
    assert assert_problem(response, 415)["errors"][0]["field"] == "image"


def test_revoking_marketing_photo_consent_ends_marketing_use_and_nothing_else(provider):
    # COMPLIANCE.md: "clinical and marketing use are separate consents; revoking marketing consent removes marketing use"
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    clinical = provider.post(
        f"{base}/consents", json={**CONSENT, "kind": "clinical_photos"}
    ).get_json()
    marketing = provider.post(
        f"{base}/consents",
        json={**CONSENT, "kind": "marketing_photos", "text": "You may use my photos in marketing."},
    ).get_json()
    sms = provider.post(
        f"{base}/consents",
        json={
            **CONSENT,
            "kind": "transactional_sms",
            "text": "Send me appointment reminders by text.",
        },
    ).get_json()
    photo = provider.post(
        f"{base}/photos",
        data={
            "kind": "after",
            "marketing_use": "true",
            "image": (io.BytesIO(jpeg_with_gps()), "after.jpg"),
        },
        content_type="multipart/form-data",
    ).get_json()
    assert photo["in_marketing_use"] is True
    revoked = provider.post(
        f"{base}/consents/{marketing['id']}/revocation", json={"method": "email"}
    )
    assert revoked.get_json()["active"] is False
    assert provider.get(f"{base}/photos").get_json()["items"][0]["in_marketing_use"] is False
    standing = {c["id"]: c["active"] for c in provider.get(f"{base}/consents").get_json()["items"]}
    assert standing == {clinical["id"]: True, marketing["id"]: False, sms["id"]: True}
    # COMPLIANCE.md, SMS consent record: "exact disclosure text, number, method, timestamp"
    assert sms["phone"] == "+14085550134"


# --- minors ---------------------------------------------------------------------------------


@pytest.mark.clock_sensitive
def test_bijoux_requires_written_parental_permission_under_18(app):
    # Bijoux: "all those under 18 years of age are not permitted in the treatment rooms unless
    # undergoing a treatment with written parental permission"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["clinics", "load"]).exit_code == 0
    with app.app_context():
        make_staff("bijoux", "owner@bijoux.example.com", Role.owner)
    http = app.test_client()
    login(http, "bijoux", "owner@bijoux.example.com")
    # Sixteen on Bijoux's date (New York): old enough to be on the premises, not to be treated.
    born = born_aged(16, "America/New_York")
    created = http.post(
        "/api/v1/clinics/bijoux/clients", json={**CLIENT, "date_of_birth": born.isoformat()}
    ).get_json()
    gates = {(g["applies_to"], g["under"]): g for g in created["age_rules"]}
    treatment = gates[("treatment", 18)]
    assert (
        treatment["requires"] == "written_parental_permission" and treatment["satisfied"] is False
    )
    assert "written parental permission" in treatment["clause"]["text"]
    assert ("premises", 12) not in gates  # 16 is old enough to be on the premises
    base = f"/api/v1/clinics/bijoux/clients/{created['id']}"
    guardian = http.post(
        f"{base}/guardians", json={"name": "Ana Hernández", "relationship_to_client": "mother"}
    ).get_json()
    verbal = http.post(
        f"{base}/consents",
        json={
            **CONSENT,
            "kind": "parental",
            "method": "verbal",
            "guardian_id": guardian["id"],
            "text": "I permit my daughter's treatment.",
        },
    ).get_json()
    assert http.get(base).get_json()["age_rules"][0]["satisfied"] is False  # verbal is not written
    http.post(f"{base}/consents/{verbal['id']}/revocation", json={"method": "written"})
    http.post(
        f"{base}/consents",
        json={
            **CONSENT,
            "kind": "parental",
            "method": "written",
            "guardian_id": guardian["id"],
            "text": "I permit my daughter's treatment.",
            "evidence": {"document": "signed form 0042"},
        },
    )
    assert http.get(base).get_json()["age_rules"][0]["satisfied"] is True


@pytest.mark.clock_sensitive
def test_him_medspa_asks_parental_consent_only_under_13(app):
    # Him.: "We do not knowingly collect personal data from children under the age of 13 without parental consent."
    app.test_cli_runner().invoke(args=["clinics", "load"])
    with app.app_context():
        make_staff("him-medspa", "owner@him.example.com", Role.owner)
    http = app.test_client()
    assert (
        http.post(
            "/api/v1/clinics/him-medspa/session",
            json={"email": "owner@him.example.com", "password": "correct horse battery staple"},
        ).status_code
        == 201
    )
    # Ages on the clinic's own date (Los Angeles), whatever the date is in UTC.
    him = "America/Los_Angeles"

    def client_born(on):
        return http.post(
            "/api/v1/clinics/him-medspa/clients",
            json={**CLIENT, "date_of_birth": on.isoformat()},
        ).get_json()

    twelve = client_born(born_aged(12, him))
    fifteen = client_born(born_turning(16, him))  # sixteen tomorrow: still under 16 today
    sixteen = client_born(born_aged(16, him))  # sixteen today

    def gates(body):
        return sorted((g["applies_to"], g["under"], g["requires"]) for g in body["age_rules"])

    # The clinic's own rule, plus the CCPA plugin's: COPPA for collecting a child's data online,
    # and opt-in to sale or sharing under 16 (Civ. 1798.120(c)).
    assert gates(twelve) == [
        ("data_collection", 13, "parental_consent"),
        ("data_collection", 13, "parental_consent"),
        ("sale_sharing", 16, "parental_consent"),
    ]
    assert {g["clause"]["id"] for g in twelve["age_rules"]} >= {
        "ccpa.coppa",
        "default_policy.age.data_collection.13",
    }
    assert gates(fifteen) == [("sale_sharing", 16, "parental_consent")]
    assert gates(sixteen) == []


# --- break-glass ----------------------------------------------------------------------------


def test_break_glass_gives_front_desk_time_limited_flagged_access(clinic, provider, desk, manager):
    # COMPLIANCE.md, emergency access (164.312(a)(2)(ii)): "time-limited break-glass with a reason,
    # reviewed afterwards"
    client_id = new_client(provider)
    provider.post(f"/api/v1/clinics/alpha/clients/{client_id}/intake", json={"answers": INTAKE})
    intake_url = f"/api/v1/clinics/alpha/clients/{client_id}/intake"
    assert_problem(
        desk.post(
            "/api/v1/clinics/alpha/emergency-access",
            json={"client_id": client_id, "reason": "short"},
        ),
        422,
    )
    with time_machine.travel(clock.now(), tick=False) as traveller:
        grant = desk.post(
            "/api/v1/clinics/alpha/emergency-access",
            json={
                "client_id": client_id,
                "reason": "Client fainted in reception; paramedics ask about allergies",
                "minutes": 10,
            },
        )
        assert grant.status_code == 201
        assert desk.get(intake_url).get_json()["answers"]["allergies"] == ["lidocaine"]
        traveller.shift(11 * 60)  # past the grant, within the idle timeout
        assert_problem(desk.get(intake_url), 403, "health-data-restricted")
        flagged = events(clinic, client_id=client_id, emergency=True)
        assert [e["action"] for e in flagged] == ["read"]
        assert [e["action"] for e in events(clinic, action="emergency_access")] == [
            "emergency_access"
        ]
        queue = manager.get(
            "/api/v1/clinics/alpha/emergency-access", query_string={"unreviewed": "true"}
        ).get_json()
        assert [g["reason"] for g in queue["items"]] == [
            "Client fainted in reception; paramedics ask about allergies"
        ]
        grant_id = queue["items"][0]["id"]
        assert_problem(desk.get("/api/v1/clinics/alpha/emergency-access"), 403)
        assert_problem(
            desk.post(
                f"/api/v1/clinics/alpha/emergency-access/{grant_id}/review", json={"note": "fine"}
            ),
            403,
        )
        reviewed = manager.post(
            f"/api/v1/clinics/alpha/emergency-access/{grant_id}/review", json={"note": "Justified."}
        )
        assert reviewed.get_json()["reviewed_at"] is not None
        assert (
            manager.get(
                "/api/v1/clinics/alpha/emergency-access", query_string={"unreviewed": "true"}
            ).get_json()["items"]
            == []
        )


# --- export and the accounting of disclosures -------------------------------------------


def test_export_holds_everything_and_disclosures_are_accounted_for(clinic, provider, manager):
    # COMPLIANCE.md, accounting of disclosures (164.528): "log date, recipient, description, purpose"
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(f"{base}/intake", json={"answers": INTAKE})
    provider.post(
        f"{base}/notes", json={"kind": "treatment", "body": "HydraFacial, tolerated well"}
    )
    document = provider.get(f"{base}/export").get_json()
    assert document["client"]["legal_last_name"] == "Hernández"
    assert document["health_intake"][0]["answers"]["allergies"] == ["lidocaine"]
    assert document["notes"][0]["body"] == "HydraFacial, tolerated well"
    provider.get(
        f"{base}/export",
        query_string={"recipient": "Dr. Patel, dermatology", "purpose": "referral"},
    )
    assert (
        provider.post(
            f"{base}/disclosures",
            json={
                "recipient": "County court",
                "purpose": "subpoena",
                "description": "treatment notes 2026",
            },
        ).status_code
        == 204
    )
    report = manager.get(f"{base}/disclosures").get_json()
    assert [(d["action"], d["recipient"]) for d in report["items"]] == [
        ("export", None),
        ("disclose", "Dr. Patel, dermatology"),
        ("disclose", "County court"),
    ]


# --- encryption at rest -----------------------------------------------------------------------


SECRETS = ("ZEBRA-ALLERGY-7731", "QUOKKA-NOTE-5512", "WOMBAT-PRODUCT-9043", "NARWHAL-REACTION-2208")


def dump_database(database, app) -> str:
    if database.is_postgres:
        import subprocess

        from sqlalchemy.engine import make_url

        url = make_url(database.owner_url)
        result = subprocess.run(
            [
                "pg_dump",
                "-h",
                url.host or "127.0.0.1",
                "-p",
                str(url.port or 5432),
                "-U",
                url.username,
                "--data-only",
                url.database,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            return "\n".join(raw.driver_connection.iterdump())
        finally:
            raw.close()


def test_a_database_dump_holds_no_plaintext_health_data(clinic, provider, database):
    # COMPLIANCE.md, encryption at rest (164.312(a)(2)(iv)): "health fields encrypted"
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(f"{base}/intake", json={"answers": {**INTAKE, "allergies": [SECRETS[0]]}})
    provider.post(f"{base}/notes", json={"kind": "medical_condition", "body": SECRETS[1]})
    product = provider.post(
        f"{base}/products", json={"product": SECRETS[2], "setting": "in_clinic"}
    ).get_json()
    provider.post(
        f"{base}/adverse-reactions",
        json={
            "product_use_id": product["id"],
            "description": SECRETS[3],
            "severity": "moderate",
            "occurred_on": "2026-11-02",
        },
    )
    dump = dump_database(database, clinic)
    assert "Hernández" in dump  # the dump is real: contact data is there in the clear
    for secret in SECRETS:
        assert secret not in dump
    assert "cse1." in dump


def test_rotating_a_clinics_key_reencrypts_and_everything_still_reads(clinic, provider, runner):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(f"{base}/notes", json={"kind": "skin", "body": "Melasma on forehead"})
    provider.post(f"{base}/consents", json={**CONSENT, "kind": "clinical_photos"})
    photo = provider.post(
        f"{base}/photos",
        data={"kind": "before", "image": (io.BytesIO(jpeg_with_gps()), "before.jpg")},
        content_type="multipart/form-data",
    ).get_json()
    result = runner.invoke(args=["keys", "rotate", "--clinic", "alpha"])
    assert result.exit_code == 0, result.output
    assert "now on data key version 2; 1 values and 1 photos re-encrypted" in result.output
    with clinic.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            stored = db.session.execute(text("SELECT body FROM clinical_note")).scalar()
            assert stored.startswith("cse1.2.")
    files = [p for p in Path(clinic.config["PHOTO_STORAGE_DIR"]).rglob("*") if p.is_file()]
    assert files[0].read_text().startswith("cse1.2.")
    assert provider.get(f"{base}/notes").get_json()["items"][0]["body"] == "Melasma on forehead"
    assert provider.get(f"{base}/photos/{photo['id']}/image").status_code == 200


def test_a_new_master_key_rewraps_data_keys_and_the_old_one_can_go(clinic, provider):
    from core import create_app
    from core.encryption.keys import MasterKeys
    from tests.database import TEST_MASTER_KEYS

    client_id = new_client(provider)
    provider.post(
        f"/api/v1/clinics/alpha/clients/{client_id}/notes",
        json={"kind": "skin", "body": "Fine lines"},
    )
    new_master = MasterKeys.generate("k2")
    both = create_app(
        {**clinic.config, "MASTER_KEYS": f"{new_master},{TEST_MASTER_KEYS}"},
        instance_path=clinic.instance_path,
    )
    result = both.test_cli_runner().invoke(args=["keys", "rewrap"])
    assert "alpha: 1 data key(s) re-wrapped" in result.output
    only_new = create_app(
        {**clinic.config, "MASTER_KEYS": new_master}, instance_path=clinic.instance_path
    )
    http = only_new.test_client()
    login(http, "alpha", "provider@alpha.example.com")
    assert (
        http.get(f"/api/v1/clinics/alpha/clients/{client_id}/notes").get_json()["items"][0]["body"]
        == "Fine lines"
    )


def test_a_ciphertext_moved_to_another_field_or_clinic_does_not_decrypt(clinic, provider):
    from core.encryption.keys import DecryptionFailed, decrypt, encrypt

    with clinic.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        beta = db.session.scalar(select(Clinic).where(Clinic.slug == "beta"))
        with clinic_scope(alpha):
            sealed = encrypt(b"rosacea", "clinical_note.body")
            assert decrypt(sealed, "clinical_note.body") == b"rosacea"
            with pytest.raises(DecryptionFailed):
                decrypt(sealed, "photo.caption")
        with clinic_scope(beta), pytest.raises(DecryptionFailed):
            decrypt(sealed, "clinical_note.body")


def test_notes_read_back_through_the_orm_are_plain_text(clinic, provider):
    client_id = new_client(provider)
    provider.post(
        f"/api/v1/clinics/alpha/clients/{client_id}/notes",
        json={"kind": "leisure", "body": "Surfs every weekend"},
    )
    with clinic.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            assert db.session.scalar(select(ClinicalNote.body)) == "Surfs every weekend"


# --- edge cases found in review ----------------------------------------------------------------


def test_revoking_the_newest_consent_does_not_revive_an_older_one(provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    provider.post(
        f"{base}/consents", json={**CONSENT, "kind": "clinical_photos", "text_version": "2024-01"}
    )
    newest = provider.post(
        f"{base}/consents", json={**CONSENT, "kind": "clinical_photos", "text_version": "2025-01"}
    ).get_json()
    provider.post(f"{base}/consents/{newest['id']}/revocation", json={"method": "email"})
    assert all(not c["active"] for c in provider.get(f"{base}/consents").get_json()["items"])
    refused = provider.post(
        f"{base}/photos",
        data={"kind": "before", "image": (io.BytesIO(jpeg_with_gps()), "before.jpg")},
        content_type="multipart/form-data",
    )
    assert_problem(refused, 409, "photo-consent-missing")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/api/v1/clinics/alpha/clients", {"query_string": {"after": 2**40}}),
        ("get", "/api/v1/clinics/alpha/audit/events", {"query_string": {"client_id": 2**40}}),
        (
            "post",
            "/api/v1/clinics/alpha/emergency-access",
            {"json": {"client_id": 2**40, "reason": "long enough reason here"}},
        ),
    ],
)
def test_ids_too_large_for_the_database_are_refused_not_crashed(manager, method, path, kwargs):
    response = getattr(manager, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)


def test_odd_inputs_to_health_records_are_problems(provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    assert_problem(provider.get(f"{base}/intake/versions/{2**40}"), 404)
    not_a_file = provider.post(
        f"{base}/photos",
        data={"kind": "before", "image": "just text"},
        content_type="multipart/form-data",
    )
    assert 400 <= not_a_file.status_code < 500
    far = provider.post(
        f"{base}/consents",
        json={**CONSENT, "kind": "marketing_email", "given_at": "9999-12-31T23:00:00-05:00"},
    )
    assert assert_problem(far, 422)["errors"][0]["field"] == "given_at"


def test_times_with_offsets_are_kept_as_the_same_instant(provider):
    client_id = new_client(provider)
    base = f"/api/v1/clinics/alpha/clients/{client_id}"
    given = provider.post(
        f"{base}/consents",
        json={**CONSENT, "kind": "marketing_email", "given_at": "2025-01-01T10:00:00+05:00"},
    ).get_json()
    assert given["given_at"] == "2025-01-01T05:00:00+00:00"


def test_concurrent_first_health_reads_all_succeed_and_keep_the_chain(clinic, provider, manager):
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import issue_token

    client_id = new_client(provider)
    headers = {
        "Authorization": f"Bearer {issue_token(clinic, 'alpha', 'provider@alpha.example.com')}"
    }

    def read(_):
        return (
            clinic.test_client()
            .get(f"/api/v1/clinics/alpha/clients/{client_id}/notes", headers=headers)
            .status_code
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(read, range(12)))
    assert statuses == [200] * 12
    report = manager.get("/api/v1/clinics/alpha/audit/verification").get_json()
    assert report["intact"] is True and report["checked"] == 12


def test_concurrent_intake_updates_are_numbered_or_refused_never_crash(clinic, provider):
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers import issue_token

    client_id = new_client(provider)
    provider.post(f"/api/v1/clinics/alpha/clients/{client_id}/intake", json={"answers": INTAKE})
    headers = {
        "Authorization": f"Bearer {issue_token(clinic, 'alpha', 'provider@alpha.example.com')}"
    }

    def update(n):
        return (
            clinic.test_client()
            .post(
                f"/api/v1/clinics/alpha/clients/{client_id}/intake",
                json={
                    "answers": {**INTAKE, "allergies": [f"allergen {n}"]},
                    "change_reason": f"update {n}",
                },
                headers=headers,
            )
            .status_code
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(update, range(6)))
    assert set(statuses) <= {201, 409}
    versions = provider.get(
        f"/api/v1/clinics/alpha/clients/{client_id}/intake/versions"
    ).get_json()["items"]
    assert [v["version"] for v in versions] == list(range(1, statuses.count(201) + 2))


def test_a_rewritten_chain_without_the_key_is_detected(clinic, provider, manager, database):
    import hashlib
    import json

    client_id = new_client(provider)
    for _ in range(3):
        provider.get(f"/api/v1/clinics/alpha/clients/{client_id}/notes")
    # An attacker with the database, but not the master keys, deletes event 2 and
    # recomputes the chain with a plain hash.
    with clinic.app_context():
        engine = database.owner if database.is_postgres else db.engine
        with engine.begin() as conn:
            if database.is_postgres:
                conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            else:
                conn.execute(text("DROP TRIGGER audit_event_no_delete"))
                conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DELETE FROM audit_event WHERE seq = 2"))
            conn.execute(text("UPDATE audit_event SET seq = 2 WHERE seq = 3"))
            rows = (
                conn.execute(
                    text(
                        "SELECT id, seq, at, actor_user_id, actor_role, action, resource, resource_id, client_id, fields, reason, recipient, emergency, ip, user_agent FROM audit_event ORDER BY seq"
                    )
                )
                .mappings()
                .all()
            )
            prev = "0" * 64
            for row in rows:
                body = {
                    k: row[k]
                    for k in (
                        "seq",
                        "actor_user_id",
                        "actor_role",
                        "action",
                        "resource",
                        "resource_id",
                        "client_id",
                        "reason",
                        "recipient",
                        "ip",
                        "user_agent",
                    )
                }
                at = (
                    row["at"]
                    if not isinstance(row["at"], str)
                    else datetime.fromisoformat(row["at"])
                )
                body.update(
                    at=clock.as_utc(at).isoformat(),
                    fields=row["fields"]
                    if isinstance(row["fields"], list)
                    else json.loads(row["fields"]),
                    emergency=bool(row["emergency"]),
                    prev_hash=prev,
                )
                digest = hashlib.sha256(
                    json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                ).hexdigest()
                conn.execute(
                    text("UPDATE audit_event SET prev_hash = :p, hash = :h WHERE id = :i"),
                    {"p": prev, "h": digest, "i": row["id"]},
                )
                prev = digest
            conn.execute(text("UPDATE audit_chain SET seq = 2, head = :h"), {"h": prev})
    report = manager.get("/api/v1/clinics/alpha/audit/verification").get_json()
    assert report["intact"] is False and report["first_broken_seq"] == 1


def test_a_failure_to_encrypt_is_a_503_and_logs_no_health_data(clinic, provider, caplog):
    from core.encryption.keys import MasterKeys

    client_id = new_client(provider)
    # The master key is swapped for one that cannot unwrap the clinic's data key.
    clinic.extensions["clinic_saas.master_keys"] = MasterKeys.parse(MasterKeys.generate("test1"))
    clinic.extensions["clinic_saas.keyring"].clear()
    response = provider.post(
        f"/api/v1/clinics/alpha/clients/{client_id}/notes",
        json={"kind": "medical_condition", "body": "SECRET-CONDITION-4417"},
    )
    assert_problem(response, 503, "keys-unavailable")
    assert "SECRET-CONDITION-4417" not in caplog.text


@pytest.mark.clock_sensitive
def test_a_later_verbal_consent_does_not_hide_standing_written_permission(app):
    # Bijoux: "... unless undergoing a treatment with written parental permission"
    app.test_cli_runner().invoke(args=["clinics", "load"])
    with app.app_context():
        make_staff("bijoux", "owner@bijoux.example.com", Role.owner)
    http = app.test_client()
    login(http, "bijoux", "owner@bijoux.example.com")
    teen = http.post(
        "/api/v1/clinics/bijoux/clients",
        json={**CLIENT, "date_of_birth": born_aged(16, "America/New_York").isoformat()},
    ).get_json()
    base = f"/api/v1/clinics/bijoux/clients/{teen['id']}"
    guardian = http.post(
        f"{base}/guardians", json={"name": "Ana Hernández", "relationship_to_client": "mother"}
    ).get_json()
    for method in ("written", "verbal"):
        http.post(
            f"{base}/consents",
            json={
                **CONSENT,
                "kind": "parental",
                "method": method,
                "guardian_id": guardian["id"],
                "text": "I permit my daughter's treatment.",
            },
        )
    treatment = next(
        g for g in http.get(base).get_json()["age_rules"] if g["applies_to"] == "treatment"
    )
    assert treatment["satisfied"] is True


# --- paging ---------------------------------------------------------------------------------


def _walk(http, query: str, limit: int) -> tuple[list[int], list[dict]]:
    """Follow next_after from the first page to the last; return every id and the pages."""
    seen, pages, after = [], [], None
    while True:
        url = f"/api/v1/clinics/alpha/clients?limit={limit}{query}"
        page = http.get(url + (f"&after={after}" if after else "")).get_json()
        pages.append(page)
        seen += [item["id"] for item in page["items"]]
        if not page["has_more"]:
            assert page["next_after"] is None
            return seen, pages
        after = page["next_after"]
        assert after, "a page with more after it says where to go on"


def test_every_client_is_reached_page_by_page_in_name_order(desk):
    # The first client made (id 1) sorts last by name: it must still be reached.
    # Two clients share a name: only the id tells them apart, so the cursor carries it.
    names = [
        ("Zed", "Young"),
        ("Ana", "Diaz"),
        ("Bo", "Diaz"),
        ("Cy", "Adams"),
        ("Ana", "Diaz"),
        ("Di", "Diaz"),
    ]
    ids = {}
    for first, last in names:
        made = new_client(
            desk, legal_first_name=first, legal_last_name=last, email=None, phone=None
        )
        ids[made] = (last, first)
    expected = sorted(ids, key=lambda i: (ids[i][0].lower(), ids[i][1].lower(), i))
    for limit in (1, 2, 4, 6, 100):
        seen, pages = _walk(desk, "", limit)
        assert seen == expected, limit
        assert pages[0]["has_more"] == (limit < len(names))
        assert all(page["count"] == len(page["items"]) for page in pages)
    assert min(ids) in _walk(desk, "", 2)[0]
    # A search pages the same way, in the same order.
    diaz, _ = _walk(desk, "&q=diaz", 1)
    assert diaz == [i for i in expected if ids[i][0] == "Diaz"]


def test_a_cursor_that_is_not_one_is_refused_naming_the_field(desk):
    from tests.helpers import assert_problem

    refused = desk.get("/api/v1/clinics/alpha/clients?after=not-a-cursor")
    body = assert_problem(refused, 422)
    assert [e["field"] for e in body["errors"]] == ["after"]
