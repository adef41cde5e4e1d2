"""Every error is an RFC 9457 problem document naming the field and the reason; bad input never 500s."""

from __future__ import annotations

import pytest

from core.accounts.models import Role
from tests.helpers import assert_problem, login, make_clinic, make_staff


@pytest.fixture
def signed_in(app, client):
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
    login(client, "alpha", "owner@alpha.example.com")
    return client


def test_malformed_json_is_a_400_problem(signed_in):
    response = signed_in.patch(
        "/api/v1/clinics/alpha", data="{not json", content_type="application/json"
    )
    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]


def test_wrong_types_name_each_field(signed_in):
    response = signed_in.patch(
        "/api/v1/clinics/alpha",
        json={
            "idle_timeout_minutes": "soon",
            "contact_email": "not-an-email",
            "timezone": "Mars/Olympus",
        },
    )
    body = assert_problem(response, 422, "validation-failed")
    fields = {e["field"]: e for e in body["errors"]}
    assert set(fields) == {"idle_timeout_minutes", "contact_email", "timezone"}
    assert fields["idle_timeout_minutes"]["pointer"] == "#/idle_timeout_minutes"
    assert fields["idle_timeout_minutes"]["location"] == "json"
    assert "integer" in fields["idle_timeout_minutes"]["detail"].lower()
    assert "timezone" in fields["timezone"]["detail"].lower()


def test_unknown_fields_are_refused_not_ignored(signed_in):
    body = assert_problem(signed_in.patch("/api/v1/clinics/alpha", json={"slug": "stolen"}), 422)
    assert body["errors"][0]["field"] == "slug"


def test_a_refused_update_changes_nothing(signed_in):
    before = signed_in.get("/api/v1/clinics/alpha").get_json()
    signed_in.patch("/api/v1/clinics/alpha", json={"name": "Renamed", "idle_timeout_minutes": 999})
    assert signed_in.get("/api/v1/clinics/alpha").get_json() == before


def test_a_json_array_instead_of_an_object_is_refused(signed_in):
    assert_problem(signed_in.patch("/api/v1/clinics/alpha", json=[1, 2]), 422)


def test_out_of_range_path_ids_are_not_found(signed_in):
    assert_problem(signed_in.get("/api/v1/clinics/alpha/staff/999999999999999999999"), 404)
    assert_problem(signed_in.get("/api/v1/clinics/alpha/staff/abc"), 404)


def test_unknown_route_is_a_404_problem(client):
    body = assert_problem(client.get("/no/such/route"), 404)
    assert body["instance"] == "/no/such/route"


def test_wrong_method_is_a_405_problem_with_allow(client):
    response = client.put("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_unexpected_errors_are_500_problems_without_a_stack_trace(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    from core.accounts.access import declare_public

    declare_public(app, "boom")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.test_client().get("/boom")
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert body["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/clinics/%00", None),
        ("/api/v1/clinics/alpha/session", '{"email": "a\\u0000@b.example.com", "password": "x"}'),
        (
            "/api/v1/clinics/alpha/session",
            '{"email": "a@b.example.com", "password": ' + "1" * 5000 + "}",
        ),
        ("/api/v1/clinics/alpha/session", "[" * 100_000),
    ],
)
def test_hostile_input_gets_a_4xx_problem_never_a_500(signed_in, path, body):
    if body is None:
        response = signed_in.get(path)
    else:
        response = signed_in.post(path, data=body, content_type="application/json")
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


def test_nul_characters_in_names_are_refused(signed_in):
    assert_problem(signed_in.patch("/api/v1/clinics/alpha", json={"name": "Al\u0000pha"}), 400)


def test_over_long_values_are_refused_with_the_field(signed_in):
    body = assert_problem(
        signed_in.patch(
            "/api/v1/clinics/alpha", json={"website": "https://example.com/" + "a" * 600}
        ),
        422,
    )
    assert body["errors"][0]["field"] == "website"


def test_blank_names_are_refused(signed_in):
    body = assert_problem(signed_in.post("/api/v1/clinics/alpha/tokens", json={"name": "   "}), 422)
    assert body["errors"][0]["field"] == "name"


def test_a_body_over_the_size_limit_is_a_413_problem(signed_in, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    assert_problem(
        signed_in.patch("/api/v1/clinics/alpha", data="x" * 2000, content_type="application/json"),
        413,
    )


def test_a_name_a_location_already_has_is_a_409_naming_the_field(signed_in):
    location = signed_in.get("/api/v1/clinics/alpha/locations").get_json()["items"][0]["id"]
    room = {"location_id": location, "name": "Laser room", "capacity": 1}
    assert signed_in.post("/api/v1/clinics/alpha/resources", json=room).status_code == 201
    body = assert_problem(
        signed_in.post("/api/v1/clinics/alpha/resources", json=room), 409, "already-exists"
    )
    assert {e["field"] for e in body["errors"]} == {"location_id", "name"}
    rooms = signed_in.get("/api/v1/clinics/alpha/resources").get_json()["items"]
    assert [r["name"] for r in rooms] == ["Laser room"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"legal_first_name": "\\ud800", "legal_last_name": "Lopez"}',
        '{"legal_first_name": "Maya", "legal_last_name": "Lopez", "notes": ["ok", "\\udfff"]}',
        '{"\\udc00": "x", "legal_last_name": "Lopez"}',
    ],
)
def test_text_with_a_lone_surrogate_is_refused_naming_the_field(signed_in, raw):
    response = signed_in.post(
        "/api/v1/clinics/alpha/clients", data=raw, content_type="application/json"
    )
    body = assert_problem(response, 400)
    assert "lone surrogate" in body["errors"][0]["detail"]
    assert body["errors"][0]["pointer"].startswith("#/")
    assert signed_in.get("/api/v1/clinics/alpha/clients").get_json()["items"] == []


def test_a_surrogate_pair_is_ordinary_text(signed_in):
    response = signed_in.post(
        "/api/v1/clinics/alpha/clients",
        data='{"legal_first_name": "Maya \\ud83c\\udf38", "legal_last_name": "Lopez", '
        '"email": "maya@example.com"}',
        content_type="application/json",
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["legal_first_name"] == "Maya \N{CHERRY BLOSSOM}"


# --- security headers --------------------------------------------------------------------


def test_health_data_is_never_cached_and_no_response_is_sniffed(signed_in):
    created = signed_in.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Maya", "legal_last_name": "Lopez", "email": "m@example.com"},
    ).get_json()
    intake = signed_in.post(
        f"/api/v1/clinics/alpha/clients/{created['id']}/intake",
        json={"answers": {"allergies": ["latex"]}},
    )
    assert intake.status_code == 201
    responses = {
        "intake": signed_in.get(f"/api/v1/clinics/alpha/clients/{created['id']}/intake"),
        "client": signed_in.get(f"/api/v1/clinics/alpha/clients/{created['id']}"),
        "problem": signed_in.get("/api/v1/clinics/alpha/clients/999999"),
        "unknown route": signed_in.get("/nowhere"),
    }
    for name, response in responses.items():
        assert response.headers["Cache-Control"] == "no-store", name
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "no-referrer", name
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], name
    # Documents about no one may be cached; they are still never sniffed.
    spec = signed_in.get("/api/openapi.json")
    assert "no-store" not in spec.headers.get("Cache-Control", "")
    assert spec.headers["X-Content-Type-Options"] == "nosniff"


def test_https_deployments_ask_browsers_to_stay_on_https(app, signed_in):
    assert "Strict-Transport-Security" not in signed_in.get("/healthz").headers
    app.config["SESSION_COOKIE_SECURE"] = True
    assert signed_in.get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_availability_for_a_date_far_out_of_reach_is_refused_naming_the_field(signed_in, day):
    response = signed_in.get(f"/api/v1/clinics/alpha/availability?service_id=1&from={day}&to={day}")
    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["from"]


def test_each_domain_refusal_has_one_status_and_keeps_its_kind_fields_and_details():
    from core.errors import (
        Invalid,
        NotAllowed,
        NotFound,
        PaymentFailed,
        Refused,
        TooLarge,
        Unauthenticated,
        Unavailable,
        Unreadable,
        UnsupportedFile,
        UpstreamFailed,
        as_problem,
        field_error,
    )

    statuses = {
        family.__name__: as_problem(family("why")).status
        for family in (
            NotFound,
            Invalid,
            TooLarge,
            UnsupportedFile,
            Unauthenticated,
            Unreadable,
            Refused,
            NotAllowed,
            PaymentFailed,
            UpstreamFailed,
            Unavailable,
        )
    }
    assert statuses == {
        "NotFound": 404,
        "Invalid": 422,
        "TooLarge": 413,
        "UnsupportedFile": 415,
        "Unauthenticated": 401,
        "Unreadable": 400,
        "Refused": 409,
        "NotAllowed": 403,
        "PaymentFailed": 402,
        "UpstreamFailed": 502,
        "Unavailable": 503,
    }
    problem = as_problem(
        Refused(
            "This gift certificate has been used up.",
            kind="used-up",
            errors=[field_error("code", "used up")],
            tender=7,
        )
    ).to_dict()
    assert problem["type"].endswith("/used-up")
    assert problem["detail"] == "This gift certificate has been used up."
    assert problem["errors"][0]["field"] == "code" and problem["tender"] == 7


def test_every_answer_carries_a_request_id_and_problems_quote_it(client):
    answer = client.get("/api/v1/clinics/nowhere/clients")
    problem = answer.get_json()
    assert answer.headers["Request-Id"] == problem["request_id"]
    assert len(problem["request_id"]) == 32
    # A caller's own id is kept, so one request can be followed across systems ...
    given = client.get("/healthz", headers={"Request-Id": "lb-7f3a.42"})
    assert given.headers["Request-Id"] == "lb-7f3a.42"
    # ... unless it could forge a log line or a header.
    forged = client.get("/healthz", headers={"Request-Id": "a b\tc" + "x" * 200})
    assert forged.headers["Request-Id"] != "a b\tc" + "x" * 200
    assert len(forged.headers["Request-Id"]) == 32
    assert client.get("/healthz").headers["Request-Id"] != forged.headers["Request-Id"]


def test_each_request_is_one_json_log_event_with_no_token_or_client_data(client, caplog):
    import json
    import logging

    caplog.set_level(logging.INFO, logger="clinic_saas.requests")
    secret_link = "eyJjIjoxLCJiIjo0Mn0.c2lnbmF0dXJl"
    client.get(
        f"/api/v1/clinics/nowhere/self-service/{secret_link}?email=maya@example.com",
        headers={"Authorization": "Bearer cst_secret-token", "Request-Id": "trace-1"},
    )
    events = [json.loads(r.getMessage()) for r in caplog.records if r.name.endswith("requests")]
    assert len(events) == 1
    event = events[0]
    assert event["request_id"] == "trace-1" and event["method"] == "GET"
    assert event["route"] == "/api/v1/clinics/<clinic_slug>/self-service/<token>"
    assert event["status"] == 404 and event["duration_ms"] >= 0
    logged = json.dumps(event)
    for secret in (secret_link, "maya@example.com", "cst_secret-token"):
        assert secret not in logged
