"""A new clinic joins end to end over HTTP: created, owner invited, Stripe connected, open, booked.

The app runs on a loopback port so the local Stripe server's webhooks reach it;
Stripe Connect onboarding (which localstripe lacks) is the test proxy's stand-in
for Stripe's hosted pages (see core/demo/local_stripe.py). The one step that is
not HTTP is reading the invitation's code, which the outbox holds for the email.
"""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from core.bookings.models import Booking
from core.demo.local_stripe import free_port
from core.demo.server import use_local_stripe
from core.extensions import db
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import PASSWORD, assert_problem
from tests.local_days import clinic_day, local_time
from tests.payment_flows import GUEST, deliver_intent_event, pay_in_browser, wait_for

SLUG = "glow-spa"
OWNER = {"email": "mia@glowspa.example.com", "password": "glow glow glow every day"}
DOCUMENT = {
    "slug": SLUG,
    "name": "Glow Spa",
    "country": "US",
    "timezone": "America/Los_Angeles",
    "currency": "USD",
    "contact": {"email": "hello@glowspa.example.com"},
    "locations": [
        {"slug": "pasadena", "name": "Pasadena", "country": "US", "timezone": "America/Los_Angeles"}
    ],
    "plugins": {
        "enabled": ["ccpa"],
        "settings": {
            "default_policy": {"guarantee": "card_or_gift_certificate", "deposit": "50.00"}
        },
    },
}


@pytest.fixture
def served(app, local_stripe):
    local_stripe.reset()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    use_local_stripe(app, local_stripe, url)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"app": app, "url": url, "stripe": local_stripe}
    server.shutdown()
    local_stripe.webhook_target = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _follow_once(url: str) -> str:
    """Open ``url`` as a browser would and return where it is sent next."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(url)
    except urllib.error.HTTPError as error:
        assert error.code == 302, error.read()
        return error.headers["Location"]
    raise AssertionError(f"{url} sent nowhere")


def _code(app) -> str:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == SLUG))
        with clinic_scope(clinic):
            message = db.session.scalar(
                select(OutboxMessage).where(OutboxMessage.kind == "staff_invitation")
            )
            return re.search(r"Your code: (\S+)", message.details["body"]).group(1)


def test_a_new_clinic_joins_connects_stripe_opens_and_takes_a_deposit(served):
    app = served["app"]
    api = f"/api/v1/clinics/{SLUG}"
    # The operator: an account made when the instance was set up, then the API only.
    made = app.test_cli_runner().invoke(
        args=["operator", "create", "--email", "ops@example.com", "--name", "Ops"],
        env={"CLINIC_SAAS_PASSWORD": PASSWORD},
    )
    assert made.exit_code == 0, made.output
    operator = app.test_client()
    operator.post(
        "/api/v1/platform/session", json={"email": "ops@example.com", "password": PASSWORD}
    )
    created = operator.post("/api/v1/platform/clinics", json=DOCUMENT)
    assert created.status_code == 201, created.get_data(as_text=True)
    invited = operator.post(
        f"/api/v1/platform/clinics/{SLUG}/invitations",
        json={"email": OWNER["email"], "name": "Mia"},
    )
    assert invited.status_code == 201

    # The owner sets a password with the emailed code, signs in and sets the clinic up.
    owner = app.test_client()
    code = {"token": _code(app), "password": OWNER["password"]}
    assert owner.post(f"{api}/password", json=code).status_code == 200
    assert owner.post(f"{api}/session", json=OWNER).status_code == 201
    membership = owner.get(f"{api}/staff").get_json()["items"][0]["id"]
    location = owner.get(f"{api}/locations").get_json()["items"][0]["id"]
    provider = owner.post(
        f"{api}/providers", json={"membership_id": membership, "display_name": "Mia"}
    ).get_json()["id"]
    hours = [
        {"location_id": location, "weekday": day, "starts": "09:00", "ends": "17:00"}
        for day in range(7)
    ]
    assert owner.put(f"{api}/providers/{provider}/hours", json={"hours": hours}).status_code == 200
    service = owner.post(
        f"{api}/services",
        json={
            "slug": "hydrafacial",
            "name": "HydraFacial",
            "category": "facials",
            "duration_minutes": 60,
            "price": "150.00",
            "location_ids": [location],
            "provider_ids": [provider],
        },
    )
    assert service.status_code == 201, service.get_data(as_text=True)
    service_id = service.get_json()["id"]
    read = owner.get(f"{api}/document").get_json()
    accepted = owner.post(f"{api}/policy-acceptance", json={"revision": read["revision"]})
    assert accepted.status_code == 200
    missing = owner.get(f"{api}/readiness").get_json()["missing"]
    assert [m["item"] for m in missing] == ["stripe"]

    # Stripe: the owner is sent to Stripe's onboarding; a lapsed link is renewed on the way.
    started = owner.post(f"{api}/stripe/onboarding")
    assert started.status_code == 201, started.get_data(as_text=True)
    served["stripe"].lapse_account_links()
    refresh = _follow_once(started.get_json()["url"])
    assert "/stripe/onboarding-refresh?state=" in refresh
    renewed = _follow_once(refresh)  # the app makes a new link and sends the owner on
    assert renewed.startswith(served["stripe"].url + "/_onboarding/")
    back = _follow_once(renewed)  # onboarding done: account.updated is sent, then back to us
    assert "/stripe/onboarding-return?state=" in back
    assert ("account.updated", 200) in served["stripe"].deliveries
    with urllib.request.urlopen(back) as returned:
        assert returned.status == 200
    assert owner.get(f"{api}/readiness").get_json() == {
        "ready": True,
        "status": "onboarding",
        "missing": [],
    }
    # The operator's terms: 2.5% of each charge goes to the platform.
    fee = operator.put(f"/api/v1/platform/clinics/{SLUG}/platform-fee", json={"basis_points": 250})
    assert fee.get_json() == {"basis_points": 250}
    opened = operator.patch(f"/api/v1/platform/clinics/{SLUG}", json={"status": "active"})
    assert opened.get_json()["status"] == "active"

    # A client books online and pays the $50.00 deposit on the clinic's new account.
    client = app.test_client()
    zone = "America/Los_Angeles"
    booked = client.post(
        f"{api}/bookings/online",
        json={
            "client": GUEST,
            "service_id": service_id,
            "location_id": location,
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
        },
    )
    assert booked.status_code == 201, booked.get_data(as_text=True)
    body = booked.get_json()
    assert body["booking"]["status"] == "held"
    intent_id = pay_in_browser(served, body["payment"])
    account = owner.get(f"{api}/stripe").get_json()["account"]
    assert account.startswith("acct_")
    intents = served["stripe"].calls_to("/v1/payment_intents")
    assert intents and {c.account for c in intents} == {account}
    assert intents[0].params["application_fee_amount"] == ["125"]

    def status():
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == SLUG))
            with clinic_scope(clinic):
                return db.session.get(Booking, body["booking"]["id"]).status.value

    wait_for(lambda: status() == "confirmed")
    with app.app_context():
        from core.ledger import LedgerEntry

        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == SLUG))
        with clinic_scope(clinic):
            ledger = sorted(
                (e.kind.value, e.amount_minor) for e in db.session.scalars(select(LedgerEntry))
            )
    # The deposit, and the platform's 2.5% of it (Stripe's application fee), recorded together.
    assert ledger == [("deposit_received", 5000), ("platform_fee", 125)]

    # The owner replaces the account: the deposit keeps the account it was paid on.
    assert owner.delete(f"{api}/stripe").status_code == 204
    assert owner.get(f"{api}/stripe").get_json() == {"account": None, "charges_enabled": None}
    again = owner.post(f"{api}/stripe/onboarding")
    assert again.status_code == 201
    with app.app_context():
        from core.payments.models import Payment

        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == SLUG))
        replacement = clinic.stripe_account_id
        with clinic_scope(clinic):
            paid_on = db.session.scalars(select(Payment.stripe_account)).all()
    assert replacement.startswith("acct_") and replacement != account
    assert paid_on == [account]
    assert len(served["stripe"].connect_accounts) == 2
    # Stripe's later events about the deposit (a refund, a dispute) still reach the clinic.
    late = deliver_intent_event(app.test_client(), intent_id, "evt_after_replacing", account)
    assert late.status_code == 200, late.get_data(as_text=True)


def test_a_clinic_whose_account_cannot_charge_refuses_deposits(app, served):
    from tests.helpers import make_clinic, make_provider, make_service, set_clinic_settings

    with app.app_context():
        make_clinic("paused", stripe_account_id="acct_paused", stripe_charges_enabled=False)
        provider = make_provider("paused", "kim@paused.example.com")
        service = make_service("paused", "facial", provider_ids=[provider])
        set_clinic_settings("paused", policy={"deposit": "50.00"})
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "paused"))
        with clinic_scope(clinic):
            from core.tenancy.models import Location

            location = db.session.scalar(select(Location.id))
    zone = "America/Los_Angeles"
    refused = app.test_client().post(
        "/api/v1/clinics/paused/bookings/online",
        json={
            "client": GUEST,
            "service_id": service,
            "location_id": location,
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
        },
    )
    body = assert_problem(refused, 409, "payments-paused")
    assert "cannot take payments right now" in body["detail"]


@pytest.mark.parametrize(
    ("basis_points", "amount", "fee"),
    [(250, 5000, 125), (250, 199, 5), (250, 198, 5), (250, 197, 5), (0, 5000, 0), (3000, 1, 0)],
)
def test_the_platform_fee_is_its_share_of_each_charge_rounded_half_up(basis_points, amount, fee):
    from core.payments.charges import platform_fee

    assert platform_fee(Clinic(platform_fee_bps=basis_points), amount) == fee
