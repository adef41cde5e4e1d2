"""Online deposits on the clinic's own Stripe account, against a local Stripe server.

The real ``stripe`` SDK talks HTTP to localstripe (through the recording proxy
in ``tests/stripe_server.py``); localstripe's own webhooks reach the app over
HTTP, signed, and confirm the booking.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from datetime import time as dtime
from zoneinfo import ZoneInfo

import pytest
import stripe
from sqlalchemy import select
from werkzeug.serving import make_server

from core.accounts.models import Role
from core.bookings.models import Booking
from core.extensions import db
from core.payments.models import LedgerEntry, Payment, StripeEvent
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.helpers import (
    assert_problem,
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
    set_clinic_settings,
)
from tests.stripe_server import WEBHOOK_SECRET, free_port, sign

GUEST = {
    "legal_first_name": "Maya",
    "legal_last_name": "Lopez",
    "email": "maya@example.com",
    "phone": "(408) 555-0101",
    "date_of_birth": "1991-06-15",
}
# Bijoux: "All services require a valid credit card or gift certificate to guarantee the
# reservation" - here, as at clinics that take deposits online, a $50.00 deposit.
DEPOSIT = {"guarantee": "card_or_gift_certificate", "deposit": "50.00"}


@pytest.fixture
def live(app, local_stripe) -> Iterator[dict]:
    """The app on a real HTTP port, so localstripe's webhooks can reach it."""
    local_stripe.reset()
    app.config.update(
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_PUBLISHABLE_KEY="pk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=local_stripe.url,
    )
    app.extensions.pop("clinic_saas.stripe", None)
    with app.app_context():
        make_clinic("alpha", stripe_account_id="acct_alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
        set_clinic_settings("alpha", policy=DEPOSIT)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            location_id = db.session.scalar(select(Location.id))
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    local_stripe.webhook_target = f"http://127.0.0.1:{port}/webhooks/stripe"
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    yield {
        "app": app,
        "stripe": local_stripe,
        "service": service,
        "location": location_id,
        "auth": {"Authorization": f"Bearer {token}"},
    }
    server.shutdown()
    local_stripe.webhook_target = None


def book(client, ctx):
    # Three days ahead at 10:00 in Los Angeles: inside hours, notice and advance limits.
    day = datetime.now(ZoneInfo("America/Los_Angeles")).date() + timedelta(days=3)
    starts_at = datetime.combine(day, dtime(10), ZoneInfo("America/Los_Angeles")).isoformat()
    response = client.post(
        "/api/v1/clinics/alpha/bookings/online",
        json={
            "client": GUEST,
            "service_id": ctx["service"],
            "location_id": ctx["location"],
            "starts_at": starts_at,
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def pay_in_browser(ctx, payment):
    """What Stripe.js does with the client secret: attach the card and confirm.

    localstripe lets only a secret key do this, so the stand-in uses one,
    straight to localstripe (the app's calls are the ones the proxy records).
    """
    api = stripe.StripeClient("sk_test_browser", base_addresses={"api": ctx["stripe"].upstream})
    card = api.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    intent_id = payment["client_secret"].split("_secret_")[0]
    api.v1.payment_intents.update(intent_id, {"payment_method": card.id})
    api.v1.payment_intents.confirm(intent_id)
    return intent_id


def scoped(app, query):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            return query()


def wait_for(check, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_deposit_is_paid_online_and_the_signed_webhook_confirms_the_booking(client, live):
    # DESIGN.md: "the booking is confirmed by the `payment_intent.succeeded` webhook, not by the
    # browser"; "every call carries `stripe_account=`"
    body = book(client, live)
    booking_id = body["booking"]["id"]
    assert body["booking"]["status"] == "held"
    payment = body["payment"]
    assert payment["stripe_account"] == "acct_alpha"
    assert payment["publishable_key"] == "pk_test_local"
    assert payment["amount"] == {"amount": 5000, "currency": "USD", "display": "$50.00"}
    created = live["stripe"].calls_to("/v1/payment_intents")
    assert [(c.account, c.idempotency_key) for c in created] == [
        ("acct_alpha", f"deposit:{booking_id}:1")
    ]
    assert created[0].params["setup_future_usage"] == ["off_session"]
    customers = live["stripe"].calls_to("/v1/customers")
    assert [(c.account, c.idempotency_key) for c in customers] == [("acct_alpha", "customer:1")]
    # Asking again (a double click, the self-service link) gives the same intent.
    again = client.post(
        f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/deposit-payment"
    ).get_json()
    assert again["client_secret"] == payment["client_secret"]
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == 1
    # The browser alone does not confirm the booking.
    intent_id = pay_in_browser(live, payment)
    status = wait_for(
        lambda: (
            scoped(live["app"], lambda: db.session.get(Booking, booking_id).status.value)
            == "confirmed"
        )
    )
    assert status
    ledger = scoped(
        live["app"],
        lambda: [
            (e.kind.value, e.amount_minor, e.booking_id)
            for e in db.session.scalars(select(LedgerEntry))
        ],
    )
    assert ledger == [("deposit_received", 5000, booking_id)]
    assert (
        scoped(
            live["app"],
            lambda: db.session.scalar(select(Payment.status)).value,
        )
        == "succeeded"
    )
    # The webhook re-fetched the intent from the clinic's account before acting.
    fetched = live["stripe"].calls_to(f"/v1/payment_intents/{intent_id}", method="GET")
    assert fetched and all(c.account == "acct_alpha" for c in fetched)


def _event(
    intent_id, event_id="evt_replayed", account="acct_alpha", kind="payment_intent.succeeded"
):
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "account": account,
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent"}},
        }
    )


def test_duplicate_forged_stale_and_foreign_webhooks_change_nothing(client, live):
    # DESIGN.md: "verify `Stripe-Signature` on the raw body (300 s tolerance); route by
    # `event.account` to a clinic and reject unknown accounts; record the event id in the same
    # transaction as its effect so a repeat does nothing"
    body = book(client, live)
    intent_id = pay_in_browser(live, body["payment"])
    wait_for(lambda: scoped(live["app"], lambda: db.session.scalar(select(LedgerEntry.id))))
    payload = _event(intent_id)

    def post(data, header):
        return client.post(
            "/webhooks/stripe",
            data=data,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )

    first = post(payload, sign(payload))
    assert first.status_code == 200
    assert first.get_json()["outcome"] == "unchanged (succeeded)"
    assert post(payload, sign(payload)).get_json()["outcome"] == "already applied"
    assert_problem(post(payload, sign(payload, secret="whsec_forged")), 400, "bad-signature")
    assert_problem(post(payload, sign(payload, at=int(time.time()) - 600)), 400, "bad-signature")
    tampered = payload.replace("acct_alpha", "acct_other")
    assert_problem(post(tampered, sign(payload)), 400, "bad-signature")
    foreign = _event(intent_id, event_id="evt_foreign", account="acct_unknown")
    assert_problem(post(foreign, sign(foreign)), 400, "unknown-account")
    ledger = scoped(live["app"], lambda: db.session.scalars(select(LedgerEntry)).all())
    assert len(ledger) == 1  # money was received once
    events = scoped(live["app"], lambda: db.session.scalars(select(StripeEvent.event_id)).all())
    assert "evt_replayed" in events and "evt_foreign" not in events


def test_a_late_failure_event_does_not_undo_a_payment(client, live):
    # DESIGN.md: "order is not guaranteed, so re-fetch the object and only move state forward"
    body = book(client, live)
    intent_id = pay_in_browser(live, body["payment"])
    wait_for(lambda: scoped(live["app"], lambda: db.session.scalar(select(LedgerEntry.id))))
    late = _event(intent_id, event_id="evt_late_failure", kind="payment_intent.payment_failed")
    response = client.post(
        "/webhooks/stripe",
        data=late,
        headers={"Stripe-Signature": sign(late), "Content-Type": "application/json"},
    )
    assert response.get_json()["outcome"] == "unchanged (succeeded)"
    assert (
        scoped(live["app"], lambda: db.session.scalar(select(Payment.status)).value) == "succeeded"
    )


def test_a_clinic_without_a_connected_account_says_so(client, live):
    with live["app"].app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic.stripe_account_id = None
        db.session.commit()
    body = book(client, live)
    assert body["payment"] is None  # the booking stands, held
    refused = client.post(
        f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/deposit-payment"
    )
    body = assert_problem(refused, 409, "payments-not-connected")
    assert "cannot take payments online" in body["detail"]
    assert live["stripe"].calls_to("/v1/payment_intents") == []
