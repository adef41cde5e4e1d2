"""Event hooks hear of a booking or a payment only once it is committed, and once.

A listening plugin, enabled at one clinic as an author's would be, checks what
it is told against the database through a connection of its own, which sees
only what is committed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import select, text

from core.bookings import services as bookings
from core.bookings.models import Booking
from core.extensions import db
from core.hooks import hookimpl
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import ClinicRef, clinic_scope
from core.tenancy.services import PLUGIN_HOST_KEY
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff
from tests.local_days import clinic_day, local_time
from tests.payment_flows import (
    book,
    deliver_intent_event,
    ledger_of,
    pay_in_browser,
    stripe_requests_watched,
    wait_for,
)


def _committed_status(table: str, row_id: int, clinic_id: int) -> str | None:
    """Read a row through another connection: it sees only committed rows."""
    with db.engine.connect() as other:
        if other.dialect.name == "postgresql":
            other.execute(
                text("SELECT set_config('app.clinic_id', :c, true)"), {"c": str(clinic_id)}
            )
        return other.execute(
            text(f"SELECT status FROM {table} WHERE id = :i"), {"i": row_id}
        ).scalar()


class Listener:
    """What an integration plugin does: remember what it was told, and what was committed."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, int, Any]] = []

    @hookimpl
    def clinic_booking_confirmed(self, clinic: Any, booking: Any) -> None:
        seen = _committed_status("booking", booking.id, clinic.id)
        self.heard.append(("confirmed", booking.id, seen))

    @hookimpl
    def clinic_booking_cancelled(self, clinic: Any, booking: Any, decision: Any) -> None:
        seen = _committed_status("booking", booking.id, clinic.id)
        self.heard.append(("cancelled", booking.id, seen))

    @hookimpl
    def clinic_payment_received(self, clinic: Any, payment: Any) -> None:
        seen = _committed_status("payment", payment.id, clinic.id)
        self.heard.append(("payment", payment.id, seen))


@pytest.fixture
def listener(app):
    found = Listener()
    with app.extensions[PLUGIN_HOST_KEY].registered(found, "listener"):
        yield found


def _enable_listener(app) -> None:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic.enabled_plugins = ["listener"]
        db.session.commit()


@pytest.fixture
def alpha(app, listener):
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com")
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    _enable_listener(app)
    return {"service": service, "auth": {"Authorization": f"Bearer {token}"}}


def _starts(days: int = 3) -> str:
    zone = "America/Los_Angeles"
    return local_time(zone, clinic_day(zone, days), 10).isoformat()


def test_a_plugin_hears_of_a_confirmed_booking_only_once_it_is_committed(app, alpha, listener):
    http = app.test_client()
    api = "/api/v1/clinics/alpha"
    client_id = http.post(
        f"{api}/clients",
        json={"legal_first_name": "Maya", "legal_last_name": "Lopez", "email": "m@example.com"},
        headers=alpha["auth"],
    ).get_json()["id"]
    location = http.get(f"{api}/locations", headers=alpha["auth"]).get_json()["items"][0]["id"]
    made = http.post(
        f"{api}/bookings",
        json={
            "client_id": client_id,
            "service_id": alpha["service"],
            "location_id": location,
            "starts_at": _starts(),
        },
        headers=alpha["auth"],
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    booking_id = made.get_json()["id"]
    assert listener.heard == [("confirmed", booking_id, "confirmed")]
    cancelled = http.post(f"{api}/bookings/{booking_id}/cancellation", headers=alpha["auth"])
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert listener.heard[1:] == [("cancelled", booking_id, "cancelled")]


def test_a_booking_rolled_back_is_never_announced(app, alpha, listener):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        ref = ClinicRef(clinic.id, clinic.slug)
        with clinic_scope(ref):
            location = db.session.scalar(select(Location.id))
            guest = bookings.guest_client(
                {
                    "legal_first_name": "Ana",
                    "legal_last_name": "Diaz",
                    "email": "ana@example.com",
                    "date_of_birth": date(1990, 1, 1),
                }
            )
            made = bookings.book(
                clinic,
                client=guest,
                service_id=alpha["service"],
                location_id=location,
                provider_id=None,
                starts_at=local_time(
                    "America/Los_Angeles", clinic_day("America/Los_Angeles", 4), 11
                ),
                online=False,
            )
            assert made.status.value == "confirmed"
            db.session.rollback()  # something after the booking failed: it never happened
        with clinic_scope(ref):
            assert db.session.scalar(select(Booking.id)) is None
    assert listener.heard == []


def test_a_payment_is_announced_once_however_often_stripe_tells_it(client, live, listener):
    # The webhook, replayed, and reconciliation may all learn of one success: the plugin
    # hears of the payment once, after it is recorded.
    from core.payments.models import Payment

    _enable_listener(live["app"])
    body = book(client, live)
    intent_id = pay_in_browser(live, body["payment"])
    wait_for(lambda: [h for h in listener.heard if h[0] == "payment"])
    again = deliver_intent_event(client, intent_id, "evt_again")
    assert again.status_code == 200
    payments = [h for h in listener.heard if h[0] == "payment"]
    with live["app"].app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            payment_id = db.session.scalar(select(Payment.id))
    assert payments == [("payment", payment_id, "succeeded")]
    assert [h[0] for h in listener.heard].count("confirmed") == 1
    assert ledger_of(live) == [("deposit_received", 5000)]


# --- no Stripe call while a write transaction is open ----------------------------------------


def test_a_webhook_asks_stripe_before_it_writes_never_while_a_write_is_open(client, live):
    # DESIGN.md: "Network calls (Stripe, SMTP, SMS, outbound webhooks) happen outside an
    # open write transaction: read and lock, decide, commit ... call out". Every Stripe
    # request the webhook handler makes is checked against its session at that moment.
    from flask import has_request_context, request

    def in_webhook() -> bool:
        return has_request_context() and request.path == "/webhooks/stripe"

    with stripe_requests_watched(in_webhook) as calls:
        body = book(client, live)
        pay_in_browser(live, body["payment"])
        wait_for(lambda: ledger_of(live))
    assert calls, "the webhook asked Stripe for nothing"
    assert [path for path, writing in calls if writing] == []
    assert ledger_of(live) == [("deposit_received", 5000)]
