"""Disputed fees and deposits answered with the evidence the platform stored, through Stripe's dispute API.

Against the local Stripe server: the payment is real on localstripe; the dispute,
which localstripe lacks, is the proxy's (``open_dispute``), and its
``charge.dispute.*`` events reach the app signed as Stripe signs them.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select

from core.accounts.models import Role
from core.bookings.models import BookingCharge, PolicyAcceptance, PolicyVersion
from core.clock import as_utc
from core.extensions import db
from core.payments.models import Dispute, Payment
from core.tenancy.models import Clinic
from tests.helpers import assert_problem, issue_token, make_clinic, make_staff, set_clinic_settings
from tests.local_days import clinic_day, local_time
from tests.payment_flows import (
    DEPOSIT,
    GUEST,
    ledger_of,
    pay_in_browser,
    scoped,
    stripe_requests_watched,
    wait_for,
)

API = "/api/v1/clinics/alpha"
# "cancelling or missing within 48 hours charges the card on file" (Bijoux), as a clinic with a
# 96-hour window sets it, so that cancelling a booking three days ahead is late.
LATE_FEE = {**DEPOSIT, "cancellation_window_hours": 96, "late_cancellation_fee": "75.00"}
CLIENT_IP = "203.0.113.7"
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1"
#: Health data the client gave the clinic: none of it may reach the card network.
HEALTH = ("latex-allergy-0417", "Botox 20 units glabella", "history-of-keloids")


def _late_fee_disputed(client, live, *, due_in=timedelta(days=7)) -> dict:
    """A client books online accepting the policy, pays the deposit, cancels late through their
    link and is charged the fee; then their bank disputes the fee. Returns the dispute."""
    from core.jobs.tasks import charge_fees
    from core.messaging.delivery import deliver_due

    with live["app"].app_context():
        set_clinic_settings("alpha", policy=LATE_FEE)
    zone = "America/Los_Angeles"
    booked = client.post(
        f"{API}/bookings/online",
        json={
            "client": GUEST,
            "service_id": live["service"],
            "location_id": live["location"],
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
            "accept_policy": True,
        },
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": CLIENT_IP},
    )
    assert booked.status_code == 201, booked.get_data(as_text=True)
    body = booked.get_json()
    pay_in_browser(live, body["payment"])
    booking_id = body["booking"]["id"]
    wait_for(lambda: _booking_status(live, booking_id) == "confirmed")
    client_id = body["booking"]["client_id"]
    for path, sent in (
        ("intake", {"answers": {"allergies": [HEALTH[0]], "medical_history": HEALTH[2]}}),
        ("notes", {"kind": "treatment", "body": HEALTH[1]}),
    ):
        made = client.post(f"{API}/clients/{client_id}/{path}", json=sent, headers=live["auth"])
        assert made.status_code == 201, made.get_data(as_text=True)
    cancelled = client.post(
        f"{API}/self-service/{body['self_service_token']}/cancellation",
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": CLIENT_IP},
    )
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    with live["app"].app_context():
        assert charge_fees() == 1
        deliver_due()  # the confirmation and cancellation emails go out
    intent = scoped(
        live["app"],
        lambda: db.session.scalar(
            select(Payment.stripe_payment_intent_id).where(
                Payment.purpose == "late_cancellation_fee"
            )
        ),
    )
    dispute = live["stripe"].open_dispute(
        intent, account="acct_alpha", reason="credit_not_processed", due_in=due_in
    )
    return {**dispute, "booking_id": booking_id}


def _booking_status(live, booking_id):
    from core.bookings.models import Booking

    return scoped(live["app"], lambda: db.session.get(Booking, booking_id).status.value)


def _deliver(live, kind, dispute, event_id=None):
    status, answer = live["stripe"].send_dispute_event(kind, dispute["id"], event_id)
    assert status == 200, answer
    return json.loads(answer)["outcome"]


def _row(live, dispute) -> Dispute:
    def read():
        row = db.session.scalars(
            select(Dispute).where(Dispute.stripe_dispute_id == dispute["id"])
        ).one()
        db.session.expunge(row)
        return row

    return scoped(live["app"], read)


def _sent(live, dispute) -> list[dict[str, str]]:
    return live["stripe"].dispute_submissions.get(dispute["id"], [])


def _set_evidence(client, live, choice):
    response = client.patch(API, json={"dispute_evidence": choice}, headers=live["auth"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["dispute_evidence"] == choice


def _staff_auth(live, email, role):
    with live["app"].app_context():
        make_staff("alpha", email, role)
    return {"Authorization": f"Bearer {issue_token(live['app'], 'alpha', email)}"}


def test_a_disputed_late_cancellation_fee_is_answered_once_with_the_policy_the_client_accepted(
    client, live
):
    # DESIGN.md: policy decisions name "the clause of the clinic's policy that justifies it ...
    # so a fee or refusal can be explained to the client and defended in a dispute".
    from core.jobs.tasks import submit_dispute_evidence

    _set_evidence(client, live, "submit")
    dispute = _late_fee_disputed(client, live)
    assert "dispute opened" in _deliver(live, "created", dispute, "evt_dp_created")
    assert _row(live, dispute).evidence_status.value == "queued"

    with live["app"].app_context(), stripe_requests_watched() as calls:
        assert submit_dispute_evidence() == 1
    # Stripe is asked with no write open: the claim was committed first.
    assert [path for path, writing in calls if writing] == []
    assert [path for path, _ in calls] == [f"disputes/{dispute['id']}"]

    (sent,) = _sent(live, dispute)
    posted = live["stripe"].calls_to(f"/v1/disputes/{dispute['id']}")
    assert [(c.account, c.idempotency_key) for c in posted] == [
        ("acct_alpha", f"dispute-evidence:{dispute['id']}")
    ]
    assert posted[0].params["submit"] == ["true"]

    def stored():
        acceptance = db.session.scalars(select(PolicyAcceptance)).one()
        version = db.session.get(PolicyVersion, acceptance.policy_version_id)
        fee = db.session.scalars(
            select(BookingCharge).where(BookingCharge.kind == "late_cancellation_fee")
        ).one()
        return acceptance.accepted_at, version.clauses, fee.clause_text

    accepted_at, clauses, fee_clause = scoped(live["app"], stored)
    disclosure = sent["cancellation_policy_disclosure"]
    assert as_utc(accepted_at).strftime("%Y-%m-%d %H:%M:%S UTC") in disclosure
    assert CLIENT_IP in disclosure and BROWSER in disclosure
    assert all(clause["text"] in disclosure for clause in clauses)
    assert fee_clause and fee_clause in sent["cancellation_rebuttal"]
    assert (
        "cancelled by the client, through their own booking link" in sent["cancellation_rebuttal"]
    )
    assert sent["customer_purchase_ip"] == CLIENT_IP
    assert sent["customer_name"] == "Maya Lopez"
    assert sent["customer_email_address"] == "maya@example.com"
    assert sent["service_date"] == clinic_day("America/Los_Angeles", 3).isoformat()
    assert "$75.00" in sent["uncategorized_text"] and "Facial" in sent["product_description"]
    log = sent["access_activity_log"]
    assert "booking made by the client" in log
    assert "booking cancelled by the client, through their own booking link" in log
    assert "sent to the client by email" in log
    # Never health data: intake answers and treatment notes stay with the clinic.
    assert not [h for h in HEALTH for text in sent.values() if h in text]

    # A replayed event, a later update and another job run send nothing more.
    assert _deliver(live, "created", dispute, "evt_dp_created") == "already applied"
    _deliver(live, "updated", dispute, "evt_dp_updated")
    with live["app"].app_context():
        assert submit_dispute_evidence() == 0
    assert len(_sent(live, dispute)) == 1
    row = _row(live, dispute)
    assert (row.evidence_status.value, row.status) == ("submitted", "under_review")
    assert row.submitted_by_user_id is None and row.submitted_at is not None

    # The bank decides for the clinic: the ledger and the dispute say so, once.
    live["stripe"].close_dispute(dispute["id"], "won")
    assert "won" in _deliver(live, "closed", dispute, "evt_dp_closed")
    _deliver(live, "closed", dispute, "evt_dp_closed")
    assert [e for e in ledger_of(live) if e[0].startswith("dispute")] == [
        ("dispute_opened", 7500),
        ("dispute_won", 7500),
    ]
    row = _row(live, dispute)
    assert (row.status, row.outcome, row.booking_id) == ("won", "won", dispute["booking_id"])


def test_a_submission_whose_answer_was_lost_is_sent_again_under_its_key_and_counted_once(
    client, live
):
    # DESIGN.md: "commit the intent with its idempotency key, call out, record the outcome in a
    # second short transaction (Stripe's idempotency key makes the retry of that call safe)".
    import time_machine

    from core import clock
    from core.jobs.tasks import submit_dispute_evidence

    _set_evidence(client, live, "submit")
    dispute = _late_fee_disputed(client, live)
    _deliver(live, "created", dispute)
    for _ in range(3):  # the first try and the job's two retries (STRIPE_JOB_RETRIES)
        live["stripe"].fail_next("/v1/disputes/", 500)
    with live["app"].app_context():
        assert submit_dispute_evidence() == 0
    assert _row(live, dispute).evidence_status.value == "submitting"
    with live["app"].app_context():
        assert submit_dispute_evidence() == 0  # a claim this fresh may still be answered
    later = time_machine.travel(clock.now() + timedelta(minutes=5), tick=False)
    with later, live["app"].app_context():
        assert submit_dispute_evidence() == 1
    keys = {c.idempotency_key for c in live["stripe"].calls_to(f"/v1/disputes/{dispute['id']}")}
    assert keys == {f"dispute-evidence:{dispute['id']}"}
    assert len(_sent(live, dispute)) == 1
    assert _row(live, dispute).evidence_status.value == "submitted"


def test_a_clinic_reviewing_its_evidence_holds_it_until_a_manager_submits_it(client, live):
    # The clinic's setting, by default: "review" holds the evidence for a manager to read.
    from core.jobs.tasks import submit_dispute_evidence

    dispute = _late_fee_disputed(client, live)
    _deliver(live, "created", dispute)
    with live["app"].app_context():
        assert submit_dispute_evidence() == 0
    assert _sent(live, dispute) == []

    manager = _staff_auth(live, "manager@alpha.example.com", Role.manager)
    desk = _staff_auth(live, "desk@alpha.example.com", Role.front_desk)
    listed = client.get(f"{API}/disputes", headers=manager).get_json()
    assert (listed["count"], listed["total"]) == (1, 1)
    item = listed["items"][0]
    assert (item["evidence_status"], item["status"], item["amount"]["amount"]) == (
        "held",
        "needs_response",
        7500,
    )
    assert "evidence" not in item
    url = f"{API}/disputes/{item['id']}"
    detail = client.get(url, headers=manager).get_json()
    assert CLIENT_IP in detail["evidence"]["cancellation_policy_disclosure"]

    for asked in (
        client.get(f"{API}/disputes", headers=desk),
        client.get(url, headers=desk),
        client.post(f"{url}/submit", json={}, headers=desk),
    ):
        assert_problem(asked, 403)
    assert _sent(live, dispute) == []

    note = "The client was reminded of the 96-hour window by phone on the day before."
    submitted = client.post(
        f"{url}/submit",
        json={"evidence": {"uncategorized_text": note, "customer_email_address": ""}},
        headers=manager,
    )
    assert submitted.status_code == 200, submitted.get_data(as_text=True)
    body = submitted.get_json()
    assert (body["evidence_status"], body["submitted_by"]) == ("submitted", "staff")
    assert body["submitted_by_user_id"] is not None
    (sent,) = _sent(live, dispute)
    assert sent["uncategorized_text"] == note
    assert "customer_email_address" not in sent  # left out, as the manager chose
    assert BROWSER in sent["cancellation_policy_disclosure"]

    again = client.post(f"{url}/submit", json={}, headers=manager)
    assert_problem(again, 409, "dispute-evidence-submitted")
    assert len(_sent(live, dispute)) == 1


def test_edits_name_only_stripes_text_fields(client, live):
    dispute = _late_fee_disputed(client, live)
    _deliver(live, "created", dispute)
    row = _row(live, dispute)
    refused = client.post(
        f"{API}/disputes/{row.id}/submit",
        json={"evidence": {"cancellation_policy": "file_123"}},
        headers=live["auth"],
    )
    assert_problem(refused, 422)
    assert _sent(live, dispute) == []


def test_evidence_past_its_due_date_is_refused_and_nothing_is_sent(client, live):
    dispute = _late_fee_disputed(client, live, due_in=timedelta(hours=-1))
    _deliver(live, "created", dispute)
    row = _row(live, dispute)
    late = client.post(f"{API}/disputes/{row.id}/submit", json={}, headers=live["auth"])
    assert_problem(late, 409, "dispute-past-due")
    assert _sent(live, dispute) == []
    assert live["stripe"].calls_to("/v1/disputes/") == []


def test_another_clinic_cannot_see_or_answer_the_dispute(client, live):
    dispute = _late_fee_disputed(client, live)
    _deliver(live, "created", dispute)
    row = _row(live, dispute)
    with live["app"].app_context():
        make_clinic("beta", stripe_account_id="acct_beta")
        make_staff("beta", "owner@beta.example.com")
    beta = {"Authorization": f"Bearer {issue_token(live['app'], 'beta', 'owner@beta.example.com')}"}
    assert client.get("/api/v1/clinics/beta/disputes", headers=beta).get_json()["items"] == []
    assert_problem(client.get(f"/api/v1/clinics/beta/disputes/{row.id}", headers=beta), 404)
    assert_problem(
        client.post(f"/api/v1/clinics/beta/disputes/{row.id}/submit", json={}, headers=beta), 404
    )
    # Beta's token means nothing at alpha's address.
    assert_problem(client.get(f"{API}/disputes/{row.id}", headers=beta), 401)
    assert _sent(live, dispute) == []


def test_a_dispute_of_a_payment_with_no_booking_behind_it_has_no_evidence_to_send(client, live):
    # Only a booking's deposit, prepayment or fee has stored evidence; anything else is answered
    # from the Stripe dashboard, as the clinic's alert says.
    import time

    from tests.stripe_server import sign

    event = json.dumps(
        {
            "id": "evt_unknown_payment",
            "object": "event",
            "type": "charge.dispute.created",
            "account": "acct_alpha",
            "created": int(time.time()),
            "data": {
                "object": {
                    "id": "dp_elsewhere",
                    "object": "dispute",
                    "amount": 1200,
                    "currency": "usd",
                    "payment_intent": "pi_not_ours",
                    "status": "needs_response",
                    "reason": "fraudulent",
                    "evidence_details": {"due_by": int(time.time()) + 86400},
                }
            },
        }
    )
    answer = client.post(
        "/webhooks/stripe",
        data=event,
        headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    row = _row(live, {"id": "dp_elsewhere"})
    assert (row.evidence_status.value, row.evidence) == ("no_evidence", None)
    empty = client.post(f"{API}/disputes/{row.id}/submit", json={}, headers=live["auth"])
    assert_problem(empty, 409, "dispute-evidence-empty")

    def alert():
        from core.messaging.models import OutboxMessage

        return db.session.scalars(
            select(OutboxMessage.details).where(OutboxMessage.dedupe_key == "dispute:dp_elsewhere")
        ).one()

    assert "Stripe dashboard" in str(scoped(live["app"], alert))


def test_the_clinic_setting_defaults_to_review(app):
    with app.app_context():
        clinic = db.session.get(Clinic, make_clinic("gamma"))
        assert clinic.dispute_evidence == "review"


def test_erasing_a_clients_bookings_keeps_the_dispute_and_drops_its_evidence(client, live):
    from core.bookings.models import Booking
    from core.clients.models import Client
    from core.hooks.decisions import RecordKind
    from core.privacy.services.deletion import _purge
    from core.unit_of_work import unit_of_work

    dispute = _late_fee_disputed(client, live)
    _deliver(live, "created", dispute, "evt_dp_erase")
    assert _row(live, dispute).evidence["customer_email_address"]

    def erase():
        booking = db.session.get_one(Booking, dispute["booking_id"])
        with unit_of_work():
            _purge(
                db.session.get_one(Client, booking.client_id),
                RecordKind.financial,
                identity_kept=True,
            )
        return True

    # The bookings and payments go; the dispute's record stays, naming them by id.
    assert scoped(live["app"], erase)
    row = _row(live, dispute)
    assert row.evidence is None
    assert row.booking_id == dispute["booking_id"] and row.amount_minor == dispute["amount"]
    assert scoped(live["app"], lambda: db.session.get(Booking, dispute["booking_id"])) is None


def test_an_inquiry_withdraws_nothing_until_it_becomes_a_dispute(client, live):
    dispute = _late_fee_disputed(client, live)
    live["stripe"].close_dispute(dispute["id"], "warning_needs_response")
    assert _deliver(live, "created", dispute, "evt_inquiry") == "inquiry recorded"
    kinds = [kind for kind, _ in ledger_of(live) if kind.startswith("dispute")]
    assert kinds == []
    assert _row(live, dispute).status == "warning_needs_response"
    live["stripe"].close_dispute(dispute["id"], "needs_response")
    assert "dispute opened" in _deliver(live, "updated", dispute, "evt_escalated")
    kinds = [kind for kind, _ in ledger_of(live) if kind.startswith("dispute")]
    assert kinds == ["dispute_opened"]
