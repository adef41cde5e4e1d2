"""A client's acceptance of the clinic's policy, stored with the booking as evidence for a fee."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.accounts.models import Role
from core.bookings import services as bookings
from core.bookings.models import Booking, PolicyAcceptance, PolicyVersion
from core.errors import Invalid
from core.extensions import db
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
from tests.local_days import clinic_day, local_time
from tests.payment_flows import GUEST, book, scoped

ZONE = "America/Los_Angeles"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15"
# The notice window (whose words say what happens to a deposit, as no deposit clause of its own
# is worded) and the refund rule: two clauses shown at booking.
CLAUSES = {"booking_clauses": ["cancellation", "refund"]}


@pytest.fixture
def clinics(app):
    """Alpha (a provider, a facial, a policy of two clauses) and beta, each with an owner."""
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider])
        set_clinic_settings("alpha", policy=CLAUSES)
        make_clinic("beta")
        make_staff("beta", "owner@beta.example.com", Role.owner)
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            location = db.session.scalar(select(Location.id))
    return {
        "app": app,
        "service": service,
        "location": location,
        "auth": {"Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"},
        "beta_auth": {
            "Authorization": f"Bearer {issue_token(app, 'beta', 'owner@beta.example.com')}"
        },
    }


def book_online(client, ctx, *, accept_policy=None, headers=None, days=3):
    body = {
        "client": GUEST,
        "service_id": ctx["service"],
        "location_id": ctx["location"],
        "starts_at": local_time(ZONE, clinic_day(ZONE, days), 10).isoformat(),
    }
    if accept_policy is not None:
        body["accept_policy"] = accept_policy
    response = client.post(
        "/api/v1/clinics/alpha/bookings/online",
        json=body,
        headers=headers or {},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def stored(app, booking_id=None):
    def query():
        statement = select(PolicyAcceptance).order_by(PolicyAcceptance.id)
        if booking_id is not None:
            statement = statement.where(PolicyAcceptance.booking_id == booking_id)
        return [
            {
                "booking_id": a.booking_id,
                "policy_version_id": a.policy_version_id,
                "clause_ids": a.clause_ids,
                "ip_address": a.ip_address,
                "user_agent": a.user_agent,
                "channel": a.channel,
                "accepted_at": a.accepted_at,
            }
            for a in db.session.scalars(statement)
        ]

    return scoped(app, query)


def version_clause_ids(app, version_id):
    return scoped(app, lambda: [c["id"] for c in db.session.get(PolicyVersion, version_id).clauses])


def test_an_online_booking_that_accepts_the_policy_stores_the_acceptance_with_the_booking(
    client, clinics
):
    # The requirement: "the clinic's policy in its own words before paying: the clauses that
    # apply to this booking (notice window, the fee this service would carry, what happens to
    # the deposit), from the same decision objects the API uses, and an explicit acceptance.
    # The acceptance is stored with the booking: policy version, clause ids, time, IP address
    # and user agent, so a disputed fee has its evidence."
    body = book_online(client, clinics, accept_policy=True, headers={"User-Agent": BROWSER})
    booking = body["booking"]
    version = booking["policy_version_id"]
    clause_ids = version_clause_ids(clinics["app"], version)
    assert clause_ids == ["default_policy.cancellation", "default_policy.refund"]
    # The clauses accepted are the ones the booking showed, from the same decision.
    assert clause_ids == [c["id"] for c in body["policy"]]

    [acceptance] = stored(clinics["app"])
    assert acceptance["booking_id"] == booking["id"]
    assert acceptance["policy_version_id"] == version
    assert acceptance["clause_ids"] == clause_ids
    assert acceptance["ip_address"] == "203.0.113.7"
    assert acceptance["user_agent"] == BROWSER
    assert acceptance["channel"] == "online"
    assert acceptance["accepted_at"].tzinfo is not None

    # Staff read it with the booking.
    shown = client.get(f"/api/v1/clinics/alpha/bookings/{booking['id']}", headers=clinics["auth"])
    assert shown.status_code == 200
    assert shown.get_json()["policy_acceptances"] == [
        {
            "policy_version_id": version,
            "clause_ids": clause_ids,
            "accepted_at": acceptance["accepted_at"].isoformat(),
            "ip_address": "203.0.113.7",
            "user_agent": BROWSER,
            "channel": "online",
        }
    ]


def test_an_online_booking_without_accepting_stores_no_acceptance(client, clinics):
    first = book_online(client, clinics)
    second = book_online(client, clinics, accept_policy=False, days=4)
    assert stored(clinics["app"]) == []
    for body in (first, second):
        shown = client.get(
            f"/api/v1/clinics/alpha/bookings/{body['booking']['id']}", headers=clinics["auth"]
        )
        assert shown.get_json()["policy_acceptances"] == []


def test_a_long_user_agent_is_kept_truncated(client, clinics):
    book_online(client, clinics, accept_policy=True, headers={"User-Agent": "x" * 1000})
    [acceptance] = stored(clinics["app"])
    assert acceptance["user_agent"] == "x" * 400


def test_a_clause_not_in_the_bookings_policy_is_refused_and_nothing_is_stored(client, clinics):
    booking_id = book_online(client, clinics)["booking"]["id"]

    def accept(clause_ids):
        booking = db.session.get(Booking, booking_id)
        return bookings.accept_policy(
            booking,
            clause_ids=clause_ids,
            ip_address="203.0.113.7",
            user_agent=BROWSER,
            channel="staff",
        )

    for wrong in (["default_policy.cancellation", "another_clinic.no_show"], []):
        with pytest.raises(Invalid) as refused:
            scoped(clinics["app"], lambda wrong=wrong: accept(wrong))
        assert [e["field"] for e in refused.value.errors] == ["accept_policy"]
    assert stored(clinics["app"]) == []
    # A clause the booking did show is accepted.
    scoped(clinics["app"], lambda: accept(["default_policy.cancellation"]))
    assert [a["clause_ids"] for a in stored(clinics["app"])] == [["default_policy.cancellation"]]
    assert scoped(
        clinics["app"],
        lambda: [a.channel for a in bookings.acceptances(db.session.get(Booking, booking_id))],
    ) == ["staff"]


def test_another_clinic_cannot_see_the_acceptance(client, clinics):
    booking_id = book_online(client, clinics, accept_policy=True)["booking"]["id"]
    at_beta = client.get(
        f"/api/v1/clinics/beta/bookings/{booking_id}", headers=clinics["beta_auth"]
    )
    assert_problem(at_beta, 404)
    with clinics["app"].app_context():
        beta = db.session.scalar(select(Clinic).where(Clinic.slug == "beta"))
        with clinic_scope(beta):
            assert db.session.scalar(select(func.count()).select_from(PolicyAcceptance)) == 0
    assert len(stored(clinics["app"], booking_id)) == 1


def test_saving_a_card_through_the_self_service_link_stores_the_acceptance(client, live):
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={"guarantee": "card_or_gift_certificate"})
    body = book(client, live)
    assert stored(live["app"]) == []
    url = f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/card-setup"
    refused = client.post(url, json={"accept_policy": False})
    assert_problem(refused, 422)
    assert stored(live["app"]) == []
    setup = client.post(
        url,
        json={"accept_policy": True},
        headers={"User-Agent": BROWSER},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
    )
    assert setup.status_code == 200, setup.get_data(as_text=True)
    [acceptance] = stored(live["app"])
    version = body["booking"]["policy_version_id"]
    assert acceptance["booking_id"] == body["booking"]["id"]
    assert acceptance["policy_version_id"] == version
    assert acceptance["clause_ids"] == version_clause_ids(live["app"], version)
    assert acceptance["clause_ids"] == [c["id"] for c in body["policy"]]
    assert (acceptance["ip_address"], acceptance["user_agent"]) == ("198.51.100.23", BROWSER)
    assert acceptance["channel"] == "self_service"


def test_a_repeated_online_booking_records_its_acceptance_once(client, clinics):
    # The acceptance commits with the booking and the stored answer: a retry replays both.
    key = {"Idempotency-Key": "accept-once-1"}
    first = book_online(client, clinics, accept_policy=True, headers=key)
    again = book_online(client, clinics, accept_policy=True, headers=key)
    assert again["booking"]["id"] == first["booking"]["id"]
    assert len(stored(clinics["app"])) == 1


def test_deleting_a_clients_financial_records_deletes_their_acceptances_too(client, clinics):
    # Without it, PostgreSQL's foreign key would refuse to delete the accepted booking.
    from core.clients.models import Client
    from core.hooks.decisions import RecordKind
    from core.privacy.services.deletion import _purge
    from core.unit_of_work import unit_of_work

    booking_id = book_online(client, clinics, accept_policy=True)["booking"]["id"]

    def purge():
        record = db.session.get(Client, db.session.get(Booking, booking_id).client_id)
        with unit_of_work():
            _purge(record, RecordKind.financial, identity_kept=True)
        return db.session.scalar(select(func.count()).select_from(Booking))

    assert scoped(clinics["app"], purge) == 0
    assert stored(clinics["app"]) == []


def test_the_clients_link_answers_with_their_booking_not_staffs_evidence(client, clinics):
    # The acceptance is staff's evidence: a decision answered through the client's link shows
    # their booking as they see it, without the recorded addresses and browsers.
    body = book_online(client, clinics, accept_policy=True, headers={"User-Agent": BROWSER})
    token = body["self_service_token"]
    cancelled = client.post(f"/api/v1/clinics/alpha/self-service/{token}/cancellation")
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert "policy_acceptances" not in cancelled.get_json()["booking"]
    assert len(stored(clinics["app"])) == 1
