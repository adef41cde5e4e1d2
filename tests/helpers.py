"""Builders for test data: clinics, locations and staff, made through the real services."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.accounts import services as accounts
from core.accounts.models import Role
from core.encryption.services import ensure_data_key
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
        ensure_data_key()
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


def make_provider(
    slug: str,
    email: str,
    *,
    hours: tuple[tuple[int, str, str], ...] = tuple((day, "09:00", "17:00") for day in range(7)),
    location: str = "main",
    credential: str | None = None,
) -> int:
    """Make ``email`` a provider at clinic ``slug`` working ``hours`` (weekday, start, end); return its id."""
    from datetime import time

    from core.schedules import services as schedules

    make_staff(slug, email, Role.provider)
    clinic = db.session.query(Clinic).filter_by(slug=slug).one()
    with clinic_scope(clinic):
        user = accounts.user_by_email(email)
        membership = accounts.membership_of(user)
        provider = schedules.add_provider(membership.id, email.split("@")[0].title(), credential)
        location_id = db.session.query(Location).filter_by(slug=location).one().id
        schedules.set_hours(
            provider,
            [
                {
                    "location_id": location_id,
                    "weekday": day,
                    "starts": time.fromisoformat(a),
                    "ends": time.fromisoformat(b),
                }
                for day, a, b in hours
            ],
        )
        db.session.commit()
        return provider.id


def make_service(
    slug: str,
    service_slug: str,
    *,
    provider_ids: list[int],
    duration: int = 60,
    buffer: int = 0,
    price: str = "100.00",
    category: str = "esthetician",
    location: str = "main",
) -> int:
    """Add a service at clinic ``slug`` performed by ``provider_ids``; return its id."""
    from core.catalog import services as catalog

    clinic = db.session.query(Clinic).filter_by(slug=slug).one()
    with clinic_scope(clinic):
        location_id = db.session.query(Location).filter_by(slug=location).one().id
        service = catalog.save_service(
            None,
            {
                "slug": service_slug,
                "name": service_slug.title(),
                "category": category,
                "duration_minutes": duration,
                "buffer_minutes": buffer,
                "price": price,
                "location_ids": [location_id],
                "provider_ids": provider_ids,
            },
            clinic.currency,
        )
        db.session.commit()
        return service.id


def set_clinic_settings(
    slug: str, *, bookings: dict[str, Any] | None = None, policy: dict[str, Any] | None = None
) -> None:
    """Change a clinic's booking settings or default-policy settings, as its tenants/ file would."""
    from core.bookings.settings import BookingSettingsSchema, dump_booking_settings
    from core.defaults.policy import DefaultPolicySettings

    clinic = db.session.query(Clinic).filter_by(slug=slug).one()
    if bookings is not None:
        clinic.booking_settings = dump_booking_settings(BookingSettingsSchema().load(bookings))
    if policy is not None:
        schema = DefaultPolicySettings()
        clinic.plugin_settings = {
            **(clinic.plugin_settings or {}),
            "default_policy": schema.dump(schema.load(policy)),
        }
    db.session.commit()
