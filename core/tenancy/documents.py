"""A clinic as a document: what a tenants/ file holds, read back from the database.

The same document is a TOML file on disk and JSON in the operator API, and it
is what each kept revision of a clinic records. Reading a clinic back and
loading the result changes nothing: ``flask clinics export`` relies on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.catalog.models import Service
from core.extensions import db
from core.money import Money
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope

#: A location's fields as a tenants document writes them (its slug names it).
LOCATION_FIELDS = (
    "name",
    "street",
    "unit",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "timezone",
    "active",
)


def _without_none(value: Any) -> Any:
    """Drop unset values, which a document leaves out (TOML has no null)."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value


def document_of(clinic: Clinic) -> dict[str, Any]:
    """Return ``clinic`` as the tenants document that would load it as it is now."""
    with clinic_scope(clinic):
        locations = list(db.session.scalars(select(Location).order_by(Location.id)))
        slugs = {location.id: location.slug for location in locations}
        services = list(
            db.session.scalars(select(Service).where(Service.active.is_(True)).order_by(Service.id))
        )
        declared = [
            {
                "slug": service.slug,
                "name": service.name,
                "description": service.description,
                "category": service.category,
                "duration_minutes": service.duration_minutes,
                "buffer_minutes": service.buffer_minutes,
                "price": str(Money(service.price_minor, service.currency).to_decimal()),
                "online_bookable": service.online_bookable,
                "locations": sorted(slugs[i] for i in service.location_ids),
            }
            for service in services
        ]
        document = {
            "slug": clinic.slug,
            "name": clinic.name,
            "legal_name": clinic.legal_name,
            "country": clinic.country,
            "timezone": clinic.timezone,
            "currency": clinic.currency,
            "locale": clinic.chosen_locale,
            "idle_timeout_minutes": clinic.idle_timeout_minutes,
            "contact": {
                "email": clinic.contact_email,
                "phone": clinic.contact_phone,
                "privacy_email": clinic.privacy_email,
                "website": clinic.website,
            },
            "locations": [
                {field: getattr(location, field) for field in ("slug", *LOCATION_FIELDS)}
                for location in locations
            ],
            "plugins": {
                "enabled": list(clinic.enabled_plugins or []),
                "settings": dict(clinic.plugin_settings or {}),
            },
            "bookings": dict(clinic.booking_settings or {}),
            "services": declared,
        }
    return dict(_without_none(document))
