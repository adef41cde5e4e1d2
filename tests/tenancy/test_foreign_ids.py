"""Every route with an id in its path answers 404 for another clinic's id, whoever asks.

The routes come from the OpenAPI document, so a new route is covered the day it
is added. Beta is given rows in the tables those ids point at; alpha's owner
then asks for each of them at alpha's URL, with an API token and with a session
cookie. The answer must be the one a never-used id gets: 404 where nothing but
the id decides, and never a 2xx, so nothing says whether beta's row exists.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from sqlalchemy import text

from core.extensions import db
from core.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import issue_token, login, make_clinic, make_provider, make_service, make_staff
from tests.local_days import clinic_day, local_time

#: Which table each path parameter points into; the path decides where one name serves two.
TABLES: dict[str, str] = {
    "token_id": "api_token",
    "client_id": "client",
    "note_id": "clinical_note",
    "consent_id": "consent",
    "photo_id": "photo",
    "grant_id": "emergency_access",
    "service_id": "service",
    "provider_id": "provider",
    "booking_id": "booking",
    "incident_id": "breach_incident",
    "notice_id": "breach_notice",
    "recipient_id": "data_recipient",
    "review_id": "opt_out_review",
    "sale_id": "sale",
    "line_id": "sale_line",
    "package_id": "client_package",
    "endpoint_id": "webhook_endpoint",
    "delivery_id": "webhook_delivery",
    "dispute_id": "dispute",
}
#: Path parameters that are not row ids: a signed self-service link (tested with the
#: bookings), a version number within a client's intake, the platform's clinic slug.
NOT_IDS = {"clinic_slug", "token", "payment_id", "version", "slug", "name"}  # name: a report
NEVER_USED = 987_654


def _table_for(path: str, param: str) -> str:
    if param == "membership_id":
        return "membership" if "/staff/" in path else "client_membership"
    if param == "request_id":
        return "privacy_request" if "/privacy-requests/" in path else "refund_request"
    return TABLES[param]


def _routes_with_ids(app) -> list[tuple[str, str]]:
    spec = app.test_client().get("/api/openapi.json").get_json()
    found = []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/clinics/{clinic_slug}/"):
            continue
        params = [p for p in re.findall(r"{(\w+)}", path) if p not in NOT_IDS]
        if not params:
            continue
        for method in operations:
            if method in {"get", "post", "put", "patch", "delete"}:
                found.append((method, path))
    return found


@pytest.fixture
def beta_rows(app):
    """Alpha and beta, beta with a client, notes, a consent, a provider, a service and a booking."""
    with app.app_context():
        make_clinic("alpha")
        make_clinic("beta")
        make_staff("alpha", "owner@alpha.example.com")
        make_staff("beta", "owner@beta.example.com")
        provider = make_provider("beta", "kim@beta.example.com")
        service = make_service("beta", "facial", provider_ids=[provider])
    beta = app.test_client()
    auth = {"Authorization": f"Bearer {issue_token(app, 'beta', 'owner@beta.example.com')}"}
    api = "/api/v1/clinics/beta"
    client = beta.post(
        f"{api}/clients",
        json={
            "legal_first_name": "Zoë",
            "legal_last_name": "Hernández",
            "date_of_birth": "1990-04-02",
            "email": "zoe@example.com",
        },
        headers=auth,
    ).get_json()
    consent = {"text": "Photos for my record.", "text_version": "1", "method": "written"}
    for path, body in (
        ("notes", {"kind": "treatment", "body": "Tolerated the peel well."}),
        ("consents", {**consent, "kind": "clinical_photos"}),
        ("intake", {"answers": {"allergies": ["none"]}}),
    ):
        made = beta.post(f"{api}/clients/{client['id']}/{path}", json=body, headers=auth)
        assert made.status_code == 201, made.get_data(as_text=True)
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="JPEG")
    photo = beta.post(
        f"{api}/clients/{client['id']}/photos",
        data={"kind": "before", "image": (io.BytesIO(image.getvalue()), "before.jpg")},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert photo.status_code == 201, photo.get_data(as_text=True)
    location = beta.get(f"{api}/locations", headers=auth).get_json()["items"][0]["id"]
    starts = local_time("America/Los_Angeles", clinic_day("America/Los_Angeles", 3), 10)
    booked = beta.post(
        f"{api}/bookings",
        json={
            "client_id": client["id"],
            "service_id": service,
            "location_id": location,
            "starts_at": starts.isoformat(),
        },
        headers=auth,
    )
    assert booked.status_code == 201, booked.get_data(as_text=True)
    with app.app_context():
        clinic = db.session.query(Clinic).filter_by(slug="beta").one()
        with clinic_scope(clinic):
            # A webhook endpoint with a delivery of beta's client to it.
            endpoint = WebhookEndpoint(
                url="https://hooks.beta.example.com/in", event_types=["client.created"], secret="s"
            )
            event = WebhookEvent(
                public_id="evt_beta", type="client.created", order_key="client:1", payload={}
            )
            db.session.add(endpoint)
            db.session.flush()
            db.session.add(WebhookDelivery(endpoint_id=endpoint.id, event=event, order_key="x"))
            db.session.commit()
            ids = {}
            for table in {*TABLES.values(), "membership", "client_membership"} | {
                "privacy_request",
                "refund_request",
            }:
                ids[table] = db.session.scalar(
                    text(f'SELECT min(id) FROM "{table}" WHERE clinic_id = :c'), {"c": clinic.id}
                )
    # The rows that make this test worth running exist; the rest answer as never-used ids do.
    made = ("client", "clinical_note", "consent", "photo", "booking", "webhook_endpoint")
    assert all(ids[t] for t in (*made, "webhook_delivery"))
    return ids


@pytest.mark.parametrize("credential", ["token", "session"])
def test_every_route_with_an_id_answers_404_for_another_clinics_id(app, beta_rows, credential):
    http = app.test_client()
    if credential == "token":
        headers = {
            "Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"
        }
    else:
        assert login(http, "alpha", "owner@alpha.example.com").status_code == 201
        headers = {}
    routes = _routes_with_ids(app)
    assert len(routes) > 50  # the document lists the routes it should

    def ask(method: str, path: str, pick) -> tuple[int, object]:
        url = path.replace("{clinic_slug}", "alpha")
        for param in re.findall(r"{(\w+)}", path):
            if param not in NOT_IDS:
                url = url.replace("{" + param + "}", str(pick(path, param)))
        url = url.replace("{version}", "1")
        body = None if method in {"get", "delete"} else {}
        response = http.open(url, method=method.upper(), json=body, headers=headers)
        return response.status_code, response.get_json()

    wrong = []
    for method, path in routes:
        foreign = ask(method, path, lambda p, n: beta_rows[_table_for(p, n)] or NEVER_USED)
        never = ask(method, path, lambda p, n: NEVER_USED)
        status = foreign[0]
        if method in {"get", "delete"} and status != 404:
            wrong.append((method, path, status))
        elif 200 <= status < 300 or status != never[0]:
            # A body the route refuses (422) is refused alike for any id; what is never
            # allowed is an answer that differs from a never-used id's.
            wrong.append((method, path, status, never[0]))
    assert wrong == []
