"""A clinic's setup kept in memory by each server: used only while no server has changed it.

Two apps on one database stand for two servers: each keeps its own copies, so
a change made through one must be seen by the other's very next request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from core.extensions import db
from core.integrations.models import WebhookEvent
from core.tenancy.models import Clinic, ClinicStatus
from core.tenancy.scope import clinic_scope
from tests.app.test_statement_counts import statements_counted
from tests.conftest import TestSettings, built_app
from tests.helpers import assert_problem, issue_token, make_staff, set_clinic_settings
from tests.integrations.conftest import TOMORROW_TEN
from tests.integrations.test_webhooks import book, register


@pytest.fixture
def other(test_db: TestSettings, tmp_path: Path) -> Iterator[Flask]:
    """A second server on the same database, with memory of its own."""
    with built_app(test_db, tmp_path / "other") as built:
        built.config.update(WEBHOOKS_ALLOW_HTTP=True, WEBHOOKS_ALLOW_PRIVATE=True)
        yield built


def _setup_version(app: Flask, slug: str = "alpha") -> int:
    with app.app_context():
        return db.session.scalar(select(Clinic.setup_version).where(Clinic.slug == slug))


def _token_id(app: Flask, secret: str) -> int:
    from core.accounts.models import ApiToken

    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(clinic):
            return db.session.scalar(select(ApiToken.id).where(ApiToken.prefix == secret[:12]))


def test_a_token_revoked_through_another_server_is_refused_at_once(app, client, alpha, other):
    staff = f"{alpha['api']}/staff"
    assert client.get(staff, headers=alpha["auth"]).status_code == 200
    assert client.get(staff, headers=alpha["auth"]).status_code == 200  # kept by now
    secret = alpha["auth"]["Authorization"].removeprefix("Bearer ")
    other_owner = {
        "Authorization": f"Bearer {issue_token(app, 'alpha', 'owner@alpha.example.com')}"
    }
    revoked = other.test_client().delete(
        f"{alpha['api']}/tokens/{_token_id(app, secret)}", headers=other_owner
    )
    assert revoked.status_code == 204

    assert_problem(client.get(staff, headers=alpha["auth"]), 401, "invalid-token")


def test_a_role_lowered_through_another_server_applies_at_once(app, client, alpha, other):
    with app.app_context():
        manager = make_staff("alpha", "lee@alpha.example.com", "manager")
    lee = {"Authorization": f"Bearer {issue_token(app, 'alpha', 'lee@alpha.example.com')}"}
    staff = f"{alpha['api']}/staff"
    assert client.get(staff, headers=lee).status_code == 200
    assert client.get(staff, headers=lee).status_code == 200

    lowered = other.test_client().patch(
        f"{staff}/{manager}", json={"role": "front_desk"}, headers=alpha["auth"]
    )
    assert lowered.status_code == 200, lowered.get_json()
    assert_problem(client.get(staff, headers=lee), 403)

    removed = other.test_client().delete(f"{staff}/{manager}", headers=alpha["auth"])
    assert removed.status_code == 204
    # Leaving the staff revokes their tokens too.
    assert_problem(client.get(f"{alpha['api']}/bookings", headers=lee), 401, "invalid-token")


def test_an_endpoint_added_through_another_server_hears_the_next_booking(
    app, client, alpha, other, receiver
):
    def events() -> int:
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
            with clinic_scope(clinic):
                return db.session.scalar(select(func.count()).select_from(WebhookEvent))

    book(client, alpha)  # no endpoint listens: nothing is written, and that is kept
    assert events() == 0
    register(other.test_client(), alpha, receiver.url + "/hooks", ["booking.created"])

    book(client, alpha, starts_at=TOMORROW_TEN.replace("T10", "T14"))
    assert events() == 1


def test_a_service_taken_offline_through_another_server_has_no_times_at_once(
    app, client, alpha, other
):
    times = (
        f"{alpha['api']}/availability?service_id={alpha['service']}&from=2026-03-03&to=2026-03-03"
    )
    assert client.get(times).get_json()["count"] > 0
    assert client.get(times).get_json()["count"] > 0  # the service and its places are kept

    offline = other.test_client().patch(
        f"{alpha['api']}/services/{alpha['service']}",
        json={"online_bookable": False},
        headers=alpha["auth"],
    )
    assert offline.status_code == 200, offline.get_json()
    assert_problem(client.get(times), 404)


def test_the_clinics_setup_version_moves_with_setup_and_not_with_business(app, client, alpha):
    before = _setup_version(app)
    # Business: a booking, and the token's use noted. Neither is setup.
    book(client, alpha)
    client.get(f"{alpha['api']}/staff", headers=alpha["auth"])
    assert _setup_version(app) == before

    # Setup: a service's price.
    changed = client.patch(
        f"{alpha['api']}/services/{alpha['service']}",
        json={"price": "120.00"},
        headers=alpha["auth"],
    )
    assert changed.status_code == 200, changed.get_json()
    assert _setup_version(app) == before + 1


def test_a_kept_token_costs_no_statement_and_a_changed_setup_reads_it_again(app, client, alpha):
    staff = f"{alpha['api']}/staff"
    client.get(staff, headers=alpha["auth"])
    with statements_counted(app) as kept:
        client.get(staff, headers=alpha["auth"])
    assert not any("api_token" in statement for statement in kept)

    with app.app_context():
        make_staff("alpha", "new@alpha.example.com", "provider")  # raises the version
    with statements_counted(app) as read_again:
        client.get(staff, headers=alpha["auth"])
    assert sum("api_token" in statement for statement in read_again) == 1


def test_a_clinic_setting_changed_through_another_server_applies_at_once(app, client, alpha, other):
    times = (
        f"{alpha['api']}/availability?service_id={alpha['service']}&from=2026-03-03&to=2026-03-03"
    )
    before = client.get(times).get_json()["count"]
    assert client.get(times).get_json()["count"] == before  # the clinic's row is kept

    with other.app_context():
        set_clinic_settings("alpha", bookings={"slot_step_minutes": 60})
    # Starts an hour apart from 9:00 to 16:00, where the default step gave more.
    assert before > client.get(times).get_json()["count"] == 8


def test_a_clinic_suspended_through_another_server_is_closed_at_once(app, client, alpha, other):
    staff = f"{alpha['api']}/staff"
    assert client.get(staff, headers=alpha["auth"]).status_code == 200
    with other.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic.status = ClinicStatus.suspended
        db.session.commit()
    assert_problem(client.get(staff, headers=alpha["auth"]), 403, "clinic-suspended")


def test_a_user_disabled_through_another_server_is_refused_at_once(app, client, alpha, other):
    # Users belong to no clinic, so their rows raise no clinic's version: the user of a kept
    # token is read afresh with the clinic's id, in the request's first statement.
    from core.accounts.models import User

    staff = f"{alpha['api']}/staff"
    assert client.get(staff, headers=alpha["auth"]).status_code == 200
    assert client.get(staff, headers=alpha["auth"]).status_code == 200
    with other.app_context():
        owner = db.session.scalar(select(User).where(User.email == "owner@alpha.example.com"))
        owner.active = False
        db.session.commit()
    assert_problem(client.get(staff, headers=alpha["auth"]), 401, "invalid-token")


def test_a_kept_rows_settings_changed_in_place_by_one_request_reach_no_other(app, alpha):
    from core.tenancy.kept import attach, detached_copy

    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        clinic.booking_settings = {"hold_minutes": 15}
        kept_copy = detached_copy(clinic)
        # The row it was copied from is changed in place after the copy was made.
        clinic.booking_settings["hold_minutes"] = 99
        db.session.rollback()
        db.session.remove()
        first = attach(kept_copy)
        assert first.booking_settings == {"hold_minutes": 15}
        first.booking_settings["hold_minutes"] = 30  # one request's change, never saved
        db.session.remove()
        second = attach(kept_copy)
        assert second.booking_settings == {"hold_minutes": 15}


def test_who_performs_a_service_changed_through_another_server_shows_on_its_page_at_once(
    app, client, alpha, other
):
    from tests.helpers import make_provider

    page = f"/book/alpha/services/{alpha['service']}?from=2026-03-03"
    with app.app_context():
        lee = make_provider("alpha", "lee@alpha.example.com")
    first = client.get(page)
    assert first.status_code == 200
    assert ">Kim</option>" in first.get_data(as_text=True)
    assert ">Lee</option>" not in first.get_data(as_text=True)
    assert ">Lee</option>" not in client.get(page).get_data(as_text=True)  # kept

    both = other.test_client().patch(
        f"{alpha['api']}/services/{alpha['service']}",
        json={"provider_ids": [alpha["provider"], lee]},
        headers=alpha["auth"],
    )
    assert both.status_code == 200, both.get_json()
    assert ">Lee</option>" in client.get(page).get_data(as_text=True)

    offline = other.test_client().patch(
        f"{alpha['api']}/services/{alpha['service']}",
        json={"online_bookable": False},
        headers=alpha["auth"],
    )
    assert offline.status_code == 200, offline.get_json()
    assert client.get(page).status_code == 404
