"""Builders for test data: clinics, locations and staff, made through the real services."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.accounts import services as accounts
from core.accounts.models import Role
from core.extensions import db
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope

PASSWORD = "correct horse battery staple"


def make_clinic(slug: str, *, locations: tuple[str, ...] = ("main",), **fields: Any) -> int:
    """Create a clinic with locations; return its id. Call inside an app context."""
    clinic = Clinic(
        slug=slug,
        name=fields.pop("name", slug.title()),
        timezone=fields.pop("timezone", "America/Los_Angeles"),
        currency=fields.pop("currency", "USD"),
        country=fields.pop("country", "US"),
        **fields,
    )
    db.session.add(clinic)
    db.session.commit()
    clinic_id = clinic.id
    with clinic_scope(clinic):
        for loc in locations:
            db.session.add(
                Location(
                    slug=loc, name=f"{slug} {loc}", country=clinic.country, timezone=clinic.timezone
                )
            )
        db.session.commit()
    return clinic_id


def make_staff(
    slug: str, email: str, role: Role | str = Role.owner, password: str = PASSWORD
) -> int:
    """Add ``email`` to clinic ``slug``'s staff with ``role``; return the membership id."""
    clinic = db.session.query(Clinic).filter_by(slug=slug).one()
    with clinic_scope(clinic):
        membership = accounts.add_staff(email, email.split("@")[0], Role(role), password)
        db.session.commit()
        return membership.id


def login(client: FlaskClient, slug: str, email: str, password: str = PASSWORD) -> Any:
    """Sign ``client`` in to clinic ``slug``; return the response."""
    return client.post(
        f"/api/v1/clinics/{slug}/session", json={"email": email, "password": password}
    )


def issue_token(app: Flask, slug: str, email: str) -> str:
    """Return a fresh API token secret for ``email`` at clinic ``slug``."""
    with app.app_context():
        clinic = db.session.query(Clinic).filter_by(slug=slug).one()
        with clinic_scope(clinic):
            membership = accounts.membership_of(accounts.user_by_email(email))
            _, secret = accounts.issue_token(membership, "test")
            db.session.commit()
            return secret


def assert_problem(response: Any, status: int, kind: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem document with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["type"].startswith("https://")
    assert body["title"]
    if kind is not None:
        assert body["type"].endswith("/" + kind), body
    return body
