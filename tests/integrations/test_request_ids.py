"""A request's id travels with the work it leaves: into queued messages and webhook events, onto
every call out (a clinic's endpoint, Stripe), and each pass of the jobs has an id of its own."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select, update

from core import request_ids
from core.extensions import db
from core.integrations.models import WebhookEvent
from core.jobs import tasks
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.integrations.conftest import TOMORROW_TEN, Receiver
from tests.integrations.test_webhooks import new_client, register, run_jobs
from tests.payment_flows import book as book_online


def rows(app: Flask, model: Any) -> list[Any]:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            found = list(db.session.scalars(select(model).order_by(model.id)))
            db.session.expunge_all()
            return found


def test_the_request_that_made_a_booking_is_named_on_its_webhook_and_its_message(
    app: Flask, client: Any, alpha: dict[str, Any], receiver: Receiver
) -> None:
    register(client, alpha, receiver.url, ["booking.created"])
    client_id = new_client(client, alpha)
    made = client.post(
        f"{alpha['api']}/bookings",
        json={
            "client_id": client_id,
            "service_id": alpha["service"],
            "location_id": alpha["location"],
            "starts_at": TOMORROW_TEN,
        },
        headers={**alpha["auth"], "Request-Id": "req-front-desk-7"},
    )
    assert made.status_code == 201, made.get_json()
    assert made.headers["Request-Id"] == "req-front-desk-7"

    [event] = [e for e in rows(app, WebhookEvent) if e.type == "booking.created"]
    assert event.request_id == "req-front-desk-7"
    confirmations = [m for m in rows(app, OutboxMessage) if m.kind == "booking_confirmed"]
    assert [m.request_id for m in confirmations] == ["req-front-desk-7"]

    run_jobs(app)  # outside any request: the id comes from the event
    [delivered] = receiver.requests
    assert delivered.headers["Request-Id"] == "req-front-desk-7"


def test_work_with_no_request_behind_it_goes_out_without_an_id(
    app: Flask, client: Any, alpha: dict[str, Any], receiver: Receiver
) -> None:
    register(client, alpha, receiver.url, ["client.created"])
    new_client(client, alpha)
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            db.session.execute(update(WebhookEvent).values(request_id=None))
            db.session.commit()
    run_jobs(app)
    [delivered] = receiver.requests
    assert "Request-Id" not in delivered.headers


def test_each_pass_of_the_jobs_carries_an_id_of_its_own(app: Flask, monkeypatch: Any) -> None:
    seen: list[str | None] = []

    def expire_all_holds() -> int:
        seen.append(request_ids.current())
        return 0

    monkeypatch.setattr(tasks, "expire_all_holds", expire_all_holds)
    with app.app_context():
        tasks.tick()
        tasks.tick()
        assert request_ids.current() is None  # nothing left behind after the pass
    assert all(found and found.startswith("tick-") for found in seen)
    assert seen[0] != seen[1]


def test_calls_to_stripe_carry_the_request_id(live: dict[str, Any]) -> None:
    http = live["app"].test_client()
    live["stripe"].calls.clear()
    http.environ_base["HTTP_REQUEST_ID"] = "req-online-booking-3"
    body = book_online(http, live)
    assert body["payment"]["client_secret"]
    made = [call for call in live["stripe"].calls if call.path.startswith("/v1/")]
    assert made, "the booking made no call to Stripe"
    assert {call.request_id for call in made} == {"req-online-booking-3"}
