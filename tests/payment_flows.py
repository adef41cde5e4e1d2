"""Fixtures and steps shared by the payment and checkout tests: the app live on a port, a
clinic with a connected account, booking and paying a deposit as a browser would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import stripe
from sqlalchemy import select
from werkzeug.serving import make_server

from core.accounts.models import Role
from core.demo.server import use_local_stripe
from core.extensions import db
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.helpers import (
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
    set_clinic_settings,
)
from tests.local_days import clinic_day, local_time
from tests.stripe_server import free_port, sign

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
    port = free_port()
    # The demo's own settings: secret, publishable key, webhook secret, API base, Stripe.js.
    use_local_stripe(app, local_stripe, f"http://127.0.0.1:{port}")
    with app.app_context():
        make_clinic("alpha", stripe_account_id="acct_alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
        set_clinic_settings("alpha", policy=DEPOSIT)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            location_id = db.session.scalar(select(Location.id))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    yield {
        "app": app,
        "url": f"http://127.0.0.1:{port}",
        "stripe": local_stripe,
        "service": service,
        "location": location_id,
        "auth": {"Authorization": f"Bearer {token}"},
    }
    server.shutdown()
    local_stripe.webhook_target = None


def book(client, ctx):
    # Three days ahead at 10:00 in Los Angeles: inside hours, notice and advance limits.
    zone = "America/Los_Angeles"
    starts_at = local_time(zone, clinic_day(zone, 3), 10).isoformat()
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


def paid_booking(client, ctx) -> dict:
    """Book online, pay the deposit as the browser would, and wait for the webhook to confirm."""
    from core.bookings.models import Booking

    body = book(client, ctx)
    pay_in_browser(ctx, body["payment"])
    booking_id = body["booking"]["id"]
    wait_for(
        lambda: (
            scoped(ctx["app"], lambda: db.session.get(Booking, booking_id).status.value)
            == "confirmed"
        )
    )
    return body


def ledger_of(ctx) -> list[tuple[str, int]]:
    """Return the clinic's ledger as sorted (kind, amount) pairs."""
    from core.ledger import LedgerEntry

    return scoped(
        ctx["app"],
        lambda: sorted(
            (e.kind.value, e.amount_minor) for e in db.session.scalars(select(LedgerEntry))
        ),
    )


def deliver_intent_event(client, intent_id: str, event_id: str, account: str = "acct_alpha"):
    """Post a signed ``payment_intent.succeeded`` event to the app, as Stripe sends (or re-sends) it."""
    from tests.stripe_server import sign

    payload = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": "payment_intent.succeeded",
            "account": account,
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent"}},
        }
    )
    return client.post(
        "/webhooks/stripe",
        data=payload,
        headers={"Stripe-Signature": sign(payload), "Content-Type": "application/json"},
    )


@contextmanager
def stripe_requests_watched(
    counted: Callable[[], bool] = lambda: True,
) -> Iterator[list[tuple[str, bool]]]:
    """Record each Stripe request the app makes: its path, and whether a write was open then.

    A write is open from the first INSERT, UPDATE or DELETE (or pending change) of a
    transaction until it commits or rolls back. ``counted`` picks the requests to record
    (say, only those of one route); requests made outside the app are never recorded.
    """
    from flask import has_app_context
    from sqlalchemy import event as orm_event
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import TextClause

    from core.payments.stripe_api import BudgetedRequests

    def wrote(session, *args):
        session.info["wrote"] = True

    def ended(session, *args):
        session.info.pop("wrote", None)

    def statement(state):
        raw = isinstance(state.statement, TextClause) and state.statement.text.lstrip().upper()
        dml = state.is_insert or state.is_update or state.is_delete
        if dml or (raw and raw.startswith(("INSERT", "UPDATE", "DELETE"))):
            state.session.info["wrote"] = True

    listeners = [
        ("after_flush", wrote),
        ("do_orm_execute", statement),
        ("after_commit", ended),
        ("after_rollback", ended),
    ]
    calls: list[tuple[str, bool]] = []
    original = BudgetedRequests.request

    def watched(self, method, url, *args, **kwargs):
        if has_app_context() and counted():
            session = db.session()
            writing = bool(session.info.get("wrote") or session.new or session.dirty)
            calls.append((url.split("/v1/")[-1], writing))
        return original(self, method, url, *args, **kwargs)

    for name, listener in listeners:
        orm_event.listen(Session, name, listener)
    BudgetedRequests.request = watched
    try:
        yield calls
    finally:
        BudgetedRequests.request = original
        for name, listener in listeners:
            orm_event.remove(Session, name, listener)


def save_card_in_browser(client, ctx, client_secret: str) -> str:
    """What Stripe.js does with a SetupIntent's secret: save the card, then Stripe's event.

    localstripe sends no ``setup_intent.succeeded``, so the event is posted signed as
    Stripe signs it. Returns the SetupIntent's id.
    """
    api = stripe.StripeClient("sk_test_browser", base_addresses={"api": ctx["stripe"].upstream})
    card = api.v1.payment_methods.create(
        {
            "type": "card",
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        }
    )
    setup_id = client_secret.split("_secret_")[0]
    api.v1.setup_intents.confirm(setup_id, {"payment_method": card.id})
    event = json.dumps(
        {
            "id": f"evt_{setup_id}",
            "object": "event",
            "type": "setup_intent.succeeded",
            "account": "acct_alpha",
            "created": int(time.time()),
            "data": {"object": {"id": setup_id, "object": "setup_intent"}},
        }
    )
    response = client.post(
        "/webhooks/stripe",
        data=event,
        headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return setup_id
