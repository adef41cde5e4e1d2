"""When a dependency fails, answers are fast and clean and the data holds exactly what was promised.

Each fault is real: Redis pointed at a port where nothing listens, database
connections terminated by PostgreSQL (``pg_terminate_backend``) in the middle
of a burst, and a Stripe that refuses, drops or never answers, from the fault
switch of the local Stripe server's proxy.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import select, text
from werkzeug.serving import make_server

from core.bookings.models import Booking
from core.extensions import db
from tests.conftest import built_app
from tests.database import APP_LOGIN_ROLE
from tests.helpers import (
    assert_problem,
    issue_token,
    login,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
)
from tests.local_days import clinic_day, local_time
from tests.payment_flows import (
    GUEST,
    book,
    deliver_intent_event,
    ledger_of,
    pay_in_browser,
    scoped,
)
from tests.stripe_server import free_port

# --- Redis out of reach ------------------------------------------------------------------


@pytest.fixture
def without_redis(test_db, tmp_path):
    # A port with nothing behind it: every connection is refused at once.
    with built_app(
        test_db,
        tmp_path,
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{free_port()}/0",
        LOGIN_ACCOUNT_RATE_LIMIT="5 per minute",
    ) as app:
        with app.app_context():
            make_clinic("alpha")
            make_staff("alpha", "owner@alpha.example.com")
        yield app


def test_staff_sign_in_without_redis_and_the_limit_still_holds(without_redis, caplog):
    # The choice documented in the README: counters fall back to the process, with a warning;
    # never a 500, and never a door left open.
    import time_machine

    http = without_redis.test_client()
    # The clock holds still: the attempts all fall in one window of the limit, whenever
    # the test runs (a window that turned over midway would let the sixth through).
    with time_machine.travel(time.time(), tick=False):
        assert login(http, "alpha", "owner@alpha.example.com").status_code == 201
        answers = [
            login(http, "alpha", "owner@alpha.example.com", "wrong password").status_code
            for _ in range(7)
        ]
    assert answers == [401] * 5 + [429] * 2
    assert "rate-limit counters unreachable" in caplog.text


# --- Stripe that hangs, drops or refuses --------------------------------------------------

#: The documented budget for Stripe of one request on a page (STRIPE_WEB_BUDGET), and a
#: second for the rest of the request's work.
WEB_BUDGET_SECONDS = 10 + 1


def _online(client, live, key: str):
    zone = "America/Los_Angeles"
    return client.post(
        "/api/v1/clinics/alpha/bookings/online",
        json={
            "client": GUEST,
            "service_id": live["service"],
            "location_id": live["location"],
            "starts_at": local_time(zone, clinic_day(zone, 3), 10).isoformat(),
        },
        headers={"Idempotency-Key": key},
    )


def _bookings(live) -> list[tuple[str, str]]:
    def read():
        return [(b.status.value, b.client.email) for b in db.session.scalars(select(Booking))]

    return scoped(live["app"], read)


def test_a_hung_stripe_answers_within_the_budget_and_the_booking_stands_with_a_retry(client, live):
    # Stripe accepts the connection and never answers: the booking is made, held, and the
    # client is told how to pay once Stripe is back, within the budget, not minutes later.
    live["stripe"].hang("/v1/payment_intents")
    started = time.monotonic()
    first = _online(client, live, "book-hung-1")
    elapsed = time.monotonic() - started
    assert first.status_code == 201, first.get_data(as_text=True)
    assert elapsed < WEB_BUDGET_SECONDS, elapsed
    body = first.get_json()
    assert body["payment"] is None
    retry = body["payment_retry"]
    assert retry["method"] == "POST"
    assert retry["href"].endswith(f"/self-service/{body['self_service_token']}/deposit-payment")
    assert _bookings(live) == [("held", "maya@example.com")]

    # The retry route itself says the provider is unavailable: 503 with Retry-After, in budget.
    started = time.monotonic()
    again = client.post(retry["href"])
    retried_in = time.monotonic() - started
    assert retried_in < WEB_BUDGET_SECONDS
    print(
        f"\nhung Stripe: booking answered 201 in {elapsed:.1f} s, its retry 503 in {retried_in:.1f} s"
    )
    problem = assert_problem(again, 503, "payments-unavailable")
    assert again.headers["Retry-After"]
    assert problem["status"] == 503

    # Stripe is back: the same booking repeated with its key gives the payment step, and
    # only one booking and one PaymentIntent exist.
    live["stripe"].restore()
    replayed = _online(client, live, "book-hung-1")
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    payment = replayed.get_json()["payment"]
    assert payment["client_secret"] and replayed.get_json()["payment_retry"] is None
    assert replayed.get_json()["booking"]["id"] == body["booking"]["id"]
    # A further replay returns the same step, without asking Stripe again.
    intents = len(live["stripe"].calls_to("/v1/payment_intents"))
    third = _online(client, live, "book-hung-1").get_json()
    assert third["payment"] == payment
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == intents
    assert _bookings(live) == [("held", "maya@example.com")]


def test_a_dropped_stripe_connection_is_a_503_with_retry_after_and_nothing_moves(client, live):
    body = book(client, live)  # a deposit owed and its intent started
    token = body["self_service_token"]
    live["stripe"].drop("/v1/setup_intents")
    answer = client.post(
        f"/api/v1/clinics/alpha/self-service/{token}/card-setup", json={"accept_policy": True}
    )
    assert_problem(answer, 503, "payments-unavailable")
    assert int(answer.headers["Retry-After"]) > 0
    assert ledger_of(live) == []


# --- database connections dropped ----------------------------------------------------------


@pytest.fixture
def postgres(database):
    if not database.is_postgres:
        pytest.skip("connections are terminated with PostgreSQL's pg_terminate_backend")
    return database


def _terminate_app_connections(database) -> int:
    with database.owner.connect() as owner:
        ended = owner.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity "
                "WHERE usename = :role AND datname = current_database() "
                "ORDER BY random() LIMIT 1) AS one"
            ),
            {"role": APP_LOGIN_ROLE},
        ).scalar_one()
        owner.commit()
    return int(ended)


@pytest.fixture
def served(app):
    """The app on a real HTTP port, its staff token, a client, a provider and a service."""
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com")
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    headers = {"Authorization": f"Bearer {token}"}
    http = app.test_client()
    client_id = http.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Maya", "legal_last_name": "Lopez", "email": "m@example.com"},
        headers=headers,
    ).get_json()["id"]
    location = http.get("/api/v1/clinics/alpha/locations", headers=headers).get_json()
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "url": f"http://127.0.0.1:{port}",
        "headers": headers,
        "client": client_id,
        "service": service,
        "location": location["items"][0]["id"],
    }
    server.shutdown()


def _post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def test_pooled_connections_ended_while_idle_cost_a_request_nothing(postgres, app, client):
    # The pool does not ping a connection before lending it (a round trip on every request):
    # a request whose first statement finds its connection gone runs once more on a fresh one.
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com")
    headers = {"Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"}
    assert client.get("/api/v1/clinics/alpha/staff", headers=headers).status_code == 200
    with postgres.owner.connect() as owner:
        ended = owner.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = :role AND datname = current_database()"
            ),
            {"role": APP_LOGIN_ROLE},
        ).scalar_one()
        owner.commit()
    assert ended >= 1  # the connection the last request returned to the pool

    answer = client.get("/api/v1/clinics/alpha/staff", headers=headers)
    assert answer.status_code == 200, answer.get_json()


def test_connections_dropped_during_a_burst_give_503_or_success_never_500(postgres, served):
    # Forty staff bookings, eight at a time, while one of the app's connections is terminated
    # every 100 ms. Each answer is the booking or a 503 to retry; retried under its key, each makes
    # exactly one booking.
    zone = "America/Los_Angeles"
    requests = [
        (
            f"burst-{n}",
            {
                "client_id": served["client"],
                "service_id": served["service"],
                "location_id": served["location"],
                "starts_at": local_time(zone, clinic_day(zone, 2 + n // 8), 9 + n % 8).isoformat(),
            },
        )
        for n in range(40)
    ]
    url = served["url"] + "/api/v1/clinics/alpha/bookings"

    def send(item: tuple[str, dict]) -> tuple[str, int, dict]:
        key, body = item
        status, answer = _post(url, body, {**served["headers"], "Idempotency-Key": key})
        return key, status, answer

    stop = threading.Event()
    terminated = []

    def terminate() -> None:
        while not stop.is_set():
            terminated.append(_terminate_app_connections(postgres))
            time.sleep(0.1)

    killer = threading.Thread(target=terminate)
    killer.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, requests))
    finally:
        stop.set()
        killer.join()

    statuses = Counter(status for _, status, _ in answers)
    print(f"\nburst: {len(answers)} bookings, {sum(terminated)} connections terminated, {statuses}")
    refused = [(key, status, answer) for key, status, answer in answers if status not in (201, 503)]
    assert set(statuses) <= {201, 503}, (statuses, refused[:3])  # the first answers say why
    for _, status, answer in answers:
        if status == 503:
            assert answer["type"].endswith("/database-unavailable")
    # Retried under their keys once the database is steady, every booking exists once.
    made = {key: answer["id"] for key, status, answer in answers if status == 201}
    for key, status, _ in answers:
        if status != 201:
            again = send(next(item for item in requests if item[0] == key))
            assert again[1] == 201, again
            made[key] = again[2]["id"]
    replays = [send(item) for item in requests]
    assert {key: answer["id"] for key, _, answer in replays} == made
    with postgres.owner.connect() as owner:
        rows = owner.execute(text("SELECT count(*), count(DISTINCT starts_at) FROM booking")).one()
    assert tuple(rows) == (40, 40)


def test_a_webhook_meeting_a_dropped_connection_gets_503_and_applies_once_when_resent(
    postgres, client, live
):
    # Stripe re-sends an event that was not answered 2xx; the first attempt's connection is
    # terminated while the event is being recorded, so it must say 503 (try again), and the
    # re-sent event then moves the money exactly once.
    body = book(client, live)
    live["stripe"].webhook_target = None  # Stripe's own delivery is what we send by hand
    intent_id = pay_in_browser(live, body["payment"])
    engine = scoped(live["app"], lambda: db.engine)
    drops = {"left": 2}  # the request and its one transparent retry

    @sqlalchemy_event.listens_for(engine, "before_cursor_execute")
    def drop_connection(conn, cursor, statement, *args):
        if drops["left"] and "stripe_event" in statement:
            drops["left"] -= 1
            pid = conn.connection.dbapi_connection.info.backend_pid
            with postgres.owner.connect() as owner:
                owner.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    def deliver():
        return deliver_intent_event(client, intent_id, "evt_dropped")

    try:
        refused = deliver()
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", drop_connection)
    assert_problem(refused, 503, "database-unavailable")
    assert refused.headers["Retry-After"]
    assert ledger_of(live) == []
    assert deliver().status_code == 200
    assert deliver().get_json()["outcome"] == "already applied"
    assert ledger_of(live) == [("deposit_received", 5000)]
