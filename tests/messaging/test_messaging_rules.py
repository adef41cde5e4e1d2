"""Texts clients send back (STOP, START, HELP, CANCEL, their own words), quiet hours and GPC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from core.accounts.models import Role
from core.bookings.models import Booking, BookingStatus
from core.clients.models import Consent, ConsentKind
from core.extensions import db
from core.messaging.delivery import deliver_due
from core.messaging.models import OutboxMessage
from core.privacy.models import PrivacyRequest
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.helpers import (
    assert_problem,
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
)

NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # Monday 2 March 2026, 10:00 in Los Angeles
TOKEN = "twilio-test-auth-token"
PHONE = "+14085550101"
SMS_CONSENTS = ("transactional_sms", "marketing_sms")


class RecordingSms:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str:
        self.sent.append((to, body))
        return "SM1"


@pytest.fixture
def clinic(app):
    app.config["TWILIO_AUTH_TOKEN"] = TOKEN
    sms = RecordingSms()
    app.extensions["clinic_saas.sms"] = sms
    with time_machine.travel(NOW, tick=False) as traveller:
        with app.app_context():
            make_clinic("alpha", enabled_plugins=["ccpa"], contact_phone="+14085550000")
            make_staff("alpha", "owner@alpha.example.com", Role.owner)
            provider = make_provider("alpha", "kim@alpha.example.com")
            service = make_service("alpha", "facial", provider_ids=[provider])
        token = issue_token(app, "alpha", "owner@alpha.example.com")
        yield {
            "app": app,
            "auth": {"Authorization": f"Bearer {token}"},
            "sms": sms,
            "service": service,
            "provider": provider,
            "clock": traveller,
        }


def new_client(http, ctx, consents=SMS_CONSENTS, **fields):
    body = {"legal_first_name": "Maya", "legal_last_name": "Lopez", "phone": PHONE, **fields}
    client_id = http.post(
        "/api/v1/clinics/alpha/clients", json=body, headers=ctx["auth"]
    ).get_json()["id"]
    for kind in consents:
        response = http.post(
            f"/api/v1/clinics/alpha/clients/{client_id}/consents",
            json={
                "kind": kind,
                "text": "You agree to receive appointment reminders and occasional marketing texts.",
                "text_version": "2026-01",
                "method": "electronic",
                "phone": PHONE,
            },
            headers=ctx["auth"],
        )
        assert response.status_code == 201, response.get_data(as_text=True)
    return client_id


def main_location(app):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            return db.session.scalar(select(Location.id).where(Location.slug == "main"))


def text_in(http, body, *, sender=PHONE, forge=False):
    url = "http://localhost/webhooks/sms/alpha"
    form = {"From": sender, "To": "+14085550000", "Body": body, "MessageSid": "SM123"}
    signature = RequestValidator("wrong" if forge else TOKEN).compute_signature(url, form)
    return http.post(url, data=form, headers={"X-Twilio-Signature": signature})


def active_sms(app, client_id):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            return sorted(
                c.kind.value
                for c in db.session.scalars(
                    select(Consent).where(
                        Consent.client_id == client_id,
                        Consent.kind.in_(
                            [ConsentKind.transactional_sms, ConsentKind.marketing_sms]
                        ),
                        Consent.revoked_at.is_(None),
                    )
                )
            )


def test_a_forged_webhook_is_refused_and_changes_nothing(app, client, clinic):
    client_id = new_client(client, clinic)
    assert_problem(text_in(client, "STOP", forge=True), 403, "bad-signature")
    assert active_sms(app, client_id) == sorted(SMS_CONSENTS)


def test_stop_then_start(app, client, clinic):
    # California Aesthetics: "You can opt-out of receiving SMS messages at any time by replying
    # "STOP" to any message you receive from us."  COMPLIANCE.md: "START/UNSTOP/YES re-subscribe";
    # "opting out of marketing must not silently stop appointment reminders, and vice versa be
    # explicit": the reply says both stopped.
    client_id = new_client(client, clinic)
    stop = text_in(client, "Stop")
    assert stop.status_code == 200 and stop.mimetype == "application/xml"
    reply = stop.get_data(as_text=True)
    assert "no more texts" in reply and "appointment reminders" in reply and "offers" in reply
    assert active_sms(app, client_id) == []
    start = text_in(client, "START").get_data(as_text=True)
    assert "resubscribed to appointment reminders and offers" in start
    assert active_sms(app, client_id) == sorted(SMS_CONSENTS)


def test_help_names_the_clinic_frequency_rates_and_contact(client, clinic):
    # COMPLIANCE.md: "HELP names the clinic, frequency, "msg & data rates may apply", contact";
    # "reply to STOP and HELP even for non-subscribers"
    reply = text_in(client, "HELP", sender="+14085559999").get_data(as_text=True)
    for words in (
        "Alpha",
        "Msg frequency varies",
        "Msg &amp; data rates may apply",
        "+14085550000",
    ):
        assert words in reply


def test_cancel_is_an_opt_out_and_never_cancels_the_appointment(app, client, clinic):
    # COMPLIANCE.md: ""CANCEL" | an opt-out keyword at carriers | never use "reply CANCEL to
    # cancel your appointment""
    client_id = new_client(client, clinic)
    location_id = main_location(app)
    booked = client.post(
        "/api/v1/clinics/alpha/bookings",
        json={
            "client_id": client_id,
            "service_id": clinic["service"],
            "location_id": location_id,
            "starts_at": "2026-03-04T10:00:00-08:00",
        },
        headers=clinic["auth"],
    ).get_json()
    assert "unsubscribed" in text_in(client, "CANCEL").get_data(as_text=True)
    assert active_sms(app, client_id) == []
    with app.app_context():
        clinic_row = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic_row):
            assert db.session.get(Booking, booked["id"]).status == BookingStatus.confirmed


def test_a_free_text_opt_out_goes_to_review_and_is_honoured_when_confirmed(app, client, clinic):
    # COMPLIANCE.md: "revocation | honour within 10 business days; "stop, quit, end, revoke, opt
    # out, cancel, unsubscribe" in free text also count | keyword match plus review queue"
    client_id = new_client(client, clinic)
    reply = text_in(client, "Please don't text me anymore, I want to opt out")
    assert "<Message>" not in reply.get_data(as_text=True)
    assert active_sms(app, client_id) == sorted(SMS_CONSENTS)  # not yet: staff read it first
    queue = client.get(
        "/api/v1/clinics/alpha/sms-opt-out-reviews", headers=clinic["auth"]
    ).get_json()
    assert [r["client_id"] for r in queue["items"]] == [client_id]
    assert queue["items"][0]["honour_by"].startswith("2026-03-17")  # 10 business days
    review = queue["items"][0]["id"]
    decided = client.post(
        f"/api/v1/clinics/alpha/sms-opt-out-reviews/{review}/decision",
        json={"decision": "opted_out"},
        headers=clinic["auth"],
    )
    assert decided.status_code == 200
    assert active_sms(app, client_id) == []
    assert (
        text_in(client, "See you Tuesday!").get_data(as_text=True).endswith("<Response></Response>")
    )


def _marketing(http, ctx, client_ids, send_at):
    response = http.post(
        "/api/v1/clinics/alpha/marketing-messages",
        json={
            "client_ids": client_ids,
            "channel": "sms",
            "body": "Spring offer: 20% off peels.",
            "campaign": "spring",
            "send_at": send_at,
        },
        headers=ctx["auth"],
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_a_marketing_text_due_at_2045_waits_for_morning_where_the_client_is(app, client, clinic):
    # COMPLIANCE.md: "quiet hours | no marketing texts before 8 am or after 9 pm recipient local
    # time | use the client's timezone, else the strictest"
    in_new_york = new_client(client, clinic, timezone="America/New_York")
    in_la = new_client(client, clinic, phone="+14085550102", timezone="America/Los_Angeles")
    no_consent = new_client(client, clinic, consents=("transactional_sms",), phone="+14085550103")
    queued = _marketing(
        client, clinic, [in_new_york, in_la, no_consent], "2026-03-02T20:45:00-08:00"
    )
    assert queued == {
        "queued": [in_new_york, in_la],
        "already_queued": [],
        "not_consented": [no_consent],
    }
    clinic["clock"].move_to(datetime(2026, 3, 3, 4, 45, tzinfo=UTC))  # 20:45 in LA, 23:45 in NY
    with app.app_context():
        report = deliver_due()
    assert (report.sent, report.deferred, report.skipped) == (1, 1, 0), report
    assert [to for to, _ in clinic["sms"].sent] == ["+14085550102"]
    assert clinic["sms"].sent[0][1].endswith("Reply STOP to opt out.")
    with app.app_context():
        clinic_row = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic_row):
            waiting = db.session.scalar(
                select(OutboxMessage).where(OutboxMessage.client_id == in_new_york)
            )
            # 08:00 the next morning in New York.
            assert waiting.due_at == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)
            assert waiting.status.value == "pending"
    clinic["clock"].move_to(datetime(2026, 3, 3, 13, 0, tzinfo=UTC))
    with app.app_context():
        assert deliver_due().sent == 1


def test_without_a_timezone_the_strictest_zone_of_the_number_applies(app, client, clinic):
    # "else the strictest": a +1 808 number (Hawaii) at 20:45 in Los Angeles is 18:45 in Honolulu,
    # but the client's zone is not known and the number's is Hawaii only: it may go.
    hawaii = new_client(client, clinic, phone="+18085550100")
    _marketing(client, clinic, [hawaii], "2026-03-02T20:45:00-08:00")
    clinic["clock"].move_to(datetime(2026, 3, 3, 4, 45, tzinfo=UTC))
    with app.app_context():
        assert deliver_due().sent == 1


# --- Global Privacy Control ----------------------------------------------------------------------


def test_gpc_is_carried_over_when_the_browsers_user_is_known(app, client, clinic):
    # COMPLIANCE.md: "opt-out of sale/sharing | ... honour Global Privacy Control (`Sec-GPC: 1`)
    # for the browser and the known consumer" (11 CCR 7025)
    location_id = main_location(app)
    browsing = client.get(
        "/api/v1/clinics/alpha/availability",
        query_string={"service_id": clinic["service"], "from": "2026-03-04", "to": "2026-03-04"},
        headers={"Sec-GPC": "1"},
    )
    assert browsing.status_code == 200
    # Later, in the same browser, without the header, the visitor books and becomes known.
    booked = client.post(
        "/api/v1/clinics/alpha/bookings/online",
        json={
            "client": {
                "legal_first_name": "Maya",
                "legal_last_name": "Lopez",
                "email": "maya@example.com",
                "phone": "(408) 555-0101",
                "date_of_birth": "1991-06-15",
            },
            "service_id": clinic["service"],
            "location_id": location_id,
            "starts_at": "2026-03-04T10:00:00-08:00",
        },
    )
    assert booked.status_code == 201, booked.get_data(as_text=True)
    client_id = booked.get_json()["booking"]["client_id"]
    with app.app_context():
        clinic_row = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic_row):
            opt_out = db.session.scalar(
                select(PrivacyRequest).where(PrivacyRequest.client_id == client_id)
            )
            assert (opt_out.kind, opt_out.channel, opt_out.status.value) == (
                "opt_out_sale_sharing",
                "gpc",
                "completed",
            )


def test_a_campaign_sent_twice_reaches_nobody_twice(client, clinic):
    client_id = new_client(client, clinic)
    first = _marketing(client, clinic, [client_id], "2026-03-02T11:00:00-08:00")
    second = _marketing(client, clinic, [client_id], "2026-03-02T11:00:00-08:00")
    assert (first["queued"], second["queued"], second["already_queued"]) == (
        [client_id],
        [],
        [client_id],
    )


def test_hipaa_marketing_needs_written_authorisation(app, client, clinic):
    # COMPLIANCE.md (HIPAA): "marketing | written authorisation before health data is used for
    # marketing | consent record checked before a marketing send" (164.508(a)(3))
    with app.app_context():
        clinic_row = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic_row.enabled_plugins = ["ccpa", "hipaa_aligned"]
        db.session.commit()
    electronic = new_client(client, clinic)
    written = new_client(client, clinic, consents=(), phone="+14085550109")
    response = client.post(
        f"/api/v1/clinics/alpha/clients/{written}/consents",
        json={
            "kind": "marketing_sms",
            "text": "I authorise Alpha to use my information to send me offers.",
            "text_version": "2026-01",
            "method": "written",
            "phone": "+14085550109",
        },
        headers=clinic["auth"],
    )
    assert response.status_code == 201
    queued = _marketing(client, clinic, [electronic, written], "2026-03-02T11:00:00-08:00")
    assert (queued["queued"], queued["not_consented"]) == ([written], [electronic])
