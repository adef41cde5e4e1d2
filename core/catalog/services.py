"""The clinic's services: listing, creating and changing them, and who performs them."""

from __future__ import annotations

from typing import Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from core.catalog.models import Resource, Service, ServiceLocation, ServiceProvider
from core.errors import Invalid, NotFound, Refused, field_error
from core.extensions import db
from core.money import Money
from core.schedules.models import Provider
from core.tenancy.kept import attach, detached_copy, kept
from core.tenancy.models import Location
from core.unit_of_work import transaction


def services(
    active_only: bool = True, online_only: bool = False, *, with_links: bool = False
) -> list[Service]:
    """Return the current clinic's services, by category and name.

    ``with_links`` loads every service's locations and providers in one query
    each, for callers (the API's list) that show them.
    """
    statement = select(Service).order_by(Service.category, Service.name)
    if with_links:
        statement = statement.options(
            selectinload(Service.location_links), selectinload(Service.provider_links)
        )
    if active_only:
        statement = statement.where(Service.active.is_(True))
    if online_only:
        statement = statement.where(Service.online_bookable.is_(True))
    return list(db.session.scalars(statement))


def service(service_id: int, *, with_links: bool = True) -> Service:
    """Return service ``service_id`` of the current clinic, or raise 404.

    ``with_links`` loads its locations and providers in the same query, for
    callers (booking) that read them; availability queries them itself.
    """
    options = [joinedload(Service.location_links), joinedload(Service.provider_links)]
    found = db.session.get(Service, service_id, options=options if with_links else None)
    if found is None:
        raise NotFound("No such service at this clinic.")
    return found


def kept_service(service_id: int) -> Service:
    """Return service ``service_id`` as :func:`service` without links does, or raise 404;
    while the clinic's setup is unchanged, from memory rather than the database.

    For the paths every client's visit takes (availability), which only read it.
    """
    return attach(
        kept("service", service_id, lambda: detached_copy(service(service_id, with_links=False)))
    )


def kept_places_and_people(service_id: int) -> tuple[list[Location], list[int]]:
    """Return the open places offering service ``service_id`` (by id) and who performs it.

    While the clinic's setup is unchanged, from memory: availability and the
    booking pages ask on every view. The places are detached copies, for
    reading their columns only.
    """

    def load() -> tuple[list[Location], list[int]]:
        places = db.session.scalars(
            select(Location)
            .join(ServiceLocation, ServiceLocation.location_id == Location.id)
            .where(ServiceLocation.service_id == service_id, Location.active.is_(True))
            .order_by(Location.id)
        )
        people = db.session.scalars(
            select(ServiceProvider.provider_id)
            .where(ServiceProvider.service_id == service_id)
            .order_by(ServiceProvider.provider_id)
        )
        return [detached_copy(place) for place in places], list(people)

    return kept("places_and_people", service_id, load)


def offering(service_id: int, location_id: int) -> tuple[Service, Location]:
    """Return the service and the location offering it, or raise why it cannot be had there.

    One query for both, since booking asks this on every request.
    """
    row = db.session.execute(
        select(Service, Location)
        .join(ServiceLocation, ServiceLocation.service_id == Service.id)
        .join(Location, Location.id == ServiceLocation.location_id)
        .where(Service.id == service_id, Location.id == location_id)
    ).first()
    if row is None:
        not_offered(service_id)
    return row[0], row[1]


def kept_offering(service_id: int, location_id: int) -> tuple[Service, Location]:
    """Return :func:`offering`; while the clinic's setup is unchanged, from memory.

    For booking, which asks it on every request.
    """

    def load() -> tuple[Service, Location]:
        found_service, found_location = offering(service_id, location_id)
        return detached_copy(found_service), detached_copy(found_location)

    service_copy, location_copy = kept("offering", (service_id, location_id), load)
    return attach(service_copy), attach(location_copy)


def not_offered(service_id: int) -> NoReturn:
    """Raise why a service cannot be had at a location: no such service (404), or not there (409)."""
    service(service_id, with_links=False)  # no such service: 404
    raise Refused("This service is not offered at that location.", kind="not-offered-here")


def _check_links(data: dict[str, Any]) -> None:
    for location_id in data.get("location_ids", []):
        if db.session.get(Location, location_id) is None:
            raise Invalid(
                "No such location.",
                errors=[
                    field_error("location_ids", f"{location_id} is not a location of this clinic")
                ],
            )
    for provider_id in data.get("provider_ids", []):
        if db.session.get(Provider, provider_id) is None:
            raise Invalid(
                "No such provider.",
                errors=[
                    field_error("provider_ids", f"{provider_id} is not a provider of this clinic")
                ],
            )
    resource_id = data.get("resource_id")
    if resource_id is not None and db.session.get(Resource, resource_id) is None:
        raise Invalid(
            "No such resource.",
            errors=[field_error("resource_id", "not a resource of this clinic")],
        )


@transaction
def save_service(found: Service | None, data: dict[str, Any], currency: str) -> Service:
    """Create (``found`` None) or update a service from validated ``data``."""
    _check_links(data)
    if found is None:
        if db.session.scalar(select(Service).where(Service.slug == data["slug"])):
            raise Refused(
                "A service with this slug exists.",
                errors=[field_error("slug", "already used")],
            )
        found = Service(currency=currency)
        db.session.add(found)
    for key in (
        "slug",
        "name",
        "description",
        "category",
        "duration_minutes",
        "buffer_minutes",
        "online_bookable",
        "active",
        "resource_id",
    ):
        if key in data:
            setattr(found, key, data[key])
    if "price" in data:
        found.price_minor = Money.parse(data["price"], currency).minor
    if "location_ids" in data:
        sync_links(found.location_links, set(data["location_ids"]), "location_id", ServiceLocation)
    if "provider_ids" in data:
        sync_links(found.provider_links, set(data["provider_ids"]), "provider_id", ServiceProvider)
    db.session.flush()
    return found


def sync_links(links: list[Any], wanted: set[int], attribute: str, link_type: type) -> None:
    # Add and remove only the differences: replacing the whole collection
    # would insert a link before deleting its twin and trip the unique key.
    have = {getattr(link, attribute): link for link in links}
    for key in set(have) - wanted:
        links.remove(have[key])
    for key in sorted(wanted - set(have)):
        links.append(link_type(**{attribute: key}))


def resources() -> list[Resource]:
    """Return the current clinic's rooms and devices."""
    return list(db.session.scalars(select(Resource).order_by(Resource.location_id, Resource.name)))


@transaction
def add_resource(data: dict[str, Any]) -> Resource:
    """Add a room or device at a location."""
    if db.session.get(Location, data["location_id"]) is None:
        raise Invalid(
            "No such location.",
            errors=[field_error("location_id", "not a location of this clinic")],
        )
    found = Resource(**data)
    db.session.add(found)
    db.session.flush()
    return found
