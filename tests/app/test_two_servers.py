"""More than one app server: two gunicorn servers on different ports share PostgreSQL, Redis
and the photo bucket, and nothing else; each holds nothing another needs."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image
from sqlalchemy import select

from core.accounts.models import Role
from core.extensions import db
from core.ledger import LedgerEntry
from core.tenancy.models import Location
from tests.database import TEST_MASTER_KEYS
from tests.helpers import (
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
    set_clinic_settings,
)
from tests.live_servers import environment, gunicorn, wait_until_up
from tests.local_days import clinic_day, local_time
from tests.object_store import CREDENTIALS
from tests.payment_flows import DEPOSIT, GUEST, pay_in_browser, scoped, wait_for
from tests.stripe_server import WEBHOOK_SECRET

REDIS = "redis://127.0.0.1:6379/0"
#: A limit no other test uses, so its counters in the shared Redis are this test's alone.
PUBLIC_WRITES = "4 per 7 minutes"


def forget_public_write_counters() -> None:
    counters = redis.Redis.from_url(REDIS)
    for key in counters.scan_iter("*public-write*"):
        counters.delete(key)


@pytest.fixture
def clinic(app):
    with app.app_context():
        make_clinic("alpha", stripe_account_id="acct_alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
        set_clinic_settings("alpha", policy=DEPOSIT)
    location = scoped(app, lambda: db.session.scalar(select(Location.id)))
    return {"service": service, "location": location}


@pytest.fixture
def servers(app, clinic, test_db, tmp_path: Path, local_stripe, object_store, inbox):
    if test_db.owner_url is None:
        pytest.skip("servers sharing one database need PostgreSQL; run with --db postgresql")
    local_stripe.reset()
    forget_public_write_counters()
    mailbox, smtp_port = inbox
    shared = dict(
        CLINIC_SAAS_ENV="production",
        DATABASE_URL=test_db.app_url,
        SECRET_KEY="two-servers",
        MASTER_KEYS=TEST_MASTER_KEYS,
        RATELIMIT_STORAGE_URI=REDIS,
        PUBLIC_READ_RATE_LIMIT="10000 per minute",
        PUBLIC_WRITE_RATE_LIMIT=PUBLIC_WRITES,
        # Every worker of both servers runs the jobs, often: they race for the same work.
        JOBS_BACKEND="inprocess",
        JOBS_TICK_SECONDS="0.2",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_PUBLISHABLE_KEY="pk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=local_stripe.url,
        STRIPE_JS_URL=local_stripe.stripe_js_url,
        LOG_REQUESTS="0",
        **{name: str(value) for name, value in object_store.settings().items()},
        **CREDENTIALS,
    )
    with (
        gunicorn(
            "wsgi:app",
            environment(**shared, INSTANCE_PATH=str(tmp_path / "one")),
            tmp_path / "one.log",
        ) as (one, one_server),
        gunicorn(
            "wsgi:app",
            environment(**shared, INSTANCE_PATH=str(tmp_path / "two")),
            tmp_path / "two.log",
        ) as (two, two_server),
    ):
        wait_until_up(one + "/readyz", one_server.pid, tmp_path / "one.log")
        wait_until_up(two + "/readyz", two_server.pid, tmp_path / "two.log")
        # Stripe tells the second server that the deposit was paid.
        local_stripe.webhook_target = two + "/webhooks/stripe"
        yield {"one": one, "two": two, "stripe": local_stripe, "mailbox": mailbox, "logs": tmp_path}
        local_stripe.webhook_target = None


def test_a_booking_made_through_one_server_is_seen_limited_and_paid_through_the_other(
    app, clinic, servers
):
    one, two = servers["one"], servers["two"]
    staff = {"Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"}
    zone = "America/Los_Angeles"
    booked = requests.post(
        f"{one}/api/v1/clinics/alpha/bookings/online",
        json={
            "client": GUEST,
            "service_id": clinic["service"],
            "location_id": clinic["location"],
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
        },
        timeout=20,
    )
    assert booked.status_code == 201, booked.text
    booking = booked.json()["booking"]

    # Seen through the other server, as staff.
    seen = requests.get(
        f"{two}/api/v1/clinics/alpha/bookings/{booking['id']}", headers=staff, timeout=10
    )
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == booking["status"] != "confirmed"

    # Paid: Stripe's webhook reaches the second server, and the first sees the booking confirmed.
    pay_in_browser(servers, booked.json()["payment"])

    def confirmed() -> bool:
        answer = requests.get(
            f"{one}/api/v1/clinics/alpha/bookings/{booking['id']}", headers=staff, timeout=10
        )
        return answer.json()["status"] == "confirmed"

    wait_for(confirmed, seconds=20)
    deposits = scoped(
        app,
        lambda: [
            entry.amount_minor
            for entry in db.session.scalars(select(LedgerEntry))
            if entry.kind.value == "deposit_received"
        ],
    )
    assert deposits == [5000]  # once, however many servers heard of it

    # A job runs once: four workers on two servers race to send the confirmation.
    mailbox = servers["mailbox"]
    wait_for(lambda: mailbox.messages, seconds=20)
    time.sleep(2)  # ten more ticks on every worker: time for a second send, were there one
    sent = [m for m in mailbox.messages if m["to"] == GUEST["email"]]
    assert len(sent) == 1, [m["data"][:200] for m in sent]
    assert "is booked" in sent[0]["data"]

    # Limited across servers: the booking was the first public write from this address.
    refused = None
    for server in (one, two, one, two):
        answer = requests.post(
            f"{server}/api/v1/clinics/alpha/bookings/online", json={}, timeout=10
        )
        if answer.status_code == 429:
            refused = (server, answer)
            break
        assert answer.status_code == 422, answer.text
    assert refused is not None, "the shared limit was never reached"
    server, answer = refused
    # The fifth write, on the second server: the booking and the first 422 were counted on
    # the first, the other 422 on the second; one count, shared.
    assert server == two
    assert answer.headers["RateLimit-Limit"] == "4"
    assert answer.headers["RateLimit-Remaining"] == "0"


def test_a_photo_uploaded_through_one_server_is_shown_by_the_other(app, clinic, servers):
    one, two = servers["one"], servers["two"]
    staff = {"Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"}
    created = requests.post(
        f"{one}/api/v1/clinics/alpha/clients",
        headers=staff,
        json={"legal_first_name": "Ana", "legal_last_name": "Ruiz", "email": "ana@example.com"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    base = f"/api/v1/clinics/alpha/clients/{created.json()['id']}"
    consent = requests.post(
        f"{one}{base}/consents",
        headers=staff,
        json={
            "kind": "clinical_photos",
            "text": "I agree to before and after photos for my clinical record.",
            "text_version": "2025-01",
            "method": "electronic",
        },
        timeout=10,
    )
    assert consent.status_code == 201, consent.text
    picture = io.BytesIO()
    Image.new("RGB", (32, 24), (150, 100, 80)).save(picture, format="PNG")
    uploaded = requests.post(
        f"{two}{base}/photos",
        headers=staff,
        data={"kind": "before"},
        files={"image": ("before.png", picture.getvalue(), "image/png")},
        timeout=10,
    )
    assert uploaded.status_code == 201, uploaded.text
    shown = requests.get(
        f"{one}{base}/photos/{uploaded.json()['id']}/image", headers=staff, timeout=10
    )
    assert shown.status_code == 200 and shown.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(shown.content)).size == (32, 24)
    for name in ("one", "two"):
        assert not (servers["logs"] / name / "photos").exists()  # nothing on either disk
