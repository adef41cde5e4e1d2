"""GET /metrics: requests counted by their route, Stripe's answers, the work due at every clinic."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, select

from core.accounts.models import Role
from core.config import SettingError, from_environment
from core.extensions import db
from core.integrations.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from core.messaging import outbox
from core.messaging.models import OutboxStatus
from core.payments.stripe_api import BudgetedRequests
from core.platform import metrics
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

# Monday 2 March 2026, 10:00 in Los Angeles.
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
TOKEN = "metrics-" + "m" * 40
BOOKING_ROUTE = "/api/v1/clinics/<clinic_slug>/bookings/online"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def scraper(app: Flask) -> FlaskClient:
    app.config["METRICS_TOKEN"] = TOKEN
    return app.test_client()


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _book_online(client: FlaskClient, app: Flask, slug: str, ids: dict[str, int]) -> Any:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            location_id = db.session.scalar(select(Location.id))
    return client.post(
        f"/api/v1/clinics/{slug}/bookings/online",
        json={
            "service_id": ids["service"],
            "location_id": location_id,
            "provider_id": ids["provider"],
            "starts_at": "2026-03-03T10:00:00-08:00",
            "client": {
                "legal_first_name": "Maya",
                "legal_last_name": "Lopez",
                "email": "maya@example.com",
                "phone": "(408) 555-0101",
                "date_of_birth": "1991-06-15",
            },
        },
    )


def test_a_booking_is_counted_and_timed_under_its_url_rule_never_its_path(app, scraper, frozen):
    with app.app_context():
        make_clinic("alpha")
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
    before = scrape(scraper)

    response = _book_online(scraper, app, "alpha", {"provider": provider, "service": service})
    assert response.status_code == 201, response.get_json()
    assert scraper.get("/no/such/path/42").status_code == 404
    after = scrape(scraper)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "clinic_saas_http_requests_total"
    assert grew(requests, method="POST", route=BOOKING_ROUTE, status="201") == 1
    observed = "clinic_saas_http_request_duration_seconds_count"
    assert grew(observed, method="POST", route=BOOKING_ROUTE) == 1
    assert grew(requests, method="GET", route="<unmatched>", status="404") == 1
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not [route for route in routes if "alpha" in route or "42" in route]


def _due_message(key: str, due_at: datetime, status: OutboxStatus = OutboxStatus.pending) -> None:
    message = outbox.queue("staff_alert", dedupe_key=key, subject="s", body="b", to="a@b.example")
    message.due_at = due_at
    message.status = status


def _webhook_delivery(due_at: datetime, *, enabled: bool = True) -> None:
    endpoint = WebhookEndpoint(
        url="https://hooks.example.com/in", event_types=["client.created"], secret="s"
    )
    endpoint.enabled = enabled
    event_row = WebhookEvent(
        public_id=f"evt_{due_at.timestamp():.0f}{enabled}",
        type="client.created",
        order_key="client:1",
        payload={},
    )
    db.session.add_all([endpoint, event_row])
    db.session.flush()
    db.session.add(
        WebhookDelivery(
            endpoint_id=endpoint.id,
            event=event_row,
            order_key="client:1",
            due_at=due_at,
            status=DeliveryStatus.pending,
        )
    )


def _at(slug: str) -> Any:
    return clinic_scope(db.session.scalar(select(Clinic).where(Clinic.slug == slug)))


def test_the_gauges_count_the_work_due_at_every_clinic(app, scraper, frozen):
    with app.app_context():
        make_clinic("alpha")
        make_clinic("beta")
        with _at("alpha"):
            _due_message("due", NOW - timedelta(minutes=10))
            _due_message("later", NOW + timedelta(days=1))
            _due_message("given-up", NOW - timedelta(days=1), OutboxStatus.failed)
            _webhook_delivery(NOW - timedelta(minutes=5))
            # Deliveries to a disabled endpoint wait for it to be enabled: not work due.
            _webhook_delivery(NOW - timedelta(hours=2), enabled=False)
            db.session.commit()
        with _at("beta"):
            _due_message("due", NOW - timedelta(minutes=1))
            _due_message("also-due", NOW - timedelta(minutes=1))
            _webhook_delivery(NOW + timedelta(minutes=30))
            db.session.commit()

    found = scrape(scraper)

    # Each clinic counted once, as its own: alpha's one and beta's two.
    assert value(found, "clinic_saas_work_due", kind="outbox_messages") == 3
    assert value(found, "clinic_saas_outbox_failed_messages") == 1
    assert value(found, "clinic_saas_work_due", kind="webhook_deliveries") == 1
    assert value(found, "clinic_saas_webhook_lag_seconds") == 300
    assert value(found, "clinic_saas_work_due", kind="lapsed_holds") == 0


def test_the_work_due_is_read_in_the_same_number_of_statements_for_any_number_of_clinics(app):
    def statements_for(clinics: int) -> int:
        with app.app_context():
            for n in range(clinics):
                make_clinic(f"clinic{clinics}-{n}")
            seen: list[str] = []

            def count(*args: Any) -> None:
                seen.append(args[2])

            event.listen(db.engine, "before_cursor_execute", count)
            try:
                metrics.read_work_due(db.engine, NOW)
            finally:
                event.remove(db.engine, "before_cursor_execute", count)
            return len(seen)

    one = statements_for(1)
    assert statements_for(4) == one
    assert one <= 2


def test_only_the_operators_metrics_token_reads_the_metrics(app, scraper):
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
    staff_token = issue_token(app, "alpha", "owner@alpha.example.com")

    anonymous = scraper.get("/metrics")
    assert_problem(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(scraper.get("/metrics", headers={"Authorization": f"Bearer {staff_token}"}), 403)
    assert_problem(scraper.get("/metrics", headers={"Authorization": "Bearer x" + TOKEN}), 403)

    app.config["METRICS_TOKEN"] = None  # unset: no token opens it
    assert_problem(scraper.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}), 403)


def test_each_request_to_stripe_is_counted_by_outcome(app, monkeypatch):
    answers: list[Any] = [200, 402, 500, 429, stripe.APIConnectionError("unreachable")]

    def answer(self: Any, *args: Any) -> Any:
        given = answers.pop(0)
        if isinstance(given, Exception):
            raise given
        return b"{}", given, {}

    monkeypatch.setattr(stripe.RequestsClient, "request", answer)
    counted = "clinic_saas_stripe_requests_total"
    before = {o: REGISTRY.get_sample_value(counted, {"outcome": o}) for o in ("ok", "error")}
    http = BudgetedRequests((1.0, 1.0))
    with app.app_context():
        for _ in range(4):
            http.request("get", "https://api.stripe.com/v1/balance", {})
        with pytest.raises(stripe.APIConnectionError):
            http.request("get", "https://api.stripe.com/v1/balance", {})

    after = {o: REGISTRY.get_sample_value(counted, {"outcome": o}) for o in ("ok", "error")}
    # A declined card (402) is Stripe answering as it should; 5xx, 429 and no answer are not.
    assert after["ok"] - before["ok"] == 2
    assert after["error"] - before["error"] == 3


def test_with_several_workers_a_scrape_adds_up_every_workers_counts(app, scraper, tmp_path: Path):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    # A worker answers one request, counted as its own metrics module counts it.
    worker = (
        "from core.platform import metrics; metrics.REQUESTS.labels('GET', '/livez', '200').inc()"
    )
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    workers = [subprocess.Popen([sys.executable, "-c", worker], env=environment) for _ in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]

    app.config["PROMETHEUS_MULTIPROC_DIR"] = str(shared)
    found = scrape(scraper)

    requests = "clinic_saas_http_requests_total"
    assert value(found, requests, method="GET", route="/livez", status="200") == 2
    # The database gauges are read at the scrape as before, not from the workers' files.
    assert value(found, "clinic_saas_work_due", kind="outbox_messages") == 0
    assert ("clinic_saas_webhook_lag_seconds", ()) in found


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("METRICS_TOKEN", "too-short", "at least 32 characters"),
        ("PROMETHEUS_MULTIPROC_DIR", "/no/such/directory", "a directory"),
    ],
)
def test_a_metrics_setting_that_cannot_work_stops_the_start(
    monkeypatch, tmp_path, name, value, words
):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError) as refused:
        from_environment(tmp_path)
    assert name in str(refused.value) and words in str(refused.value)
