"""Privacy requests and deadlines, deletion under retention holds, breaches and overseas recipients."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select

from core.accounts.models import Role
from core.clients.models import Client, ClinicalNote
from core.extensions import db
from core.jobs.tasks import tick
from core.messaging.models import OutboxMessage
from core.privacy.calendars import add_nz_working_days, add_us_business_days
from core.privacy.models import PrivacyRequest
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import assert_problem, issue_token, make_clinic, make_staff

NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # Monday 2 March 2026, 10:00 in Los Angeles
CLIENT = {"legal_first_name": "Maya", "legal_last_name": "Lopez", "email": "maya@example.com"}


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _clinic(app, slug: str, plugins: list[str], **fields) -> dict:
    with app.app_context():
        make_clinic(slug, enabled_plugins=plugins, **fields)
        make_staff(slug, f"owner@{slug}.example.com", Role.owner)
    token = issue_token(app, slug, f"owner@{slug}.example.com")
    return {"slug": slug, "auth": {"Authorization": f"Bearer {token}"}, "app": app}


@pytest.fixture
def california(app, frozen):
    """JT Aesthetic & Co. and Him. Medspa: HIPAA-aligned and the California rules."""
    return _clinic(
        app, "calhipaa", ["hipaa_aligned", "ccpa"], contact_email="privacy@calhipaa.example.com"
    )


@pytest.fixture
def ccpa_only(app, frozen):
    return _clinic(app, "calonly", ["ccpa"])


@pytest.fixture
def hipaa_only(app, frozen):
    return _clinic(app, "hipaaonly", ["hipaa_aligned"], timezone="America/Chicago")


@pytest.fixture
def auckland(app, frozen):
    return _clinic(
        app,
        "auckland",
        ["nz_privacy"],
        timezone="Pacific/Auckland",
        country="NZ",
        currency="NZD",
    )


def recorded(http, ctx, kind, received_at, **extra):
    """Record a request as staff would, with when it reached the clinic."""
    response = http.post(
        f"/api/v1/clinics/{ctx['slug']}/privacy-requests/recorded",
        json={"kind": kind, "requester_name": "Maya Lopez", "received_at": received_at, **extra},
        headers=ctx["auth"],
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def new_client(http, ctx, **fields):
    response = http.post(
        f"/api/v1/clinics/{ctx['slug']}/clients", json={**CLIENT, **fields}, headers=ctx["auth"]
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def verify_and_complete(http, ctx, request_id, client_id, method="ID"):
    """Verify the requester as the client, then carry out the request, as staff would."""
    verified = http.post(
        f"/api/v1/clinics/{ctx['slug']}/privacy-requests/{request_id}/verification",
        json={"client_id": client_id, "method": method},
        headers=ctx["auth"],
    )
    assert verified.status_code == 200, verified.get_data(as_text=True)
    return http.post(
        f"/api/v1/clinics/{ctx['slug']}/privacy-requests/{request_id}/completion",
        json={},
        headers=ctx["auth"],
    )


# --- deadlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        # COMPLIANCE.md, New Zealand worked examples: "received Fri 19 Dec 2025: due Tue 10 Feb
        # 2026; Wed 1 Apr 2026: due Mon 4 May 2026; Fri 26 Jun 2026: due Mon 27 Jul 2026"
        (date(2025, 12, 19), date(2026, 2, 10)),
        (date(2026, 4, 1), date(2026, 5, 4)),
        (date(2026, 6, 26), date(2026, 7, 27)),
    ],
)
def test_new_zealand_working_days_match_the_worked_examples(received, due):
    assert add_nz_working_days(received, 20) == due


@pytest.mark.parametrize(
    ("received_at", "due_on"),
    [
        ("2025-12-19T10:00:00+13:00", "2026-02-10"),
        ("2026-04-01T10:00:00+13:00", "2026-05-04"),
        ("2026-06-26T10:00:00+12:00", "2026-07-27"),
        # Received on Easter Saturday: counting starts after Easter Monday and skips Anzac Day
        # (Saturday 25 April, Mondayised to 27 April).
        ("2026-04-04T11:00:00+13:00", "2026-05-05"),
        # Received at 23:30 on a Sunday in Auckland, which is still Sunday morning in UTC.
        ("2026-06-28T23:30:00+12:00", "2026-07-27"),
    ],
)
def test_a_new_zealand_access_request_is_due_in_20_working_days(
    client, auckland, received_at, due_on
):
    # COMPLIANCE.md: "access, correction | decide within 20 working days"; "working day | not Sat,
    # Sun, Waitangi Day, Good Friday, Easter Monday, Anzac Day, the Sovereign's Birthday,
    # Matariki, Labour Day, or 25 Dec to 15 Jan inclusive; Waitangi and Anzac are Mondayised"
    body = recorded(client, auckland, "access", received_at)
    assert body["due_on"] == due_on
    assert body["deadline_clause_id"] == "nz_privacy.deadline"


def test_ccpa_deletion_is_due_in_45_calendar_days_and_acknowledged_in_10_business_days(
    client, ccpa_only
):
    # COMPLIANCE.md: "acknowledge | 10 business days"; "know / delete / correct | 45 calendar
    # days from receipt, extendable once by 45 with notice"
    body = recorded(client, ccpa_only, "delete", "2026-11-21T09:00:00-08:00")  # a Saturday
    assert body["due_on"] == "2027-01-05"  # 45 calendar days: weekends and holidays count
    # Business days skip Thanksgiving (26 Nov) and the day after, a California state holiday.
    assert body["acknowledge_on"] == "2026-12-08"
    assert add_us_business_days(date(2026, 11, 21), 10) == date(2026, 12, 8)
    assert body["deadline_clause_id"] == "ccpa.deadline.delete"
    extended = client.post(
        f"/api/v1/clinics/calonly/privacy-requests/{body['id']}/extension",
        json={"reason": "Records are in storage.", "notice": "We need 45 more days because..."},
        headers=ccpa_only["auth"],
    ).get_json()
    assert extended["due_on"] == "2027-02-19"
    again = client.post(
        f"/api/v1/clinics/calonly/privacy-requests/{body['id']}/extension",
        json={"reason": "More time.", "notice": "..."},
        headers=ccpa_only["auth"],
    )
    assert_problem(again, 409, "already-extended")


def test_a_california_patient_gets_records_by_the_state_clock_which_is_shorter(client, ccpa_only):
    # COMPLIANCE.md: "patient access (state) | inspect within 5 working days, copies within 15
    # days | its own clock; the shorter deadline wins"
    body = recorded(client, ccpa_only, "access", "2026-03-02T10:00:00-08:00")
    assert body["due_on"] == "2026-03-17"
    assert body["deadline_clause_id"] == "ccpa.deadline.patient_records"


def test_hipaa_access_is_due_in_30_days_with_one_30_day_extension_inside_the_first_30(
    client, hipaa_only, frozen
):
    # COMPLIANCE.md: "right of access | 30 days, one 30-day extension with written reason given
    # inside the first 30"
    body = recorded(client, hipaa_only, "access", "2026-03-02T09:00:00-06:00")
    assert body["due_on"] == "2026-04-01"
    assert body["extendable_to"].startswith("2026-05-0")
    frozen.move_to(datetime(2026, 4, 3, 12, tzinfo=UTC))
    late = client.post(
        f"/api/v1/clinics/hipaaonly/privacy-requests/{body['id']}/extension",
        json={"reason": "Late.", "notice": "..."},
        headers=hipaa_only["auth"],
    )
    assert_problem(late, 409, "extension-too-late")


def test_where_several_rules_apply_the_earliest_deadline_wins(client, california):
    # COMPLIANCE.md: "When several plugins apply to one clinic, the core takes the earliest deadline"
    amend = recorded(client, california, "correct", "2026-03-02T10:00:00-08:00")
    # HIPAA gives 60 days to amend, the CCPA 45 to correct: 45 wins.
    assert amend["due_on"] == "2026-04-16"
    assert amend["deadline_clause_id"] == "ccpa.deadline.correct"
    accounting = recorded(
        client, california, "accounting_of_disclosures", "2026-03-02T10:00:00-08:00"
    )
    # Only HIPAA speaks to an accounting of disclosures: its 60 days, not the baseline's 30
    # (the baseline answers only where no jurisdiction rule does).
    assert accounting["due_on"] == "2026-05-01"
    assert accounting["deadline_clause_id"] == "hipaa_aligned.deadline.accounting_of_disclosures"


def test_a_right_the_clinic_does_not_offer_is_refused_with_the_field(client, auckland):
    response = client.post(
        "/api/v1/clinics/auckland/privacy-requests",
        json={"kind": "opt_out_sale_sharing", "requester_name": "Aroha"},
    )
    body = assert_problem(response, 422, "right-not-offered")
    assert body["errors"][0]["field"] == "kind"


def test_the_queue_is_ordered_by_deadline_and_a_nearing_deadline_alerts_the_clinic(
    app, client, california, frozen
):
    late = recorded(client, california, "delete", "2026-03-02T10:00:00-08:00")  # due 16 Apr
    soon = recorded(client, california, "access", "2026-03-02T10:00:00-08:00")  # due 17 Mar
    queue = client.get(
        "/api/v1/clinics/calhipaa/privacy-requests", headers=california["auth"]
    ).get_json()
    assert [r["id"] for r in queue["items"]] == [soon["id"], late["id"]]
    with app.app_context():
        tick()
    frozen.move_to(datetime(2026, 3, 13, 18, tzinfo=UTC))  # four days before the access is due
    with app.app_context():
        assert tick().deadline_alerts == 1
        assert tick().deadline_alerts == 0  # once per deadline
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calhipaa"))
        with clinic_scope(clinic):
            alerts = list(
                db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "staff_alert"))
            )
    assert len(alerts) == 1
    assert alerts[0].details["to"] == "privacy@calhipaa.example.com"
    assert f"Privacy request {soon['id']} is due on 2026-03-17" == alerts[0].details["subject"]


# --- verification and access ---------------------------------------------------------------------


def test_nothing_is_released_before_identity_is_verified_then_the_export_includes_disclosures(
    client, auckland
):
    client_id = new_client(client, auckland)
    client.post(
        f"/api/v1/clinics/auckland/clients/{client_id}/disclosures",
        json={"recipient": "Dr Ngata", "purpose": "referral", "description": "skin history"},
        headers=auckland["auth"],
    )
    request = client.post(
        "/api/v1/clinics/auckland/privacy-requests",
        json={
            "kind": "access",
            "requester_name": "Maya Lopez",
            "requester_email": "maya@example.com",
        },
    ).get_json()
    export_url = f"/api/v1/clinics/auckland/privacy-requests/{request['id']}/export"
    assert_problem(client.get(export_url, headers=auckland["auth"]), 409, "identity-not-verified")
    client.post(
        f"/api/v1/clinics/auckland/privacy-requests/{request['id']}/verification",
        json={"client_id": client_id, "method": "photo ID at the front desk"},
        headers=auckland["auth"],
    )
    document = client.get(export_url, headers=auckland["auth"]).get_json()
    assert document["client"]["email"] == "maya@example.com"
    assert document["disclosures"][0]["recipient"] == "Dr Ngata"
    page = client.get(export_url + ".html", headers=auckland["auth"])
    assert page.mimetype == "text/html" and "Dr Ngata" in page.get_data(as_text=True)
    # The release itself is logged as a disclosure, to the client.
    again = client.get(export_url, headers=auckland["auth"]).get_json()
    assert any(d["recipient"] == "Maya Lopez" for d in again["disclosures"])


# --- deletion ------------------------------------------------------------------------------------


def _treat(app, slug, client_id):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            db.session.add(
                ClinicalNote(client_id=client_id, kind="treatment", body="Laser, 2 passes")
            )
            db.session.commit()


def _client(app, slug, client_id):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            record = db.session.get(Client, client_id)
            notes = db.session.scalar(
                select(db.func.count())
                .select_from(ClinicalNote)
                .where(ClinicalNote.client_id == client_id)
            )
            return {"name": record.legal_first_name, "email": record.email, "notes": notes}


def test_a_deletion_under_a_retention_hold_keeps_medical_records_and_deletes_the_rest(
    app, client, ccpa_only, frozen
):
    # COMPLIANCE.md: "record retention | adults 7 years after last treatment" (H&S 123145);
    # "reports a conflict where a minimum retention meets a deletion request"
    client_id = new_client(client, ccpa_only, phone="(408) 555-0101", date_of_birth="1990-01-01")
    _treat(app, "calonly", client_id)
    request = recorded(
        client, ccpa_only, "delete", "2026-03-02T10:00:00-08:00", client_id=client_id
    )
    plan = client.get(
        f"/api/v1/clinics/calonly/clients/{client_id}/deletion-plan", headers=ccpa_only["auth"]
    ).get_json()["items"]
    medical = next(i for i in plan if i["records"] == "medical_record")
    assert (medical["action"], medical["keep_until"], medical["clause_id"]) == (
        "keep",
        "2033-03-02",
        "ccpa.retention.medical",
    )
    assert next(i for i in plan if i["records"] == "contact")["action"] == "delete"
    assert_problem(
        client.post(
            f"/api/v1/clinics/calonly/privacy-requests/{request['id']}/completion",
            json={},
            headers=ccpa_only["auth"],
        ),
        409,
        "identity-not-verified",
    )
    done = verify_and_complete(
        client, ccpa_only, request["id"], client_id, "matched email and date of birth"
    ).get_json()
    assert done["status"] == "completed"
    assert _client(app, "calonly", client_id) == {"name": "Maya", "email": None, "notes": 1}
    # COMPLIANCE.md (CCPA): "deletion | tell service providers and third parties it was shared with"
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
        with clinic_scope(clinic):
            from core.privacy.models import ProcessorNotice

            notices = list(db.session.scalars(select(ProcessorNotice)))
            assert [(n.processor, n.reference, n.status.value) for n in notices] == [
                ("email_provider", "maya@example.com", "recorded"),
                ("sms_provider", "+14085550101", "recorded"),
            ]
            # "request records | keep 24 months": the request itself is held.
            assert db.session.get(PrivacyRequest, request["id"]).status.value == "completed"
    frozen.move_to(datetime(2033, 3, 1, 20, tzinfo=UTC))
    with app.app_context():
        tick()
    assert _client(app, "calonly", client_id)["notes"] == 1  # the hold still runs
    frozen.move_to(datetime(2033, 3, 2, 20, tzinfo=UTC))
    with app.app_context():
        assert tick().records_purged >= 1
    assert _client(app, "calonly", client_id) == {"name": "Deleted", "email": None, "notes": 0}


def test_a_client_who_turns_18_while_a_hold_runs(app, client, ccpa_only, frozen):
    # COMPLIANCE.md: "record retention | ... minors the later of that or age 19" (H&S 123145);
    # a parent may act for a child, not for an adult.
    client_id = new_client(client, ccpa_only, date_of_birth="2015-06-01")  # 10 years old
    guardian = client.post(
        f"/api/v1/clinics/calonly/clients/{client_id}/guardians",
        json={"name": "Ana Lopez", "relationship_to_client": "mother"},
        headers=ccpa_only["auth"],
    ).get_json()
    _treat(app, "calonly", client_id)
    request = recorded(
        client,
        ccpa_only,
        "delete",
        "2026-03-02T10:00:00-08:00",
        representative_name="Ana Lopez",
        representative_relationship="mother",
    )
    client.post(
        f"/api/v1/clinics/calonly/privacy-requests/{request['id']}/verification",
        json={
            "client_id": client_id,
            "method": "ID and birth certificate",
            "guardian_id": guardian["id"],
        },
        headers=ccpa_only["auth"],
    )
    done = client.post(
        f"/api/v1/clinics/calonly/privacy-requests/{request['id']}/completion",
        json={},
        headers=ccpa_only["auth"],
    ).get_json()
    medical = next(i for i in done["result"]["plan"] if i["records"] == "medical_record")
    # Seven years after the last treatment is 2033; her 19th birthday, 1 June 2034, is later.
    assert medical["keep_until"] == "2034-06-01"
    frozen.move_to(datetime(2033, 6, 2, 18, tzinfo=UTC))  # she has turned 18
    with app.app_context():
        tick()
    assert _client(app, "calonly", client_id)["notes"] == 1
    # Her mother can no longer act for her.
    second = recorded(
        client, ccpa_only, "access", "2033-06-02T10:00:00-07:00", representative_name="Ana Lopez"
    )
    refused = client.post(
        f"/api/v1/clinics/calonly/privacy-requests/{second['id']}/verification",
        json={"client_id": client_id, "method": "ID", "guardian_id": guardian["id"]},
        headers=ccpa_only["auth"],
    )
    assert_problem(refused, 409, "representative-not-allowed")
    frozen.move_to(datetime(2034, 6, 1, 18, tzinfo=UTC))
    with app.app_context():
        tick()
    assert _client(app, "calonly", client_id)["notes"] == 0


def test_new_zealand_health_information_is_held_ten_years(app, client, auckland):
    # COMPLIANCE.md: "retention | health information at least 10 years from the last service"
    client_id = new_client(client, auckland)
    _treat(app, "auckland", client_id)
    plan = client.get(
        f"/api/v1/clinics/auckland/clients/{client_id}/deletion-plan", headers=auckland["auth"]
    ).get_json()["items"]
    medical = next(i for i in plan if i["records"] == "medical_record")
    assert (medical["keep_until"], medical["clause_id"]) == (
        "2036-03-04",
        "nz_privacy.retention.health",
    )


# --- breaches and overseas recipients --------------------------------------------------------------


def test_a_breach_lists_each_notice_with_its_deadline_per_jurisdiction(
    client, california, auckland
):
    # COMPLIANCE.md: HIPAA "individuals within 60 days of discovery; HHS at once if 500+ ...;
    # media if 500+ in one state"; California "individuals within 30 days (from 2026); AG sample
    # if 500+"; New Zealand "notify the Commissioner as soon as practicable (OPC expects about 72 hours)"
    incident = {
        "description": "Laptop with unencrypted exports stolen",
        "discovered_at": "2026-03-02T10:00:00-08:00",
        "affected_count": 800,
        "affected_by_region": {"CA": 800},
    }
    body = client.post(
        "/api/v1/clinics/calhipaa/breaches", json=incident, headers=california["auth"]
    ).get_json()
    notices = {(n["recipient"], n["due_at"][:10], n["clause_id"]) for n in body["notices"]}
    assert notices == {
        ("individuals", "2026-05-01", "hipaa_aligned.breach.individuals"),
        ("hhs", "2026-05-01", "hipaa_aligned.breach.hhs_large"),
        ("media:CA", "2026-05-01", "hipaa_aligned.breach.media"),
        ("individuals", "2026-04-01", "ccpa.breach.individuals"),
        ("attorney_general:CA", "2026-04-01", "ccpa.breach.attorney_general"),
    }
    nz = client.post(
        "/api/v1/clinics/auckland/breaches",
        json={**incident, "affected_count": 3, "affected_by_region": {}},
        headers=auckland["auth"],
    ).get_json()
    commissioner = next(n for n in nz["notices"] if n["recipient"] == "privacy_commissioner:NZ")
    assert commissioner["as_soon_as_practicable"] is True
    assert commissioner["due_at"].startswith("2026-03-05T18:00")


def test_an_overseas_disclosure_needs_a_permitted_basis_but_processing_does_not(client, auckland):
    # COMPLIANCE.md: "overseas disclosure | allowed only with informed authorisation, comparable
    # law, model clauses, or the recipient under NZ law; storage/processing for the clinic is not
    # a disclosure" (IPP 12, s 11)
    client_id = new_client(client, auckland)
    url = "/api/v1/clinics/auckland/data-recipients"

    def recipient(**fields):
        data = {"name": "Skin Lab Inc", "country": "US", "role": "recipient", "purpose": "analysis"}
        return client.post(url, json={**data, **fields}, headers=auckland["auth"]).get_json()["id"]

    send = {"client_id": client_id, "purpose": "second opinion", "description": "photos"}
    refused = client.post(f"{url}/{recipient()}/transfers", json=send, headers=auckland["auth"])
    assert assert_problem(refused, 409, "disclosure-refused")["clause"] == "nz_privacy.overseas"
    allowed = client.post(
        f"{url}/{recipient(basis='authorised')}/transfers", json=send, headers=auckland["auth"]
    )
    assert allowed.status_code == 201 and allowed.get_json()["basis"] == "authorised"
    hosting = client.post(
        f"{url}/{recipient(name='Cloud Host', role='processor')}/transfers",
        json=send,
        headers=auckland["auth"],
    )
    assert hosting.status_code == 201


def test_another_clinics_privacy_requests_are_not_visible(client, california, auckland):
    body = recorded(client, california, "access", "2026-03-02T10:00:00-08:00")
    response = client.get(
        f"/api/v1/clinics/auckland/privacy-requests/{body['id']}", headers=auckland["auth"]
    )
    assert_problem(response, 404)
    assert (
        client.get(
            "/api/v1/clinics/auckland/privacy-requests", headers=auckland["auth"]
        ).get_json()["items"]
        == []
    )


def test_in_new_zealand_a_parent_may_act_only_for_a_child_under_16(client, auckland):
    # COMPLIANCE.md: "representatives | a parent may request a child's (<16) health information"
    # (Code rule 11(4)); a 17-year-old makes their own request.
    client_id = new_client(client, auckland, date_of_birth="2009-01-10")  # 17
    guardian = client.post(
        f"/api/v1/clinics/auckland/clients/{client_id}/guardians",
        json={"name": "Hemi Parata", "relationship_to_client": "father"},
        headers=auckland["auth"],
    ).get_json()
    request = recorded(
        client, auckland, "access", "2026-03-03T10:00:00+13:00", representative_name="Hemi Parata"
    )
    refused = client.post(
        f"/api/v1/clinics/auckland/privacy-requests/{request['id']}/verification",
        json={"client_id": client_id, "method": "ID", "guardian_id": guardian["id"]},
        headers=auckland["auth"],
    )
    body = assert_problem(refused, 409, "representative-not-allowed")
    assert "under 16" in body["detail"]


# --- what deletion keeps, tells and finally removes ----------------------------------------------


def test_the_notice_that_a_deletion_is_done_reaches_the_requester(app, client, ccpa_only, inbox):
    # COMPLIANCE.md (CCPA): "automatic acknowledgement with how verification and timing work";
    # the requester is told the outcome even though the deletion removed their email from the record.
    from core.messaging import channels
    from core.messaging.delivery import deliver_due

    handler, port = inbox
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port)
    channels.install(app)
    client_id = new_client(client, ccpa_only)
    request = client.post(
        "/api/v1/clinics/calonly/privacy-requests",
        json={
            "kind": "delete",
            "requester_name": "Maya Lopez",
            "requester_email": "maya@example.com",
        },
    ).get_json()
    verify_and_complete(client, ccpa_only, request["id"], client_id, "matched email")
    assert _client(app, "calonly", client_id)["email"] is None
    with app.app_context():
        assert deliver_due().sent == 2
    subjects = sorted(
        line
        for m in handler.messages
        for line in m["data"].splitlines()
        if line.startswith("Subject:")
    )
    assert [m["to"] for m in handler.messages] == ["maya@example.com"] * 2
    assert subjects == [
        "Subject: We received your privacy request (delete)",
        "Subject: Your privacy request is complete",
    ]


def test_documentation_is_kept_six_years_from_its_newest_record(client, hipaa_only):
    # COMPLIANCE.md (HIPAA): "documentation retention | 6 years from creation or last effective
    # date | keep policies, consents, authorisations, complaints" (164.316(b)(2), 164.530(j))
    client_id = new_client(client, hipaa_only)
    for given_at in ("2018-01-10T10:00:00-06:00", "2026-02-01T10:00:00-06:00"):
        response = client.post(
            f"/api/v1/clinics/hipaaonly/clients/{client_id}/consents",
            json={
                "kind": "treatment",
                "text": "I consent to laser treatment.",
                "text_version": "1",
                "method": "written",
                "given_at": given_at,
            },
            headers=hipaa_only["auth"],
        )
        assert response.status_code == 201, response.get_data(as_text=True)
    plan = client.get(
        f"/api/v1/clinics/hipaaonly/clients/{client_id}/deletion-plan", headers=hipaa_only["auth"]
    ).get_json()["items"]
    documentation = next(i for i in plan if i["records"] == "documentation")
    # The 2018 consent's six years have run, but the group is kept as long as its newest must be.
    assert (documentation["action"], documentation["keep_until"], documentation["clause_id"]) == (
        "keep",
        "2032-02-01",
        "hipaa_aligned.retention.documentation",
    )


def test_a_deletion_keeps_the_consent_a_held_photo_was_taken_under(app, client, ccpa_only, frozen):
    # COMPLIANCE.md: "photos | clinical and marketing use are separate consents; revoking
    # marketing consent removes marketing use"; H&S 123145 holds the clinical photo 7 years.
    from core.clients.models import Consent, Photo

    client_id = new_client(client, ccpa_only)
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
        with clinic_scope(clinic):
            clinical = Consent(
                client_id=client_id,
                kind="clinical_photos",
                text="Photos for my record.",
                text_version="1",
                given_at=NOW,
                method="written",
            )
            marketing = Consent(
                client_id=client_id,
                kind="marketing_photos",
                text="Photos in your marketing.",
                text_version="1",
                given_at=NOW,
                method="written",
            )
            db.session.add_all([clinical, marketing])
            db.session.flush()
            db.session.add(
                Photo(
                    client_id=client_id,
                    kind="before",
                    consent_id=clinical.id,
                    storage_key="calonly/before.enc",
                    content_type="image/jpeg",
                    byte_size=10,
                    width=4,
                    height=3,
                    marketing_use=True,
                )
            )
            db.session.commit()
    request = recorded(
        client, ccpa_only, "delete", "2026-03-02T10:00:00-08:00", client_id=client_id
    )
    done = verify_and_complete(client, ccpa_only, request["id"], client_id, "ID")
    assert done.status_code == 200, done.get_data(as_text=True)

    def held():
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
            with clinic_scope(clinic):
                photos = [
                    (p.kind.value, p.marketing_use) for p in db.session.scalars(select(Photo))
                ]
                consents = sorted(c.kind.value for c in db.session.scalars(select(Consent)))
                return photos, consents

    # The photo stays, out of marketing, with the consent it was taken under.
    assert held() == ([("before", False)], ["clinical_photos"])
    frozen.move_to(datetime(2033, 3, 3, 20, tzinfo=UTC))
    with app.app_context():
        tick()
    assert held() == ([], [])
    assert _client(app, "calonly", client_id)["name"] == "Deleted"


def test_the_record_of_a_request_is_kept_24_months_then_redacted(app, client, ccpa_only, frozen):
    # COMPLIANCE.md (CCPA): "request records | keep 24 months | log type, dates, outcome,
    # denial reason" (11 CCR 7101)
    client_id = new_client(client, ccpa_only)
    request = recorded(
        client,
        ccpa_only,
        "delete",
        "2026-03-02T10:00:00-08:00",
        client_id=client_id,
        requester_email="maya@example.com",
    )
    verify_and_complete(client, ccpa_only, request["id"], client_id, "ID")

    def stored():
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
            with clinic_scope(clinic):
                row = db.session.get(PrivacyRequest, request["id"])
                told = [(n.processor, n.reference) for n in row.processor_notices]
                return row.requester_name, row.requester_email, row.status.value, told

    frozen.move_to(datetime(2028, 3, 1, 20, tzinfo=UTC))
    with app.app_context():
        tick()
    assert stored() == (
        "Maya Lopez",
        "maya@example.com",
        "completed",
        [("email_provider", "maya@example.com")],
    )
    frozen.move_to(datetime(2028, 3, 2, 20, tzinfo=UTC))
    with app.app_context():
        tick()
    # The notice stays, without the address it was about.
    assert stored() == ("Deleted", None, "completed", [("email_provider", None)])


def test_a_ccpa_opt_out_needs_no_identity_check_and_is_due_in_15_business_days(client, ccpa_only):
    # COMPLIANCE.md: "opt-out of sale/sharing | 15 business days (?), no identity check"
    client_id = new_client(client, ccpa_only)
    body = recorded(
        client, ccpa_only, "opt_out_sale_sharing", "2026-03-02T10:00:00-08:00", client_id=client_id
    )
    assert (body["verify_identity"], body["status"]) == (False, "completed")
    assert body["due_on"] == "2026-03-23"
    assert body["deadline_clause_id"] == "ccpa.deadline.opt_out"


# --- Florida, and the smaller breach rules ----------------------------------------------------------


@pytest.fixture
def florida(app, frozen):
    """Bijoux Med Spa's jurisdiction."""
    return _clinic(app, "orlando", ["florida"], timezone="America/New_York")


def test_florida_keeps_physician_records_five_years(app, client, florida):
    # COMPLIANCE.md: "Florida (Bijoux): physician records kept at least 5 years from last contact"
    client_id = new_client(client, florida)
    _treat(app, "orlando", client_id)
    plan = client.get(
        f"/api/v1/clinics/orlando/clients/{client_id}/deletion-plan", headers=florida["auth"]
    ).get_json()["items"]
    medical = next(i for i in plan if i["records"] == "medical_record")
    assert (medical["keep_until"], medical["clause_id"]) == (
        "2031-03-02",
        "florida.retention.medical",
    )


def test_smaller_breaches_in_florida_hipaa_and_new_zealand(client, florida, hipaa_only, auckland):
    # COMPLIANCE.md: Florida "breach notice within 30 days, AG if 500+"; HIPAA "HHS at once if
    # 500+, else yearly log"; New Zealand "notify the people affected"
    incident = {
        "description": "Email sent to the wrong client list",
        "discovered_at": "2026-03-02T10:00:00-05:00",
        "affected_count": 40,
    }

    def notices(ctx, **extra):
        body = client.post(
            f"/api/v1/clinics/{ctx['slug']}/breaches",
            json={**incident, **extra},
            headers=ctx["auth"],
        ).get_json()
        return {(n["recipient"], (n["due_at"] or "")[:10], n["clause_id"]) for n in body["notices"]}

    assert notices(florida) == {("individuals", "2026-04-01", "florida.breach.individuals")}
    assert ("attorney_general:FL", "2026-04-01", "florida.breach.attorney_general") in notices(
        florida, affected_count=500
    )
    assert notices(hipaa_only) == {
        ("individuals", "2026-05-01", "hipaa_aligned.breach.individuals"),
        ("hhs", "2027-03-01", "hipaa_aligned.breach.hhs_log"),
    }
    assert ("individuals", "", "nz_privacy.breach.individuals") in notices(auckland)
    # Encrypted data lost is not "unsecured PHI": no HIPAA notice at all.
    assert notices(hipaa_only, encrypted=True) == set()


def test_a_deletion_notes_the_clinics_stripe_customer_for_notice(app, client, ccpa_only):
    # COMPLIANCE.md (CCPA): "deletion | tell service providers and third parties it was shared
    # with"; the seed (JP MediSpa): "deleting your profile and any related details from any third
    # party service providers that we use"
    from core.privacy.models import ProcessorNotice

    client_id = new_client(client, ccpa_only)

    def customer():
        db.session.get(Client, client_id).stripe_customer_id = "cus_maya"
        db.session.commit()

    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
        with clinic_scope(clinic):
            customer()
    request = recorded(
        client, ccpa_only, "delete", "2026-03-02T10:00:00-08:00", client_id=client_id
    )
    verify_and_complete(client, ccpa_only, request["id"], client_id, "ID")
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "calonly"))
        with clinic_scope(clinic):
            notices = [
                (n.processor, n.reference, n.action, n.status.value)
                for n in db.session.scalars(select(ProcessorNotice))
            ]
    # No connected account: the platform cannot reach the customer, so the clinic is asked to.
    assert notices == [
        ("stripe", "cus_maya", "notify", "pending"),
        ("email_provider", "maya@example.com", "record", "recorded"),
    ]


# --- deletion at the processors: Stripe on the clinic's account, email, SMS, recipients ----------


def _deletion_at_alpha(client, live) -> dict:
    """A client who paid a deposit by card at a CCPA clinic, and the customer Stripe holds."""
    from core.bookings.models import Booking
    from core.clients.models import Client
    from tests.payment_flows import paid_booking, scoped

    body = paid_booking(client, live)
    with live["app"].app_context():
        db.session.scalar(select(Clinic).where(Clinic.slug == "alpha")).enabled_plugins = ["ccpa"]
        db.session.commit()
    booking_id = body["booking"]["id"]
    client_id = scoped(live["app"], lambda: db.session.get(Booking, booking_id).client_id)
    customer = scoped(live["app"], lambda: db.session.get(Client, client_id).stripe_customer_id)
    assert customer and customer.startswith("cus_")
    return {
        "slug": "alpha",
        "auth": live["auth"],
        "client_id": client_id,
        "booking_id": booking_id,
        "customer": customer,
    }


def _request_deletion(client, ctx) -> int:
    now = datetime.now(UTC).isoformat()
    return recorded(client, ctx, "delete", now, client_id=ctx["client_id"])["id"]


def _deleted_at_stripe(live, customer) -> list[str | None]:
    """The connected accounts the app asked Stripe to delete ``customer`` on, one per call."""
    return [c.account for c in live["stripe"].calls_to(f"/v1/customers/{customer}", "DELETE")]


def test_a_card_clients_deletion_tells_stripe_email_sms_and_recipients_and_deletes_the_customer(
    client, live, monkeypatch
):
    # COMPLIANCE.md (CCPA): "deletion | tell service providers and third parties it was shared
    # with | deletion plan with notices | 11 CCR 7022"; DESIGN.md: "customers and cards live on
    # the clinic's account"; "Network calls (Stripe, ...) happen outside an open write
    # transaction: ... commit the intent with its idempotency key, call out, record the outcome"
    from core.clients.models import Client
    from core.payments import stripe_api
    from tests.payment_flows import scoped

    ctx = _deletion_at_alpha(client, live)
    customer = ctx["customer"]
    url = "/api/v1/clinics/alpha/data-recipients"

    def registered(name):
        data = {"name": name, "country": "US", "role": "recipient", "purpose": "results review"}
        response = client.post(url, json=data, headers=ctx["auth"])
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["id"]

    lab, elsewhere = registered("Skin Lab Inc"), registered("Never Sent Ltd")
    sent = client.post(
        f"{url}/{lab}/transfers",
        json={"client_id": ctx["client_id"], "purpose": "second opinion", "description": "notes"},
        headers=ctx["auth"],
    )
    assert sent.status_code == 201, sent.get_data(as_text=True)

    plan = client.get(
        f"/api/v1/clinics/alpha/clients/{ctx['client_id']}/deletion-plan", headers=ctx["auth"]
    ).get_json()
    listed = {(p["processor"], p["reference"], p["action"]) for p in plan["processors"]}
    assert listed >= {
        ("stripe", customer, "delete"),
        ("email_provider", "maya@example.com", "record"),
        ("sms_provider", "+14085550101", "record"),
    }
    assert next(p for p in plan["processors"] if p["processor"] == "stripe")["account"] == (
        "acct_alpha"
    )
    recipients = [p for p in plan["processors"] if p["processor"] == "data_recipient"]
    assert [(p["data_recipient_id"], p["name"], p["action"]) for p in recipients] == [
        (lab, "Skin Lab Inc (US)", "notify")
    ]
    assert elsewhere not in [p["data_recipient_id"] for p in recipients]
    assert _deleted_at_stripe(live, customer) == []  # a plan changes nothing

    # Stripe is called with no database transaction open: the deletion is committed first.
    delete_customer = stripe_api.delete_customer
    open_during_call = []

    def watched(account, customer_id):
        open_during_call.append(db.session().in_transaction())
        return delete_customer(account, customer_id)

    monkeypatch.setattr(stripe_api, "delete_customer", watched)
    request_id = _request_deletion(client, ctx)
    done = verify_and_complete(client, ctx, request_id, ctx["client_id"])
    assert done.status_code == 200, done.get_data(as_text=True)
    body = done.get_json()
    assert open_during_call == [False]
    assert _deleted_at_stripe(live, customer) == ["acct_alpha"]
    notices = {n["processor"]: n for n in body["processor_notices"]}
    assert set(notices) == {"stripe", "email_provider", "sms_provider", "data_recipient"}
    assert (notices["stripe"]["status"], notices["stripe"]["reference"]) == ("deleted", customer)
    assert notices["stripe"]["sent_at"] and notices["stripe"]["attempted_at"]
    assert f"deleted the customer {customer}" in notices["stripe"]["outcome"]
    assert notices["email_provider"]["status"] == notices["sms_provider"]["status"] == "recorded"
    assert notices["data_recipient"]["status"] == "pending"
    assert all(n["recorded_at"] for n in notices.values())
    assert {p["processor"] for p in body["result"]["processors"]} == set(notices)
    # The card went with the customer: nothing is left to charge.
    assert (
        scoped(live["app"], lambda: db.session.get(Client, ctx["client_id"]).stripe_customer_id)
        is None
    )

    # The clinic tells the recipient itself, and records when.
    told = client.post(
        f"/api/v1/clinics/alpha/privacy-requests/{request_id}/processor-notices/"
        f"{notices['data_recipient']['id']}/sent",
        json={"outcome": "Emailed Skin Lab's privacy officer."},
        headers=ctx["auth"],
    ).get_json()
    assert (told["status"], told["outcome"]) == ("sent", "Emailed Skin Lab's privacy officer.")
    assert told["sent_at"]
    # Stripe's notice is the platform's to carry out, not one to tick off by hand.
    assert_problem(
        client.post(
            f"/api/v1/clinics/alpha/privacy-requests/{request_id}/processor-notices/"
            f"{notices['stripe']['id']}/sent",
            json={},
            headers=ctx["auth"],
        ),
        409,
        "notice-carried-out-by-platform",
    )
    shown = client.get(
        f"/api/v1/clinics/alpha/privacy-requests/{request_id}", headers=ctx["auth"]
    ).get_json()
    assert [n["status"] for n in shown["processor_notices"]] == [
        "deleted",
        "recorded",
        "recorded",
        "sent",
    ]


def test_a_customer_deletion_whose_answer_was_lost_is_retried_without_failing(
    client, live, monkeypatch
):
    # DESIGN.md: "call out, record the outcome in a second short transaction"; a retry of a
    # deletion Stripe already made must not fail on the customer being gone.
    import stripe

    from core.payments import stripe_api

    ctx = _deletion_at_alpha(client, live)
    customer = ctx["customer"]
    delete_customer = stripe_api.delete_customer

    def answer_lost(account, customer_id):
        delete_customer(account, customer_id)  # Stripe deletes it ...
        raise stripe.APIConnectionError("Connection reset by peer")  # ... and the answer is lost

    monkeypatch.setattr(stripe_api, "delete_customer", answer_lost)
    request_id = _request_deletion(client, ctx)
    done = verify_and_complete(client, ctx, request_id, ctx["client_id"]).get_json()
    stripe_notice = next(n for n in done["processor_notices"] if n["processor"] == "stripe")
    assert (stripe_notice["status"], stripe_notice["sent_at"]) == ("failed", None)
    assert stripe_notice["attempted_at"] and stripe_notice["outcome"].startswith("Not deleted yet")

    monkeypatch.setattr(stripe_api, "delete_customer", delete_customer)
    retried = client.post(
        f"/api/v1/clinics/alpha/privacy-requests/{request_id}/processor-notices/retry",
        headers=ctx["auth"],
    )
    assert retried.status_code == 200, retried.get_data(as_text=True)
    stripe_notice = next(
        n for n in retried.get_json()["processor_notices"] if n["processor"] == "stripe"
    )
    assert stripe_notice["status"] == "deleted" and stripe_notice["sent_at"]
    assert "deleted before" in stripe_notice["outcome"]
    assert _deleted_at_stripe(live, customer) == ["acct_alpha", "acct_alpha"]
    # Done is done: another retry asks Stripe nothing.
    client.post(
        f"/api/v1/clinics/alpha/privacy-requests/{request_id}/processor-notices/retry",
        headers=ctx["auth"],
    )
    assert len(_deleted_at_stripe(live, customer)) == 2


def test_a_customer_who_still_owes_a_fee_is_kept_until_it_is_settled(client, live):
    # CCPA (Civ 1798.105(d)(1)): a business need not delete what it needs to complete the
    # transaction or perform its contract with the consumer; the fee the client agreed to is
    # collected from the card on file, so the Stripe customer is kept, and says why.
    from core.bookings.models import BookingCharge
    from tests.payment_flows import scoped

    ctx = _deletion_at_alpha(client, live)
    customer = ctx["customer"]

    def owe(status):
        def change():
            charge = db.session.scalar(
                select(BookingCharge).where(BookingCharge.kind == "no_show_fee")
            )
            if charge is None:
                charge = BookingCharge(
                    booking_id=ctx["booking_id"],
                    kind="no_show_fee",
                    amount_minor=7500,
                    currency="USD",
                )
                db.session.add(charge)
            charge.status = status
            db.session.commit()

        scoped(live["app"], change)

    owe("owed")
    plan = client.get(
        f"/api/v1/clinics/alpha/clients/{ctx['client_id']}/deletion-plan", headers=ctx["auth"]
    ).get_json()
    stripe_item = next(p for p in plan["processors"] if p["processor"] == "stripe")
    assert stripe_item["action"] == "keep"
    assert "no show fee of $75.00 is still owed" in stripe_item["detail"]
    request_id = _request_deletion(client, ctx)
    done = verify_and_complete(client, ctx, request_id, ctx["client_id"]).get_json()
    kept = next(n for n in done["processor_notices"] if n["processor"] == "stripe")
    assert (kept["status"], kept["sent_at"]) == ("kept", None)
    assert "still owed" in kept["outcome"]
    assert _deleted_at_stripe(live, customer) == []

    retry = f"/api/v1/clinics/alpha/privacy-requests/{request_id}/processor-notices/retry"
    client.post(retry, headers=ctx["auth"])
    assert _deleted_at_stripe(live, customer) == []  # still owed: still kept
    owe("waived")
    after = client.post(retry, headers=ctx["auth"]).get_json()
    deleted = next(n for n in after["processor_notices"] if n["processor"] == "stripe")
    assert (deleted["status"], deleted["action"]) == ("deleted", "delete")
    assert _deleted_at_stripe(live, customer) == ["acct_alpha"]
