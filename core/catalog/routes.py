"""HTTP API for the clinic's services and resources."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from core.accounts.access import Permission, current_clinic, public, requires
from core.api import Blueprint, CursorPage, PageArgs, by, page
from core.catalog import services
from core.catalog.models import Resource, Service
from core.hooks.settings import Amount
from core.schemas import Id, text

blp = Blueprint(
    "catalog",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Services and the rooms or devices they use.",
)

SLUG = validate.Regexp(
    r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$",
    error="Use lower-case letters, digits, hyphens and underscores.",
)


class ServiceInputSchema(Schema):
    slug = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=text(200))
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
    category = fields.String(required=True, validate=SLUG)
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=720))
    buffer_minutes = fields.Integer(load_default=0, validate=validate.Range(min=0, max=240))
    price = Amount(required=True)
    online_bookable = fields.Boolean(load_default=True)
    active = fields.Boolean(load_default=True)
    resource_id = Id(allow_none=True)
    location_ids = fields.List(Id(), required=True, validate=validate.Length(min=1))
    provider_ids = fields.List(Id(), load_default=list)


class ServicePatchSchema(ServiceInputSchema):
    slug = fields.String(validate=SLUG)
    name = fields.String(validate=text(200))
    category = fields.String(validate=SLUG)
    duration_minutes = fields.Integer(validate=validate.Range(min=5, max=720))
    buffer_minutes = fields.Integer(validate=validate.Range(min=0, max=240))
    price = Amount()
    online_bookable = fields.Boolean()
    active = fields.Boolean()
    location_ids = fields.List(Id(), validate=validate.Length(min=1))
    provider_ids = fields.List(Id())


class ServiceSchema(Schema):
    id = fields.Integer()
    slug = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    category = fields.String()
    duration_minutes = fields.Integer()
    buffer_minutes = fields.Integer()
    price = fields.Function(lambda s: s.price.to_dict())
    online_bookable = fields.Boolean()
    active = fields.Boolean()
    resource_id = Id(allow_none=True)
    location_ids = fields.List(Id())
    provider_ids = fields.List(Id())


class ServiceListSchema(CursorPage):
    items = fields.List(fields.Nested(ServiceSchema))


class ResourceSchema(Schema):
    id = fields.Integer(dump_only=True)
    location_id = Id(required=True)
    name = fields.String(required=True, validate=text(100))
    capacity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))


class ResourceListSchema(CursorPage):
    items = fields.List(fields.Nested(ResourceSchema))


@blp.route("/services")
class Services(MethodView):
    @public
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ServiceListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the services clients can book online (public: the clinic's menu)."""
        return page(
            services.services(online_only=True, with_links=True),
            args,
            by("category", "name", "id"),
        )

    @requires(Permission.edit_catalog)
    @blp.arguments(ServiceInputSchema)
    @blp.response(201, ServiceSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Service:
        """Add a service."""
        found = services.save_service(None, data, current_clinic().currency)
        return found


@blp.route("/services/<id:service_id>")
class ServiceItem(MethodView):
    @public
    @blp.response(200, ServiceSchema)
    def get(self, clinic_slug: str, service_id: int) -> Service:
        """Show a service."""
        return services.service(service_id)

    @requires(Permission.edit_catalog)
    @blp.arguments(ServicePatchSchema(partial=True))
    @blp.response(200, ServiceSchema)
    def patch(self, data: dict[str, Any], clinic_slug: str, service_id: int) -> Service:
        """Change a service: price, duration, locations, providers."""
        found = services.save_service(services.service(service_id), data, current_clinic().currency)
        return found


@blp.route("/resources")
class Resources(MethodView):
    @requires(Permission.view_bookings)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ResourceListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List rooms and devices."""
        return page(services.resources(), args, by("location_id", "name", "id"))

    @requires(Permission.edit_catalog)
    @blp.arguments(ResourceSchema)
    @blp.response(201, ResourceSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Resource:
        """Add a room or device, with how many appointments may use it at once."""
        found = services.add_resource(data)
        return found
