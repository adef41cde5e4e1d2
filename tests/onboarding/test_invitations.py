"""A clinic's first owner is invited by email and sets a password through a single-use link.

The same link serves every staff member's password reset. Only the token's digest
is stored; the token travels in the email (read here from the outbox).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import clock
from core.accounts.models import PasswordLink
from core.extensions import db
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import PASSWORD, assert_problem, make_clinic, make_staff

NEW_PASSWORD = "kowhai blossoms in spring"


@pytest.fixture
def operator(app):
    with app.app_context():
        make_clinic("kowhai")
        make_clinic("rimu")
    created = app.test_cli_runner().invoke(
        args=["operator", "create", "--email", "ops@example.com", "--name", "Ops"],
        env={"CLINIC_SAAS_PASSWORD": PASSWORD},
    )
    assert created.exit_code == 0, created.output
    http = app.test_client()
    assert (
        http.post(
            "/api/v1/platform/session", json={"email": "ops@example.com", "password": PASSWORD}
        ).status_code
        == 201
    )
    return http


def _codes(app, slug: str, kind: str) -> list[str]:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            bodies = db.session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
            ).all()
            return [re.search(r"Your code: (\S+)", m.details["body"]).group(1) for m in bodies]


def _invite(operator, email="aroha@kowhai.example.nz"):
    return operator.post(
        "/api/v1/platform/clinics/kowhai/invitations", json={"email": email, "name": "Aroha"}
    )


def test_the_first_owner_sets_a_password_and_signs_in(app, operator):
    invited = _invite(operator)
    assert invited.status_code == 201, invited.get_data(as_text=True)
    assert invited.get_json() == {
        "email": "aroha@kowhai.example.nz",
        "role": "owner",
        "expires_in_hours": 72,
    }
    (code,) = _codes(app, "kowhai", "staff_invitation")
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "kowhai"))
        with clinic_scope(clinic):
            assert db.session.scalar(select(PasswordLink.token_hash)) != code  # only a digest
    http = app.test_client()
    sign_in = {"email": "aroha@kowhai.example.nz", "password": NEW_PASSWORD}
    assert_problem(http.post("/api/v1/clinics/kowhai/session", json=sign_in), 401)
    done = http.post(
        "/api/v1/clinics/kowhai/password", json={"token": code, "password": NEW_PASSWORD}
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    session = http.post("/api/v1/clinics/kowhai/session", json=sign_in)
    assert session.status_code == 201
    assert session.get_json()["role"] == "owner"


def test_a_link_works_once(app, operator):
    _invite(operator)
    (code,) = _codes(app, "kowhai", "staff_invitation")
    http = app.test_client()
    body = {"token": code, "password": NEW_PASSWORD}
    assert http.post("/api/v1/clinics/kowhai/password", json=body).status_code == 200
    again = http.post(
        "/api/v1/clinics/kowhai/password", json={**body, "password": "another long passphrase"}
    )
    assert_problem(again, 409, "link-used")


def test_a_lapsed_invitation_is_refused(app, operator):
    _invite(operator)
    (code,) = _codes(app, "kowhai", "staff_invitation")
    with time_machine.travel(clock.now() + timedelta(days=3, minutes=1), tick=False):
        lapsed = app.test_client().post(
            "/api/v1/clinics/kowhai/password", json={"token": code, "password": NEW_PASSWORD}
        )
    assert_problem(lapsed, 409, "link-expired")


def test_a_link_is_good_only_at_its_clinic_and_a_weak_password_spends_nothing(app, operator):
    _invite(operator)
    (code,) = _codes(app, "kowhai", "staff_invitation")
    http = app.test_client()
    elsewhere = http.post(
        "/api/v1/clinics/rimu/password", json={"token": code, "password": NEW_PASSWORD}
    )
    assert_problem(elsewhere, 404)
    weak = http.post("/api/v1/clinics/kowhai/password", json={"token": code, "password": "abc"})
    assert [e["field"] for e in assert_problem(weak, 422)["errors"]] == ["password"]
    fine = http.post(
        "/api/v1/clinics/kowhai/password", json={"token": code, "password": NEW_PASSWORD}
    )
    assert fine.status_code == 200


def test_a_reset_says_the_same_for_anyone_and_only_the_newest_link_works(app, operator):
    with app.app_context():
        make_staff("kowhai", "kim@kowhai.example.nz")
    http = app.test_client()
    unknown = http.post(
        "/api/v1/clinics/kowhai/password-reset", json={"email": "nobody@example.com"}
    )
    known = http.post(
        "/api/v1/clinics/kowhai/password-reset", json={"email": "kim@kowhai.example.nz"}
    )
    assert unknown.status_code == known.status_code == 202
    assert unknown.get_json() == known.get_json()
    http.post("/api/v1/clinics/kowhai/password-reset", json={"email": "kim@kowhai.example.nz"})
    first, newest = _codes(app, "kowhai", "password_reset")
    old = http.post(
        "/api/v1/clinics/kowhai/password", json={"token": first, "password": NEW_PASSWORD}
    )
    assert_problem(old, 409, "link-used")
    new = http.post(
        "/api/v1/clinics/kowhai/password", json={"token": newest, "password": NEW_PASSWORD}
    )
    assert new.status_code == 200
    signed_in = http.post(
        "/api/v1/clinics/kowhai/session",
        json={"email": "kim@kowhai.example.nz", "password": NEW_PASSWORD},
    )
    assert signed_in.status_code == 201
