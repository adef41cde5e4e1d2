"""Webhooks to a clinic's own systems: signed, retried, in order per booking, kept to the clinic."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from core import events
from core.extensions import db
from core.integrations.delivery import deliver_due
from core.integrations.models import WebhookEvent
from core.integrations.signing import sign, verify_signature
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from core.unit_of_work import unit_of_work
from tests.helpers import assert_problem
from tests.integrations.conftest import TOMORROW_TEN, Receiver


def register(http: Any, ctx: dict[str, Any], url: str, types: list[str]) -> dict[str, Any]:
    made = http.post(
        f"{ctx['api']}/webhook-endpoints",
        json={"url": url, "event_types": types, "description": "Front desk CRM"},
        headers=ctx["auth"],
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def new_client(http: Any, ctx: dict[str, Any], **fields: Any) -> int:
    made = http.post(
        f"{ctx['api']}/clients",
        json={
            "legal_first_name": "Maya",
            "legal_last_name": "Lopez",
            "email": "maya@example.com",
            "phone": "(408) 555-0101",
            "date_of_birth": "1991-06-15",
            **fields,
        },
        headers=ctx["auth"],
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()["id"]


def book(http: Any, ctx: dict[str, Any], starts_at: str = TOMORROW_TEN) -> dict[str, Any]:
    made = http.post(
        f"{ctx['api']}/bookings",
        json={
            "client_id": new_client(http, ctx),
            "service_id": ctx["service"],
            "location_id": ctx["location"],
            "starts_at": starts_at,
        },
        headers=ctx["auth"],
    )
    assert made.status_code == 201, made.get_json()
    return made.get_json()


def run_jobs(app: Flask) -> Any:
    with app.app_context():
        return deliver_due()


def log_of(http: Any, ctx: dict[str, Any], endpoint_id: int) -> list[dict[str, Any]]:
    found = http.get(
        f"{ctx['api']}/webhook-endpoints/{endpoint_id}/deliveries", headers=ctx["auth"]
    )
    assert found.status_code == 200, found.get_json()
    return found.get_json()["items"]


def test_a_booking_is_sent_signed_and_the_documented_check_verifies_it(
    app, client, alpha, receiver: Receiver
):
    endpoint = register(
        client, alpha, f"{receiver.url}/hooks", ["booking.created", "booking.confirmed"]
    )
    assert endpoint["secret"].startswith("whsec_")
    shown = client.get(f"{alpha['api']}/webhook-endpoints/{endpoint['id']}", headers=alpha["auth"])
    assert "secret" not in shown.get_json()  # shown once, at creation

    booking = book(client, alpha)
    run_jobs(app)
    run_jobs(app)  # the confirmation waits for the creation to be delivered

    assert receiver.types() == ["booking.created", "booking.confirmed"]
    first = receiver.requests[0]
    assert first.path == "/hooks"
    verify_signature(first.body, first.headers["ClinicSaas-Signature"], endpoint["secret"])
    with pytest.raises(ValueError):
        verify_signature(
            first.body + b" ", first.headers["ClinicSaas-Signature"], endpoint["secret"]
        )
    payload = json.loads(first.body)
    assert (
        payload["id"].startswith("evt_") and payload["id"] == first.headers["ClinicSaas-Event-Id"]
    )
    assert payload["type"] == "booking.created"
    assert payload["clinic"] == "alpha"
    assert payload["created"] == "2026-03-02T18:00:00Z"
    assert payload["data"]["booking"] == {
        "id": booking["id"],
        "status": "confirmed",
        "client_id": booking["client_id"],
        "service_id": alpha["service"],
        "provider_id": alpha["provider"],
        "location_id": alpha["location"],
        "starts_at": "2026-03-03T18:00:00Z",
        "ends_at": "2026-03-03T19:00:00Z",
        "source": "staff",
        "price": {"amount": 10000, "currency": "USD"},
    }
    log = log_of(client, alpha, endpoint["id"])
    assert [(d["event_type"], d["status"], d["attempts"]) for d in log] == [
        ("booking.confirmed", "succeeded", 1),
        ("booking.created", "succeeded", 1),
    ]
    assert log[1]["last_status_code"] == 200 and log[1]["event_id"] == payload["id"]


def test_the_documented_check_refuses_an_old_or_foreign_signature():
    body = b'{"id":"evt_1"}'
    verify_signature(body, sign(body, "whsec_a"), "whsec_a")
    with pytest.raises(ValueError, match="no signature matches"):
        verify_signature(body, sign(body, "whsec_b"), "whsec_a")
    with pytest.raises(ValueError, match="tolerance"):
        old = sign(body, "whsec_a", timestamp=1_000_000)
        verify_signature(body, old, "whsec_a")
    with pytest.raises(ValueError, match="no timestamp"):
        verify_signature(body, "v1=abc", "whsec_a")


def test_an_answer_of_500_is_retried_after_1_then_2_minutes_with_the_same_event_id(
    app, client, alpha, frozen, receiver: Receiver
):
    endpoint = register(client, alpha, receiver.url, ["booking.created"])
    receiver.answer = 500
    book(client, alpha)
    run_jobs(app)
    [first] = log_of(client, alpha, endpoint["id"])
    assert (first["status"], first["attempts"], first["last_status_code"]) == ("pending", 1, 500)
    assert first["next_attempt_at"] == "2026-03-02T18:01:00+00:00"

    run_jobs(app)  # not yet due
    assert len(receiver.requests) == 1
    frozen.shift(timedelta(minutes=1))
    run_jobs(app)
    [second] = log_of(client, alpha, endpoint["id"])
    assert (second["attempts"], second["next_attempt_at"]) == (2, "2026-03-02T18:03:00+00:00")

    receiver.answer = 204
    frozen.shift(timedelta(minutes=2))
    run_jobs(app)
    [done] = log_of(client, alpha, endpoint["id"])
    assert (done["status"], done["attempts"], done["last_status_code"]) == ("succeeded", 3, 204)
    assert done["last_error"] is None
    assert len({r.headers["ClinicSaas-Event-Id"] for r in receiver.requests}) == 1
    assert len(receiver.requests) == 3


def test_an_endpoint_that_does_not_answer_in_time_is_a_failure_retried(
    app, client, alpha, frozen, receiver: Receiver
):
    endpoint = register(client, alpha, receiver.url, ["booking.created"])
    receiver.hang = 2.0  # past the read timeout of 0.5 s
    book(client, alpha)
    run_jobs(app)
    [late] = log_of(client, alpha, endpoint["id"])
    assert late["status"] == "pending" and late["last_status_code"] is None
    assert "timed out" in late["last_error"]

    receiver.hang = 0
    frozen.shift(timedelta(minutes=1))
    run_jobs(app)
    [done] = log_of(client, alpha, endpoint["id"])
    assert (done["status"], done["attempts"]) == ("succeeded", 2)


def test_a_bookings_cancellation_is_not_sent_while_its_creation_is_retried(
    app, client, alpha, frozen, receiver: Receiver
):
    register(client, alpha, receiver.url, ["booking.created", "booking.cancelled"])
    receiver.answer = 500
    booking = book(client, alpha)
    run_jobs(app)  # the creation fails: its retry is a minute away
    frozen.shift(timedelta(seconds=30))
    cancelled = client.post(
        f"{alpha['api']}/bookings/{booking['id']}/cancellation",
        json={"by": "clinic"},
        headers=alpha["auth"],
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    receiver.answer = 200
    run_jobs(app)  # the cancellation is due, but its booking's creation is not through
    assert receiver.types() == ["booking.created"]

    frozen.shift(timedelta(seconds=30))
    run_jobs(app)
    run_jobs(app)
    assert receiver.types() == ["booking.created", "booking.created", "booking.cancelled"]
    cancel = json.loads(receiver.requests[-1].body)
    assert cancel["data"]["booking"]["status"] == "cancelled"
    assert cancel["data"]["cancelled_by"] == "clinic"


def test_a_no_show_is_sent_and_each_booking_goes_on_its_own(
    app, client, alpha, frozen, receiver: Receiver
):
    register(client, alpha, receiver.url, ["booking.created", "booking.no_show"])
    first = book(client, alpha)
    book(client, alpha, "2026-03-03T12:00:00-08:00")
    frozen.shift(timedelta(days=1, hours=1))  # past the first booking's start
    marked = client.post(
        f"{alpha['api']}/bookings/{first['id']}/no-show", json={}, headers=alpha["auth"]
    )
    assert marked.status_code == 200, marked.get_json()
    for _ in range(3):
        run_jobs(app)
    assert sorted(receiver.types()) == ["booking.created", "booking.created", "booking.no_show"]
    assert receiver.types().index("booking.no_show") > 0


def test_an_endpoint_failing_for_three_days_is_disabled_and_the_owner_told(
    app, client, alpha, frozen, receiver: Receiver
):
    endpoint = register(client, alpha, receiver.url, ["booking.created"])
    receiver.answer = 503
    book(client, alpha)
    run_jobs(app)
    frozen.shift(timedelta(days=2))
    book(client, alpha, "2026-03-05T10:00:00-08:00")
    frozen.shift(timedelta(days=1, minutes=1))
    report = run_jobs(app)
    assert report.disabled == 1

    shown = client.get(
        f"{alpha['api']}/webhook-endpoints/{endpoint['id']}", headers=alpha["auth"]
    ).get_json()
    assert shown["enabled"] is False
    assert "Every attempt failed from 2026-03-02 18:00 UTC" in shown["disabled_reason"]
    log = log_of(client, alpha, endpoint["id"])
    assert [d["status"] for d in log] == ["pending", "failed"]  # the older one was given up
    with app.app_context():
        clinic = db.session.query(Clinic).filter_by(slug="alpha").one()
        with clinic_scope(clinic):
            [alert] = db.session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == "staff_alert")
            ).all()
            assert alert.details["to"] == "owner@alpha.example.com"
            assert endpoint["url"] in alert.details["subject"]

    # Nothing is sent while it is disabled, and new events do not queue for it.
    receiver.answer = 200
    sent_so_far = len(receiver.requests)
    book(client, alpha, "2026-03-06T10:00:00-08:00")
    run_jobs(app)
    assert len(receiver.requests) == sent_so_far
    assert len(log_of(client, alpha, endpoint["id"])) == 2

    enabled = client.patch(
        f"{alpha['api']}/webhook-endpoints/{endpoint['id']}",
        json={"enabled": True},
        headers=alpha["auth"],
    )
    assert enabled.status_code == 200 and enabled.get_json()["failing_since"] is None
    run_jobs(app)
    assert len(receiver.requests) == sent_so_far + 1  # what waited goes at once
    assert log_of(client, alpha, endpoint["id"])[0]["status"] == "succeeded"


def test_a_delivery_is_replayed_on_request_with_the_same_event_id(
    app, client, alpha, receiver: Receiver
):
    endpoint = register(client, alpha, receiver.url, ["client.created"])
    new_client(client, alpha)
    run_jobs(app)
    [original] = log_of(client, alpha, endpoint["id"])
    key = {"Idempotency-Key": "replay-1", **alpha["auth"]}
    replay = client.post(f"{alpha['api']}/webhook-deliveries/{original['id']}/replay", headers=key)
    assert replay.status_code == 201, replay.get_json()
    again = client.post(f"{alpha['api']}/webhook-deliveries/{original['id']}/replay", headers=key)
    assert again.get_json()["id"] == replay.get_json()["id"]  # a retry replays once
    assert replay.get_json()["replay_of_id"] == original["id"]
    run_jobs(app)
    first, second = receiver.requests
    assert first.headers["ClinicSaas-Event-Id"] == second.headers["ClinicSaas-Event-Id"]
    assert first.headers["ClinicSaas-Delivery"] != second.headers["ClinicSaas-Delivery"]
    assert json.loads(first.body) == json.loads(second.body)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://10.20.30.40/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/hooks", "loopback"),
        ("https://localhost/hooks", "loopback"),
        ("https://0.0.0.0/hooks", "unspecified"),
        ("https://[::ffff:127.0.0.1]/hooks", "loopback"),  # IPv4-mapped
        ("https://[2002:a9fe:a9fe::]/hooks", "link-local"),  # 6to4 wrapping 169.254.169.254
        ("https://2130706433/hooks", "loopback"),  # 127.0.0.1 written as one number
        ("https://0177.0.0.1/hooks", "loopback"),  # and in octal
        ("http://hooks.example.com/in", "https://"),
        ("https://user:pw@hooks.example.com/in", "password"),
    ],
)
def test_a_url_the_platform_must_not_call_is_refused_naming_the_field(app, client, url, reason):
    from tests.integrations.conftest import _clinic_with_a_service

    alpha = _clinic_with_a_service(app, "alpha")  # the defaults: https, public addresses only
    refused = client.post(
        f"{alpha['api']}/webhook-endpoints",
        json={"url": url, "event_types": ["booking.created"]},
        headers=alpha["auth"],
    )
    problem = assert_problem(refused, 422, "webhook-url-refused")
    [error] = problem["errors"]
    assert error["field"] == "url" and reason in error["detail"]
    assert (
        client.get(f"{alpha['api']}/webhook-endpoints", headers=alpha["auth"]).get_json()["items"]
        == []
    )


def test_an_address_allowed_at_registration_is_checked_again_when_sending(
    app, client, alpha, receiver: Receiver
):
    endpoint = register(client, alpha, receiver.url, ["client.created"])
    app.config["WEBHOOKS_ALLOW_PRIVATE"] = False  # as if the name now resolved to loopback
    new_client(client, alpha)
    run_jobs(app)
    assert receiver.requests == []
    [refused] = log_of(client, alpha, endpoint["id"])
    assert refused["status"] == "pending" and "loopback" in refused["last_error"]


def test_a_clinic_never_sees_nor_is_sent_another_clinics_webhooks(
    app, client, alpha, beta, receiver: Receiver
):
    ours = register(client, alpha, f"{receiver.url}/alpha", ["client.created"])
    theirs = register(client, beta, f"{receiver.url}/beta", ["client.created"])
    new_client(client, beta)
    run_jobs(app)
    assert [r.path for r in receiver.requests] == ["/beta"]
    assert json.loads(receiver.requests[0].body)["clinic"] == "beta"
    [delivery] = log_of(client, beta, theirs["id"])

    api, auth = alpha["api"], alpha["auth"]
    listed = client.get(f"{api}/webhook-endpoints", headers=auth).get_json()["items"]
    assert [e["id"] for e in listed] == [ours["id"]]
    for method, path in (
        ("get", f"/webhook-endpoints/{theirs['id']}"),
        ("patch", f"/webhook-endpoints/{theirs['id']}"),
        ("delete", f"/webhook-endpoints/{theirs['id']}"),
        ("get", f"/webhook-endpoints/{theirs['id']}/deliveries"),
        ("post", f"/webhook-deliveries/{delivery['id']}/replay"),
    ):
        answer = client.open(f"{api}{path}", method=method.upper(), json={}, headers=auth)
        assert answer.status_code == 404, (method, path, answer.get_json())
    assert len(log_of(client, beta, theirs["id"])) == 1  # nothing replayed, nothing removed


def test_client_events_carry_contact_details_and_never_health_data(
    app, client, alpha, receiver: Receiver
):
    register(client, alpha, receiver.url, ["client.created", "client.updated"])
    client_id = new_client(client, alpha, preferred_name="May")
    intake = client.post(
        f"{alpha['api']}/clients/{client_id}/intake",
        json={"answers": {"allergies": ["latex"], "current_medications": ["isotretinoin"]}},
        headers=alpha["auth"],
    )
    assert intake.status_code == 201, intake.get_json()
    changed = client.patch(
        f"{alpha['api']}/clients/{client_id}",
        json={"phone": "(408) 555-0199"},
        headers=alpha["auth"],
    )
    assert changed.status_code == 200, changed.get_json()
    run_jobs(app)
    run_jobs(app)
    assert receiver.types() == ["client.created", "client.updated"]
    updated = json.loads(receiver.requests[1].body)["data"]["client"]
    assert updated == {
        "id": client_id,
        "first_name": "Maya",
        "last_name": "Lopez",
        "preferred_name": "May",
        "email": "maya@example.com",
        "phone": "+14085550199",
    }
    for request in receiver.requests:
        for health in (b"latex", b"isotretinoin", b"1991-06-15", b"allerg"):
            assert health not in request.body


def test_only_owners_and_managers_manage_webhooks(app, client, alpha):
    types = client.get(f"{alpha['api']}/events/types", headers=alpha["auth"]).get_json()
    assert {t["type"] for t in types["items"]} >= {"booking.created", "dispute.opened"}
    assert types["count"] == 10
    for path in ("/events/types", "/webhook-endpoints"):
        refused = client.get(f"{alpha['api']}{path}", headers=alpha["desk"])
        assert refused.status_code == 403, refused.get_json()


def test_an_unknown_event_type_is_refused_naming_the_field(app, client, alpha, receiver):
    refused = client.post(
        f"{alpha['api']}/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["booking.teleported"]},
        headers=alpha["auth"],
    )
    problem = assert_problem(refused, 422)
    assert problem["errors"][0]["field"].startswith("event_types")


def test_an_event_rolled_back_with_its_cause_is_never_written(app, client, alpha, receiver):
    register(client, alpha, receiver.url, ["client.created"])
    client_id = new_client(client, alpha)
    with app.app_context():
        clinic = db.session.query(Clinic).filter_by(slug="alpha").one()
        with clinic_scope(clinic):
            from core.clients.models import Client

            record = db.session.get(Client, client_id)
            with pytest.raises(RuntimeError), unit_of_work():
                events.publish("client.created", record)
                raise RuntimeError("the cause fails after publishing")
            assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_money_events_write_amounts_in_minor_units_and_go_in_line_with_their_booking():
    from core.events import Publication
    from core.integrations.publishing import describe
    from core.payments.models import Payment, PaymentStatus

    paid = Payment(
        id=5,
        booking_id=9,
        sale_id=None,
        purpose="deposit",
        amount_minor=5000,
        currency="NZD",
        status=PaymentStatus.succeeded,
    )
    key, data = describe(
        Publication("payment.refunded", paid, {"refunded": 2500, "refund_id": "re_1"})
    )
    assert key == "booking:9"
    assert data["payment"]["amount"] == {"amount": 5000, "currency": "NZD"}
    assert data["refund"] == {"id": "re_1", "amount": {"amount": 2500, "currency": "NZD"}}

    dispute = {"id": "dp_1", "amount": 5000, "currency": "nzd", "reason": "fraudulent"}
    key, data = describe(Publication("dispute.opened", None, {"dispute": dispute}))
    assert key == "dispute:dp_1" and data["payment"] is None
    assert data["dispute"]["amount"] == {"amount": 5000, "currency": "NZD"}


def test_the_periodic_jobs_send_due_webhooks(app, client, alpha, receiver: Receiver):
    from core.jobs import tasks

    register(client, alpha, receiver.url, ["client.created"])
    new_client(client, alpha)
    with app.app_context():
        report = tasks.tick()
    assert report.webhooks_sent == 1
    assert receiver.types() == ["client.created"]


def _events(app: Flask) -> list[str]:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            return list(db.session.scalars(select(WebhookEvent.type).order_by(WebhookEvent.id)))


def test_erasing_a_client_erases_the_events_that_carried_their_contact_details(
    app, client, alpha, receiver: Receiver
):
    from core.clients.models import Client
    from core.privacy.services.deletion import delete_client_data

    register(client, alpha, receiver.url, ["client.created", "booking.created"])
    made = book(client, alpha)
    assert _events(app) == ["client.created", "booking.created"]
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic), unit_of_work():
            delete_client_data(clinic, db.session.get_one(Client, made["client_id"]), None)
    # The booking's event names the client by id alone; the contact details are gone.
    assert "client.created" not in _events(app)
    run_jobs(app)
    for request in receiver.requests:
        assert b"maya@example.com" not in request.body


def test_the_delivery_log_forgets_events_a_month_after_nothing_is_left_to_send(
    app, client, alpha, receiver: Receiver, frozen
):
    register(client, alpha, receiver.url, ["booking.created"])
    book(client, alpha)
    run_jobs(app)
    assert [r.headers["ClinicSaas-Event-Type"] for r in receiver.requests] == ["booking.created"]
    frozen.shift(timedelta(days=29))
    run_jobs(app)
    assert _events(app) == ["booking.created"]  # still in the log, to replay
    frozen.shift(timedelta(days=2))
    run_jobs(app)
    assert _events(app) == []


def test_an_endpoint_dripping_its_answer_is_cut_off_within_its_budget(app, client, alpha, frozen):
    import socket
    import threading
    import time

    # Each byte comes within the read timeout (0.5 s), so only the call's budget
    # (connect + twice the read timeout) ends it.
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        conn, _ = server.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not stop.is_set():
            try:
                conn.sendall(b"X-Slow: a\r\n")
            except OSError:
                break
            time.sleep(0.2)
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    try:
        port = server.getsockname()[1]
        endpoint = register(client, alpha, f"http://127.0.0.1:{port}/hook", ["booking.created"])
        book(client, alpha)
        started = time.monotonic()
        run_jobs(app)
        took = time.monotonic() - started
        [cut] = log_of(client, alpha, endpoint["id"])
        assert cut["status"] == "pending" and cut["last_status_code"] is None, cut
        assert "took longer than 2 s" in cut["last_error"]
        assert took < 30  # a drip with no budget would never end
    finally:
        stop.set()
        server.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[2002:a9fe:a9fe::]/hooks", "link-local"),
        ("http://0.0.0.0/hooks", "unspecified"),
        ("http://224.0.0.1/hooks", "multicast"),
    ],
)
def test_a_private_network_allowed_still_refuses_metadata_and_multicast(
    app, client, alpha, url, reason
):
    # alpha runs with WEBHOOKS_ALLOW_PRIVATE: loopback and 10.x are allowed, these never are.
    refused = client.post(
        f"{alpha['api']}/webhook-endpoints",
        json={"url": url, "event_types": ["booking.created"]},
        headers=alpha["auth"],
    )
    problem = assert_problem(refused, 422, "webhook-url-refused")
    assert reason in problem["errors"][0]["detail"]
    allowed = client.post(
        f"{alpha['api']}/webhook-endpoints",
        json={"url": "http://10.20.30.40/hooks", "event_types": ["booking.created"]},
        headers=alpha["auth"],
    )
    assert allowed.status_code == 201, allowed.get_json()


def test_a_hold_that_lapses_is_sent_as_a_cancellation_after_its_creation(
    app, client, alpha, frozen, receiver: Receiver
):
    from core.jobs.tasks import expire_all_holds
    from tests.helpers import set_clinic_settings

    with app.app_context():
        set_clinic_settings("alpha", policy={"guarantee": "card_on_file"})
    register(client, alpha, receiver.url, ["booking.created", "booking.cancelled"])
    made = book(client, alpha)
    assert made["status"] == "held"
    frozen.shift(timedelta(minutes=16))  # past the 15-minute hold
    with app.app_context():
        assert expire_all_holds() == 1
    run_jobs(app)
    run_jobs(app)
    assert receiver.types() == ["booking.created", "booking.cancelled"]
    data = json.loads(receiver.requests[1].body)["data"]
    assert (data["cancelled_by"], data["reason"]) == ("system", "hold_expired")
    assert data["booking"]["status"] == "expired"


def test_an_outcome_is_recorded_only_by_the_worker_holding_the_lease(
    app, client, alpha, frozen, receiver: Receiver
):

    from core import clock
    from core.integrations import sending
    from core.integrations.delivery import LEASE, claim, record_outcome
    from core.integrations.models import WebhookDelivery

    register(client, alpha, receiver.url, ["booking.created"])
    book(client, alpha)
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            delivery_id = db.session.scalar(select(WebhookDelivery.id))
            first = claim(delivery_id, clock.now())
            assert first is not None and first.leased_until == clock.now() + LEASE
            # The first worker stalls past its lease; a second takes the delivery over.
            frozen.shift(LEASE + timedelta(seconds=1))
            second = claim(delivery_id, clock.now())
            assert second is not None and second.leased_until != first.leased_until
            late = record_outcome(clinic, first, sending.Outcome(error="stalled"))
            assert late.status == "sending"  # the stale worker's answer changes nothing
            kept = record_outcome(clinic, second, sending.Outcome(status_code=204))
            assert kept.status == "succeeded"
            with unit_of_work():
                row = db.session.get_one(WebhookDelivery, delivery_id, populate_existing=True)
                assert (row.status, row.attempts, row.last_error) == ("succeeded", 2, None)
