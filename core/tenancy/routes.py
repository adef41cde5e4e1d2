"""HTTP API for a clinic's profile, locations and plugins."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import fields

from core.accounts.access import Permission, current_clinic, requires
from core.api import Blueprint, CursorPage, PageArgs, by, page
from core.tenancy import services
from core.tenancy.models import Clinic
from core.tenancy.schemas import ClinicSchema, ClinicUpdateSchema, LocationSchema, PluginListSchema

blp = Blueprint(
    "clinics",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="A clinic's profile, locations and plugins.",
)


class LocationListSchema(CursorPage):
    items = fields.List(fields.Nested(LocationSchema))


@blp.route("")
class ClinicProfile(MethodView):
    @requires(Permission.view_clinic)
    @blp.response(200, ClinicSchema)
    def get(self, clinic_slug: str) -> Clinic:
        """Show the clinic's profile and locations."""
        return current_clinic()

    @requires(Permission.edit_clinic)
    @blp.arguments(ClinicUpdateSchema)
    @blp.response(200, ClinicSchema)
    def patch(self, changes: dict[str, Any], clinic_slug: str) -> Clinic:
        """Change the clinic's profile (owners and managers)."""
        clinic = services.update_profile(current_clinic(), changes)
        return clinic


@blp.route("/locations")
class Locations(MethodView):
    @requires(Permission.view_clinic)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, LocationListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's locations."""
        return page(services.locations(), args, lambda loc: (0 if loc.active else 1, loc.id))


@blp.route("/plugins")
class Plugins(MethodView):
    @requires(Permission.view_plugins)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, PluginListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the plugins that answer the clinic's hook calls, with their settings."""
        return page(
            services.plugins_of(current_clinic()),
            args,
            by("core_default", "name"),
        )
