"""HTTP API for a clinic's profile, locations and plugins."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from core.accounts.access import Permission, current_clinic, requires
from core.api import Blueprint, paginated
from core.tenancy import services
from core.tenancy.models import Clinic
from core.tenancy.schemas import ClinicSchema, ClinicUpdateSchema, LocationSchema, PluginListSchema

blp = Blueprint(
    "clinics",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="A clinic's profile, locations and plugins.",
)


class LocationListSchema(Schema):
    items = fields.List(fields.Nested(LocationSchema))
    count = fields.Integer()


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
    @blp.response(200, LocationListSchema)
    def get(self, clinic_slug: str) -> dict[str, Any]:
        """List the clinic's locations."""
        return paginated(services.locations())


@blp.route("/plugins")
class Plugins(MethodView):
    @requires(Permission.view_plugins)
    @blp.response(200, PluginListSchema)
    def get(self, clinic_slug: str) -> dict[str, Any]:
        """List the plugins that answer the clinic's hook calls, with their settings."""
        return paginated(services.plugins_of(current_clinic()))
