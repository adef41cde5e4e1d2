"""Availability and the booking lifecycle: local time across DST, holds, policy decisions, no double booking."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import clock
from core.accounts.models import Role
from core.bookings.models import Booking
from core.extensions import db
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.app.test_statement_counts import statements_counted
from tests.helpers import (
    assert_problem,
    issue_token,
    make_clinic,
    make_provider,
    make_service,
    make_staff,
    set_clinic_settings,
)

GUEST = {
    "legal_first_name": "Maya",
    "legal_last_name": "Lopez",
    "email": "maya@example.com",
    "phone": "(408) 555-0101",
    "date_of_birth": "1991-06-15",
}


def book_online(client, ctx, starts_at, *, guest=GUEST, headers=None, slug="alpha", location=None):
    with ctx["app"].app_context():
        location_id = location or _location_id(slug)
    return client.post(
        f"/api/v1/clinics/{slug}/bookings/online",
        json={
            "service_id": ctx["service"],
            "location_id": location_id,
            "provider_id": ctx["provider"],
            "starts_at": starts_at,
            "client": guest,
        },
        headers=headers or {},
    )


def _location_id(slug):
    from core.tenancy.models import Location

    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
    with clinic_scope(clinic):
        return db.session.scalar(select(Location.id))


def slots(client, ctx, start, end, slug="alpha"):
    response = client.get(
        f"/api/v1/clinics/{slug}/availability",
        query_string={"service_id": ctx["service"], "from": start, "to": end},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    found = sorted(start for day in body["items"] for start in day["starts"])
    assert body["count"] == len(found)
    return found


def count_bookings(app, slug="alpha", **filters):
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            query = select(func.count()).select_from(Booking)
            for key, value in filters.items():
                query = query.where(getattr(Booking, key) == value)
            return db.session.scalar(query)


# --- availability ---------------------------------------------------------------------


def test_availability_is_in_local_time_with_offsets_across_the_spring_change(client, alpha):
    found = slots(client, alpha, "2026-03-07", "2026-03-09")
    firsts = sorted({s for s in found if s.endswith(("T09:00:00-08:00", "T09:00:00-07:00"))})
    # 9:00 every day: PST on Saturday, PDT from Sunday 8 March (the change is at 2:00).
    assert firsts == [
        "2026-03-07T09:00:00-08:00",
        "2026-03-08T09:00:00-07:00",
        "2026-03-09T09:00:00-07:00",
    ]
    # A 60-minute service with a 17:00 close: the last start is 16:00 local on each side.
    assert "2026-03-08T16:00:00-07:00" in found and "2026-03-08T16:15:00-07:00" not in found


def test_availability_respects_minimum_notice_and_buffers(client, alpha):
    today = slots(client, alpha, "2026-03-02", "2026-03-02")
    # It is 10:00; two hours' notice means nothing before 12:00 today.
    assert today[0] == "2026-03-02T12:00:00-08:00"
    assert book_online(client, alpha, "2026-03-03T10:00:00-08:00").status_code == 201
    tomorrow = slots(client, alpha, "2026-03-03", "2026-03-03")
    # 60 minutes plus a 15-minute buffer: 10:00 to 11:15 is taken, and 9:15 would run into it.
    assert "2026-03-03T10:00:00-08:00" not in tomorrow
    assert "2026-03-03T09:15:00-08:00" not in tomorrow
    assert "2026-03-03T11:00:00-08:00" not in tomorrow
    assert "2026-03-03T09:00:00-08:00" not in tomorrow  # its own buffer would run into 10:00
    assert tomorrow[0] == "2026-03-03T11:15:00-08:00"


def test_time_off_removes_slots(client, alpha):
    response = client.post(
        f"/api/v1/clinics/alpha/providers/{alpha['provider']}/time-off",
        json={
            "starts_at": "2026-03-04T00:00:00-08:00",
            "ends_at": "2026-03-05T00:00:00-08:00",
            "reason": "training",
        },
        headers=alpha["auth"],
    )
    assert response.status_code == 201
    assert slots(client, alpha, "2026-03-04", "2026-03-04") == []
    assert slots(client, alpha, "2026-03-05", "2026-03-05")


def test_availability_across_new_zealand_daylight_saving_end(app, client, frozen):
    # Auckland leaves NZDT (+13) for NZST (+12) at 3:00 on Sunday 5 April 2026.
    with app.app_context():
        make_clinic("kiwi", timezone="Pacific/Auckland", currency="NZD", country="NZ")
        provider = make_provider("kiwi", "aroha@kiwi.example.com")
        service = make_service("kiwi", "peel", provider_ids=[provider], duration=30)
    found = slots(client, {"service": service}, "2026-04-04", "2026-04-06", slug="kiwi")
    nine = [s for s in found if "T09:00:00" in s]
    assert nine == [
        "2026-04-04T09:00:00+13:00",
        "2026-04-05T09:00:00+12:00",
        "2026-04-06T09:00:00+12:00",
    ]


def test_availability_range_is_validated(client, alpha):
    body = assert_problem(
        client.get(
            "/api/v1/clinics/alpha/availability",
            query_string={"service_id": alpha["service"], "from": "2026-03-10", "to": "2026-03-01"},
        ),
        422,
    )
    assert body["errors"][0]["field"] == "to"


# --- booking and refusals ------------------------------------------------------------------


def test_a_guest_books_online_and_gets_a_self_service_link(client, alpha):
    response = book_online(client, alpha, "2026-03-03T10:00:00-08:00")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    booking = body["booking"]
    assert booking["status"] == "confirmed"
    assert booking["starts_at"] == "2026-03-03T10:00:00-08:00"
    assert booking["price"] == {"amount": 10000, "currency": "USD", "display": "$100.00"}
    assert body["policy"] and body["policy"][0]["id"] == "default_policy.cancellation"
    assert booking["events"][0]["action"] == "booked"
    own = client.get(f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}")
    assert own.status_code == 200 and own.get_json()["id"] == booking["id"]


@pytest.mark.parametrize(
    ("starts_at", "kind"),
    [
        ("2026-03-02T11:00:00-08:00", "too-late"),  # inside the two hours' notice
        ("2026-03-03T07:00:00-08:00", "outside-hours"),
        ("2026-03-03T16:30:00-08:00", "outside-hours"),  # would end after 17:00
        ("2026-02-28T10:00:00-08:00", "in-past"),
        ("2026-09-01T10:00:00-07:00", "too-far"),  # beyond 90 days
    ],
)
def test_times_that_cannot_be_booked_are_refused_with_the_reason(client, alpha, starts_at, kind):
    body = assert_problem(book_online(client, alpha, starts_at), 409, kind)
    assert body["detail"]


def test_a_taken_slot_is_refused(client, alpha):
    assert book_online(client, alpha, "2026-03-03T10:00:00-08:00").status_code == 201
    other = {**GUEST, "email": "sam@example.com", "legal_first_name": "Sam"}
    assert_problem(
        book_online(client, alpha, "2026-03-03T10:30:00-08:00", guest=other), 409, "slot-taken"
    )
    assert book_online(client, alpha, "2026-03-03T11:15:00-08:00", guest=other).status_code == 201


@pytest.mark.parametrize(
    ("starts_at", "taken"),
    [
        ("2026-03-03T10:30:00-08:00", True),  # inside the booking
        ("2026-03-03T09:15:00-08:00", True),  # would run into it
        ("2026-03-03T09:00:00-08:00", True),  # its buffer would run into it
        ("2026-03-03T11:00:00-08:00", True),  # inside the booking's buffer
        ("2026-03-03T11:15:00-08:00", False),  # the moment the buffer ends
        ("2026-03-03T13:00:00-08:00", True),  # its buffer would run into the time off
        ("2026-03-03T14:30:00-08:00", True),  # inside the time off
        ("2026-03-03T15:00:00-08:00", False),  # the moment the time off ends
        ("2026-03-03T12:00:00-08:00", False),  # where a cancelled booking was
    ],
)
def test_a_time_is_refused_wherever_the_providers_calendar_overlaps_it(
    client, alpha, starts_at, taken
):
    # A 60-minute service with a 15-minute buffer; a booking at 10:00, time off 14:00 to 15:00,
    # and a booking at 12:00 cancelled: only what still occupies the provider stands in the way.
    assert book_online(client, alpha, "2026-03-03T10:00:00-08:00").status_code == 201
    away = client.post(
        f"/api/v1/clinics/alpha/providers/{alpha['provider']}/time-off",
        json={"starts_at": "2026-03-03T14:00:00-08:00", "ends_at": "2026-03-03T15:00:00-08:00"},
        headers=alpha["auth"],
    )
    assert away.status_code == 201, away.get_json()
    noon = {**GUEST, "email": "noon@example.com"}
    cancelled = book_online(client, alpha, "2026-03-03T12:00:00-08:00", guest=noon).get_json()
    assert (
        client.post(
            f"/api/v1/clinics/alpha/bookings/{cancelled['booking']['id']}/cancellation",
            json={"by": "clinic"},
            headers=alpha["auth"],
        ).status_code
        == 200
    )
    other = {**GUEST, "email": "sam@example.com", "legal_first_name": "Sam"}
    response = book_online(client, alpha, starts_at, guest=other)
    if taken:
        assert_problem(response, 409, "slot-taken")
    else:
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["booking"]["starts_at"] == starts_at


def test_a_minor_without_parental_consent_is_refused(app, client, alpha):
    # Bijoux: "all those under 18 years of age are not permitted in the treatment rooms unless
    # undergoing a treatment with written parental permission"
    with app.app_context():
        set_clinic_settings(
            "alpha",
            policy={
                "age_rules": [
                    {
                        "under": 18,
                        "requires": "written_parental_permission",
                        "clause": "all those under 18 years of age are not permitted in the treatment rooms unless undergoing a treatment with written parental permission",
                    }
                ]
            },
        )
    teen = {**GUEST, "date_of_birth": "2010-01-01"}
    body = assert_problem(
        book_online(client, alpha, "2026-03-03T10:00:00-08:00", guest=teen),
        409,
        "parental-consent-required",
    )
    assert "written parental permission" in body["detail"]
    assert count_bookings(app) == 0


def test_a_client_with_three_incidents_must_prepay(app, client, alpha, frozen):
    # Bijoux: "if a client has three instances of no-show or late cancellation, they will be required
    # to prepay for future services at the time of booking."
    with app.app_context():
        # Prepayment is taken online: the clinic has a Stripe account (none is called here).
        db.session.query(Clinic).filter_by(slug="alpha").one().stripe_account_id = "acct_alpha"
        db.session.commit()
        set_clinic_settings(
            "alpha",
            policy={
                "prepay_after_incidents": 3,
                "late_cancellation_fee": "50.00",
                "no_show_fee": "50.00",
            },
        )
    for day in (3, 4, 5):
        made = book_online(client, alpha, f"2026-03-0{day}T10:00:00-08:00").get_json()["booking"]
        frozen.move_to(datetime(2026, 3, day, 19, 0, tzinfo=UTC))  # 11:00 local, after the start
        assert (
            client.post(
                f"/api/v1/clinics/alpha/bookings/{made['id']}/no-show", headers=alpha["auth"]
            ).status_code
            == 200
        )
    fourth = book_online(client, alpha, "2026-03-10T10:00:00-07:00").get_json()["booking"]
    assert fourth["status"] == "held"
    assert [(c["kind"], c["amount"]["amount"], c["status"]) for c in fourth["charges"]] == [
        ("prepayment", 10000, "owed")
    ]
    confirm = client.post(
        f"/api/v1/clinics/alpha/bookings/{fourth['id']}/confirmation",
        json={"method": "card_on_file"},
        headers=alpha["auth"],
    )
    assert_problem(confirm, 409, "prepayment-required")
    assert (
        client.post(
            f"/api/v1/clinics/alpha/bookings/{fourth['id']}/confirmation",
            json={"method": "prepaid"},
            headers=alpha["auth"],
        ).get_json()["status"]
        == "confirmed"
    )


def test_plugins_see_no_shows_and_late_cancellations_counted_apart(app, client, alpha, frozen):
    # What a policy plugin is shown of a client: each kind of incident on its own.
    from core.hooks import hookimpl
    from core.tenancy.services import PLUGIN_HOST_KEY

    seen = []

    class Watcher:
        @hookimpl
        def clinic_booking_requirements(self, clinic, service, client, starts_at):
            seen.append((client.no_shows, client.late_cancellations, client.policy_incidents))

    with app.app_context():
        set_clinic_settings(
            "alpha", policy={"late_cancellation_fee": "50.00", "cancellation_window_hours": 24}
        )
        db.session.query(Clinic).filter_by(slug="alpha").one().enabled_plugins = ["watcher"]
        db.session.commit()
    with app.extensions[PLUGIN_HOST_KEY].registered(Watcher(), "watcher"):
        for day in (3, 4):
            made = book_online(client, alpha, f"2026-03-0{day}T10:00:00-08:00").get_json()
            frozen.move_to(datetime(2026, 3, day, 19, 0, tzinfo=UTC))
            no_show = client.post(
                f"/api/v1/clinics/alpha/bookings/{made['booking']['id']}/no-show",
                headers=alpha["auth"],
            )
            assert no_show.status_code == 200
        late = book_online(client, alpha, "2026-03-06T10:00:00-08:00").get_json()["booking"]
        frozen.move_to(datetime(2026, 3, 6, 12, 0, tzinfo=UTC))  # 04:00 local, six hours ahead
        cancelled = client.post(
            f"/api/v1/clinics/alpha/bookings/{late['id']}/cancellation",
            json={"by": "client"},
            headers=alpha["auth"],
        )
        assert cancelled.get_json()["decision"]["counts_as_late_cancellation"] is True
        book_online(client, alpha, "2026-03-10T10:00:00-07:00")
    assert seen == [(0, 0, 0), (1, 0, 1), (2, 0, 2), (2, 1, 3)]


def test_a_held_booking_frees_its_slot_when_the_hold_lapses(app, client, alpha, frozen):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the reservation"
    with app.app_context():
        set_clinic_settings(
            "alpha", policy={"guarantee": "card_or_gift_certificate"}, bookings={"hold_minutes": 15}
        )
    held = book_online(client, alpha, "2026-03-03T10:00:00-08:00").get_json()["booking"]
    assert held["status"] == "held"
    other = {**GUEST, "email": "sam@example.com"}
    assert_problem(
        book_online(client, alpha, "2026-03-03T10:00:00-08:00", guest=other), 409, "slot-taken"
    )
    frozen.shift(16 * 60)
    assert "2026-03-03T10:00:00-08:00" in slots(client, alpha, "2026-03-03", "2026-03-03")
    second = book_online(client, alpha, "2026-03-03T10:00:00-08:00", guest=other)
    assert second.status_code == 201
    first = client.get(
        f"/api/v1/clinics/alpha/bookings/{held['id']}", headers=alpha["auth"]
    ).get_json()
    assert first["status"] == "expired"
    late = client.post(
        f"/api/v1/clinics/alpha/bookings/{held['id']}/confirmation",
        json={"method": "card_on_file"},
        headers=alpha["auth"],
    )
    assert_problem(late, 409, "invalid-transition")


def test_the_jobs_expire_lapsed_holds(app, client, alpha, frozen, runner):
    with app.app_context():
        set_clinic_settings("alpha", policy={"guarantee": "card_on_file"})
    held = book_online(client, alpha, "2026-03-03T10:00:00-08:00").get_json()["booking"]
    frozen.shift(20 * 60)
    result = runner.invoke(args=["jobs", "run-once"])
    assert "1 holds expired" in result.output
    assert (
        client.get(
            f"/api/v1/clinics/alpha/bookings/{held['id']}", headers=alpha["auth"]
        ).get_json()["status"]
        == "expired"
    )


# --- idempotency -------------------------------------------------------------------------------


def test_a_retried_booking_with_the_same_key_returns_the_first_result(app, client, alpha):
    headers = {"Idempotency-Key": "4f1c2a9e-booking-1"}
    first = book_online(client, alpha, "2026-03-03T10:00:00-08:00", headers=headers)
    again = book_online(client, alpha, "2026-03-03T10:00:00-08:00", headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count_bookings(app) == 1
    different = book_online(client, alpha, "2026-03-03T13:00:00-08:00", headers=headers)
    assert_problem(different, 422, "idempotency-key-reused")
    assert count_bookings(app) == 1


# --- cancellation, reschedule, late arrival, no-show -----------------------------------------


FEES = {"cancellation_window_hours": 48, "late_cancellation_fee": "50.00", "no_show_fee": "100.00"}


def test_cancelling_inside_the_window_owes_the_fee_with_its_clause(app, client, alpha):
    with app.app_context():
        set_clinic_settings("alpha", policy=FEES)
    body = book_online(client, alpha, "2026-03-03T12:00:00-08:00").get_json()
    token = body["self_service_token"]
    preview = client.get(
        f"/api/v1/clinics/alpha/self-service/{token}/cancellation-preview"
    ).get_json()
    assert preview["decision"]["fee"]["amount"] == 5000
    assert preview["decision"]["within_notice_window"] is True
    assert "48 hours" in preview["decision"]["clause"]["text"]
    assert preview["booking"]["status"] == "confirmed"  # a preview changes nothing
    cancelled = client.post(f"/api/v1/clinics/alpha/self-service/{token}/cancellation").get_json()
    assert cancelled["booking"]["status"] == "cancelled"
    assert [(c["kind"], c["amount"]["amount"]) for c in cancelled["booking"]["charges"]] == [
        ("late_cancellation_fee", 5000)
    ]
    assert cancelled["booking"]["charges"][0]["clause_id"] == "default_policy.cancellation"


def test_cancelling_outside_the_window_is_free(app, client, alpha):
    with app.app_context():
        set_clinic_settings("alpha", policy=FEES)
    body = book_online(client, alpha, "2026-03-06T12:00:00-08:00").get_json()
    cancelled = client.post(
        f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/cancellation"
    ).get_json()
    assert cancelled["decision"]["fee"]["amount"] == 0
    assert cancelled["booking"]["charges"] == []


def test_a_link_for_one_clinic_means_nothing_at_another(app, client, alpha):
    with app.app_context():
        make_clinic("beta")
    token = book_online(client, alpha, "2026-03-03T12:00:00-08:00").get_json()["self_service_token"]
    assert_problem(client.get(f"/api/v1/clinics/beta/self-service/{token}"), 404)
    assert_problem(client.get(f"/api/v1/clinics/alpha/self-service/{token[:-2]}xx"), 404)


def test_rescheduling_moves_the_booking_and_frees_the_old_slot(app, client, alpha):
    body = book_online(client, alpha, "2026-03-05T10:00:00-08:00").get_json()
    moved = client.post(
        f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/reschedule",
        json={"starts_at": "2026-03-06T14:00:00-08:00"},
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["booking"]["starts_at"] == "2026-03-06T14:00:00-08:00"
    assert "2026-03-05T10:00:00-08:00" in slots(client, alpha, "2026-03-05", "2026-03-05")
    assert "2026-03-06T14:00:00-08:00" not in slots(client, alpha, "2026-03-06", "2026-03-06")
    assert count_bookings(app) == 1


def test_a_late_client_chooses_a_shortened_treatment_or_rescheduling_with_the_fee(
    app, client, alpha, frozen
):
    # Bijoux: "1) You may opt to shorten your treatment to within the remainder of your appointment time.
    # ... Abbreviated treatments are charged at full value ... 2) You may prefer to reschedule your
    # appointment at a more convenient time, however, a cancellation charge will be incurred."
    with app.app_context():
        set_clinic_settings("alpha", policy=FEES)
    first = book_online(client, alpha, "2026-03-03T10:00:00-08:00").get_json()["booking"]
    second = book_online(
        client, alpha, "2026-03-03T13:00:00-08:00", guest={**GUEST, "email": "b@example.com"}
    ).get_json()["booking"]
    frozen.move_to(datetime(2026, 3, 3, 18, 20, tzinfo=UTC))  # 10:20 local: 20 minutes late
    offered = client.post(
        f"/api/v1/clinics/alpha/bookings/{first['id']}/check-in", headers=alpha["auth"]
    ).get_json()
    assert offered["decision"]["minutes_late"] == 20
    assert offered["decision"]["options"] == ["shorten_full_price", "reschedule_with_fee"]
    assert offered["booking"]["status"] == "confirmed"
    shortened = client.post(
        f"/api/v1/clinics/alpha/bookings/{first['id']}/late-arrival",
        json={"option": "shorten_full_price"},
        headers=alpha["auth"],
    ).get_json()
    assert shortened["booking"]["status"] == "checked_in"
    assert shortened["booking"]["charges"] == []  # full price, no fee
    frozen.move_to(datetime(2026, 3, 3, 21, 25, tzinfo=UTC))  # 13:25 for the second
    moved = client.post(
        f"/api/v1/clinics/alpha/bookings/{second['id']}/late-arrival",
        json={"option": "reschedule_with_fee", "new_starts_at": "2026-03-05T13:00:00-08:00"},
        headers=alpha["auth"],
    ).get_json()
    assert moved["booking"]["starts_at"] == "2026-03-05T13:00:00-08:00"
    assert [(c["kind"], c["amount"]["amount"]) for c in moved["booking"]["charges"]] == [
        ("late_cancellation_fee", 5000)
    ]


def test_no_show_owes_the_fee_and_cannot_be_marked_early(app, client, alpha, frozen):
    with app.app_context():
        set_clinic_settings("alpha", policy=FEES)
    booking = book_online(client, alpha, "2026-03-03T10:00:00-08:00").get_json()["booking"]
    assert_problem(
        client.post(
            f"/api/v1/clinics/alpha/bookings/{booking['id']}/no-show", headers=alpha["auth"]
        ),
        409,
        "invalid-transition",
    )
    frozen.move_to(datetime(2026, 3, 3, 19, 0, tzinfo=UTC))
    marked = client.post(
        f"/api/v1/clinics/alpha/bookings/{booking['id']}/no-show", headers=alpha["auth"]
    ).get_json()
    assert marked["booking"]["status"] == "no_show"
    assert [(c["kind"], c["amount"]["amount"]) for c in marked["booking"]["charges"]] == [
        ("no_show_fee", 10000)
    ]
    events = client.get(
        f"/api/v1/clinics/alpha/bookings/{booking['id']}", headers=alpha["auth"]
    ).get_json()["events"]
    assert [e["action"] for e in events] == ["booked", "no_show"]
    assert events[1]["clause_id"] == "default_policy.cancellation"


def test_check_in_then_complete(client, alpha, frozen):
    booking = book_online(client, alpha, "2026-03-03T10:00:00-08:00").get_json()["booking"]
    frozen.move_to(datetime(2026, 3, 3, 17, 55, tzinfo=UTC))  # five minutes early
    checked = client.post(
        f"/api/v1/clinics/alpha/bookings/{booking['id']}/check-in", headers=alpha["auth"]
    ).get_json()
    assert checked["booking"]["status"] == "checked_in"
    done = client.post(
        f"/api/v1/clinics/alpha/bookings/{booking['id']}/completion", headers=alpha["auth"]
    )
    assert done.get_json()["status"] == "completed"
    assert_problem(
        client.post(
            f"/api/v1/clinics/alpha/bookings/{booking['id']}/cancellation",
            json={},
            headers=alpha["auth"],
        ),
        409,
        "invalid-transition",
    )


# --- no double booking ----------------------------------------------------------------------


def test_concurrent_requests_for_one_slot_make_exactly_one_booking(app, alpha, database):
    attempts = 50 if database.is_postgres else 12

    def attempt(n):
        guest = {**GUEST, "email": f"racer{n}@example.com", "legal_first_name": f"Racer{n}"}
        return book_online(
            app.test_client(), alpha, "2026-03-03T10:00:00-08:00", guest=guest
        ).status_code

    with ThreadPoolExecutor(max_workers=attempts if database.is_postgres else 6) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert statuses.count(201) == 1
    assert set(statuses) <= {201, 409}
    assert count_bookings(app, status="confirmed") == 1


def _staff_booking(app, alpha, **changes):
    made = app.test_client().post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Maya", "legal_last_name": "Lopez", "email": "m@example.com"},
        headers=alpha["auth"],
    )
    assert made.status_code == 201, made.get_json()
    with app.app_context():
        location_id = _location_id("alpha")
    return {
        "client_id": made.get_json()["id"],
        "service_id": alpha["service"],
        "location_id": location_id,
        "provider_id": alpha["provider"],
        "starts_at": "2026-03-03T10:00:00-08:00",
        **changes,
    }


def test_a_hundred_staff_bookings_for_one_slot_at_once_make_exactly_one(app, alpha, database):
    # The staff path, with its calendar lock and checks run as Core and the clinic's setup
    # kept in memory, keeps the same guarantee as the online one.
    attempts = 100 if database.is_postgres else 12
    body = _staff_booking(app, alpha)

    def attempt(n):
        return (
            app.test_client()
            .post("/api/v1/clinics/alpha/bookings", json=body, headers=alpha["auth"])
            .status_code
        )

    with ThreadPoolExecutor(max_workers=attempts if database.is_postgres else 6) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {201, 409}
    assert count_bookings(app, status="confirmed") == 1


def test_a_staff_booking_on_postgresql_takes_three_statements_and_its_commit(app, alpha, database):
    if not database.is_postgres:
        pytest.skip("the booking written in one statement is PostgreSQL's; SQLite flushes it")
    body = _staff_booking(app, alpha)
    http = app.test_client()
    # The first booking keeps the clinic's setup (the service, the place, the token).
    warm = dict(body, starts_at="2026-03-04T10:00:00-08:00")
    made = http.post("/api/v1/clinics/alpha/bookings", json=warm, headers=alpha["auth"])
    assert made.status_code == 201, made.get_json()
    with statements_counted(app) as seen:
        response = http.post("/api/v1/clinics/alpha/bookings", json=body, headers=alpha["auth"])
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["client_id"] == body["client_id"]
    # The guard; the provider's lock, bringing the client back; the booking written where
    # nothing overlaps it, with its event and reminders.
    assert len(seen) == 3, "\n\n".join(seen)
    assert "setup_version" in seen[0]
    assert seen[1].startswith("UPDATE provider") and "FROM client" in seen[1]
    assert "INSERT INTO booking" in seen[2] and "NOT (EXISTS" in seen[2]


def test_a_staff_booking_for_another_clinics_client_or_provider_is_refused(app, alpha):
    body = _staff_booking(app, alpha)
    http = app.test_client()
    with app.app_context():
        make_clinic("beta")
        make_staff("beta", "owner@beta.example.com", Role.owner)
        their_provider = make_provider("beta", "lee@beta.example.com")
    beta = {"Authorization": f"Bearer {issue_token(app, 'beta', 'owner@beta.example.com')}"}
    theirs = http.post(
        "/api/v1/clinics/beta/clients",
        json={"legal_first_name": "Ana", "legal_last_name": "Ng"},
        headers=beta,
    ).get_json()["id"]
    for changes, status, kind in (
        ({"client_id": theirs}, 404, "not-found"),
        ({"client_id": 10**9}, 404, "not-found"),
        ({"provider_id": their_provider}, 409, "not-offered-here"),
    ):
        response = http.post(
            "/api/v1/clinics/alpha/bookings", json={**body, **changes}, headers=alpha["auth"]
        )
        assert_problem(response, status, kind)
    assert count_bookings(app) == 0
    # Nothing was locked or left half-done: the same booking, as it should be, is made.
    made = http.post("/api/v1/clinics/alpha/bookings", json=body, headers=alpha["auth"])
    assert made.status_code == 201, made.get_json()


def test_the_database_itself_refuses_overlapping_bookings_on_postgresql(app, alpha, database):
    if not database.is_postgres:
        pytest.skip(
            "the exclusion constraint exists on PostgreSQL; SQLite relies on the calendar lock, tested above"
        )
    from sqlalchemy.exc import IntegrityError

    from core.bookings.models import BookingStatus

    with app.app_context():
        book_online(app.test_client(), alpha, "2026-03-03T10:00:00-08:00")
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            existing = db.session.scalar(select(Booking))
            clone = Booking(
                **{
                    c.key: getattr(existing, c.key)
                    for c in Booking.__table__.columns
                    if c.key not in ("id",)
                }
            )
            clone.starts_at = existing.starts_at + timedelta(minutes=30)
            clone.status = BookingStatus.confirmed
            db.session.add(clone)
            with pytest.raises(IntegrityError, match="booking_provider_no_overlap"):
                db.session.flush()


# --- reminders are written with the booking ----------------------------------------------------


def test_reminders_are_written_with_the_booking_and_withdrawn_when_it_is_cancelled(
    app, client, alpha
):
    # Bijoux: "we attempt to remind patients of appointments by phone/email/text 48 hours in advance and the morning of."
    with app.app_context():
        set_clinic_settings(
            "alpha",
            bookings={
                "reminders": [{"hours_before": 48}, {"morning_of": "08:00"}],
                "reminder_channels": ["email", "sms"],
            },
        )
    body = book_online(client, alpha, "2026-03-09T14:00:00-07:00").get_json()
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            due = sorted(
                (m.channel, clock.as_utc(m.due_at).strftime("%Y-%m-%d %H:%M"), m.status.value)
                for m in db.session.scalars(select(OutboxMessage))
                if m.kind == "reminder"
            )
    # The appointment is 14:00 PDT (21:00 UTC) on Monday 9 March. 48 hours before is an absolute
    # duration: 21:00 UTC on Saturday, which was 13:00 PST, before the change of 8 March.
    # "The morning of" is wall-clock 08:00 PDT: 15:00 UTC.
    assert due == [
        ("email", "2026-03-07 21:00", "pending"),
        ("email", "2026-03-09 15:00", "pending"),
        ("sms", "2026-03-07 21:00", "pending"),
        ("sms", "2026-03-09 15:00", "pending"),
    ]
    client.post(f"/api/v1/clinics/alpha/self-service/{body['self_service_token']}/cancellation")
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            messages = list(db.session.scalars(select(OutboxMessage)))
            assert {m.status.value for m in messages if m.kind == "reminder"} == {"withdrawn"}
            # What is left to send is the confirmation sent when it was booked, and the notice
            # of the cancellation, with the policy's clause.
            assert [m.kind for m in messages if m.kind == "booking_confirmed"] == [
                "booking_confirmed"
            ]
            (notice,) = [m for m in messages if m.kind not in ("reminder", "booking_confirmed")]
            assert notice.kind == "booking_notice" and notice.details["clause"]


def test_staff_book_for_a_client_and_front_desk_can_too(app, client, alpha):
    with app.app_context():
        make_staff("alpha", "desk@alpha.example.com", Role.front_desk)
    desk = {"Authorization": f"Bearer {issue_token(app, 'alpha', 'desk@alpha.example.com')}"}
    created = client.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Ana", "legal_last_name": "Ng"},
        headers=desk,
    ).get_json()
    with app.app_context():
        location_id = _location_id("alpha")
    response = client.post(
        "/api/v1/clinics/alpha/bookings",
        json={
            "client_id": created["id"],
            "service_id": alpha["service"],
            "location_id": location_id,
            "starts_at": "2026-03-02T10:30:00-08:00",
        },
        headers=desk,
    )
    # Staff may book inside the online notice period, but not outside working hours.
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["source"] == "staff"
    listed = client.get(
        "/api/v1/clinics/alpha/bookings", query_string={"client_id": created["id"]}, headers=desk
    ).get_json()
    assert listed["count"] == 1


def test_a_room_with_capacity_one_is_not_double_booked_across_providers(app, client, alpha):
    with app.app_context():
        other = make_provider("alpha", "lee@alpha.example.com")
    room = client.post(
        "/api/v1/clinics/alpha/resources",
        json={"location_id": _location_id_in(app), "name": "Laser room", "capacity": 1},
        headers=alpha["auth"],
    ).get_json()
    laser = client.post(
        "/api/v1/clinics/alpha/services",
        json={
            "slug": "laser",
            "name": "Laser",
            "category": "injection_laser",
            "duration_minutes": 30,
            "price": "150.00",
            "location_ids": [_location_id_in(app)],
            "provider_ids": [alpha["provider"], other],
            "resource_id": room["id"],
        },
        headers=alpha["auth"],
    )
    assert laser.status_code == 201, laser.get_json()
    ctx = {**alpha, "service": laser.get_json()["id"]}
    first = book_online(client, {**ctx, "provider": alpha["provider"]}, "2026-03-03T10:00:00-08:00")
    assert first.status_code == 201
    second = book_online(
        client,
        {**ctx, "provider": other},
        "2026-03-03T10:00:00-08:00",
        guest={**GUEST, "email": "b@example.com"},
    )
    assert_problem(second, 409, "resource-taken")
    # The other provider is free otherwise: the room is what is taken.
    assert (
        book_online(
            client,
            {**ctx, "provider": other},
            "2026-03-03T10:30:00-08:00",
            guest={**GUEST, "email": "b@example.com"},
        ).status_code
        == 201
    )


def _location_id_in(app):
    with app.app_context():
        return _location_id("alpha")


def test_an_idempotency_key_is_kept_a_day_and_then_forgotten(app, client, alpha, frozen):
    from core.idempotency import IdempotencyRecord
    from core.jobs.tasks import tick

    headers = {"Idempotency-Key": "4f1c2a9e-booking-2"}
    first = book_online(client, alpha, "2026-03-05T10:00:00-08:00", headers=headers)
    assert first.status_code == 201
    frozen.shift(timedelta(hours=23))
    again = book_online(client, alpha, "2026-03-05T10:00:00-08:00", headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"  # within the day: replayed
    frozen.shift(timedelta(hours=2))
    # A day on, the key names a new request, as Stripe's keys do.
    later = book_online(client, alpha, "2026-03-05T13:00:00-08:00", headers=headers)
    assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
    assert count_bookings(app) == 2

    def records() -> int:
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
            with clinic_scope(clinic):
                return db.session.scalar(select(func.count()).select_from(IdempotencyRecord))

    assert records() == 1
    frozen.shift(timedelta(hours=25))
    with app.app_context():
        tick()  # the jobs delete records past their day
    assert records() == 0


def test_the_bookings_list_is_walked_to_its_end_page_by_page(client, alpha):
    # Six bookings over three days, walked at page sizes that divide them and that do not.
    made = []
    for day in (3, 4, 5):
        for hour in (10, 12):
            guest = {**GUEST, "email": f"g{day}{hour}@example.com"}
            answer = book_online(client, alpha, f"2026-03-0{day}T{hour}:00:00-08:00", guest=guest)
            assert answer.status_code == 201, answer.get_json()
            made.append(answer.get_json()["booking"]["id"])
    url = "/api/v1/clinics/alpha/bookings"
    for limit in (1, 2, 4, 6, 7):
        seen, after, pages = [], None, 0
        while True:
            query = {"limit": limit, **({"after": after} if after else {})}
            page = client.get(url, query_string=query, headers=alpha["auth"]).get_json()
            pages += 1
            seen += [b["id"] for b in page["items"]]
            assert page["count"] == len(page["items"]) <= limit
            if not page["has_more"]:
                assert page["next_after"] is None
                break
            after = page["next_after"]
        assert seen == made, limit  # in start order, each once, none cut off
        assert pages == -(-len(made) // limit)  # no empty page at the end
    refused = client.get(url, query_string={"after": "bm9wZQ"}, headers=alpha["auth"])
    assert_problem(refused, 422)
    assert [e["field"] for e in refused.get_json()["errors"]] == ["after"]
