"""HTTP API for providers, their weekly hours and their time off."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from core.accounts.access import Permission, requires
from core.api import Blueprint, CursorPage, PageArgs, by, page
from core.extensions import db
from core.schedules import services
from core.schedules.models import Provider
from core.schemas import Id, Moment, UtcDateTime, text

blp = Blueprint(
    "schedules",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Providers, weekly hours per location, time off.",
)


class HoursSchema(Schema):
    location_id = Id(required=True)
    weekday = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=6),
        metadata={"description": "Monday 0 ... Sunday 6"},
    )
    starts = fields.Time(required=True, format="%H:%M")
    ends = fields.Time(required=True, format="%H:%M")


class HoursInputSchema(Schema):
    hours = fields.List(fields.Nested(HoursSchema), required=True)


class ProviderSchema(Schema):
    id = fields.Integer(dump_only=True)
    membership_id = Id(required=True)
    display_name = fields.String(allow_none=True, validate=text(200))
    credential = fields.String(allow_none=True, validate=validate.Length(max=50))
    active = fields.Boolean(dump_only=True)
    hours = fields.List(fields.Nested(HoursSchema), dump_only=True)


class ProviderPatchSchema(Schema):
    display_name = fields.String(validate=text(200))
    credential = fields.String(allow_none=True, validate=validate.Length(max=50))
    active = fields.Boolean()


class ProviderListSchema(CursorPage):
    items = fields.List(fields.Nested(ProviderSchema))


class TimeOffSchema(Schema):
    id = fields.Integer(dump_only=True)
    starts_at = Moment(required=True)
    ends_at = Moment(required=True)
    reason = fields.String(allow_none=True, validate=validate.Length(max=200))


class TimeOffOutSchema(Schema):
    id = fields.Integer()
    starts_at = UtcDateTime()
    ends_at = UtcDateTime()
    reason = fields.String(allow_none=True)


class TimeOffListSchema(CursorPage):
    items = fields.List(fields.Nested(TimeOffOutSchema))


@blp.route("/providers")
class Providers(MethodView):
    @requires(Permission.view_bookings)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ProviderListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List providers and their weekly hours."""
        return page(services.providers(with_hours=True), args, by("display_name", "id"))

    @requires(Permission.manage_schedules)
    @blp.arguments(ProviderSchema)
    @blp.response(201, ProviderSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Provider:
        """Give a staff member a calendar."""
        found = services.add_provider(
            data["membership_id"], data.get("display_name"), data.get("credential")
        )
        return found


@blp.route("/providers/<id:provider_id>")
class ProviderItem(MethodView):
    @requires(Permission.manage_schedules)
    @blp.arguments(ProviderPatchSchema)
    @blp.response(200, ProviderSchema)
    def patch(self, data: dict[str, Any], clinic_slug: str, provider_id: int) -> Provider:
        """Change a provider's name, credential or active flag."""
        found = services.update_provider(services.provider(provider_id), data)
        return found


@blp.route("/providers/<id:provider_id>/hours")
class ProviderHours(MethodView):
    @requires(Permission.manage_schedules)
    @blp.arguments(HoursInputSchema)
    @blp.response(200, ProviderSchema)
    def put(self, data: dict[str, Any], clinic_slug: str, provider_id: int) -> Provider:
        """Replace a provider's weekly hours (local wall-clock times at each location)."""
        found = services.provider(provider_id)
        services.set_hours(found, data["hours"])
        db.session.refresh(found)
        return found


@blp.route("/providers/<id:provider_id>/time-off")
class ProviderTimeOff(MethodView):
    @requires(Permission.view_bookings)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, TimeOffListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, provider_id: int) -> dict[str, Any]:
        """List a provider's time off."""
        return page(
            services.time_off(services.provider(provider_id)),
            args,
            by("starts_at", "id"),
        )

    @requires(Permission.manage_schedules)
    @blp.arguments(TimeOffSchema)
    @blp.response(201, TimeOffOutSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, provider_id: int) -> Any:
        """Record time off (holiday, training, sickness)."""
        found = services.add_time_off(
            services.provider(provider_id), data["starts_at"], data["ends_at"], data.get("reason")
        )
        return found
