"""HTTP API for the operator (clinic administration), the health checks and the metrics."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy import text

from core.accounts import services as accounts
from core.accounts.access import current_principal, operator_only, public
from core.accounts.routes import begin_session, end_sessions
from core.accounts.schemas import LoginSchema, SessionSchema
from core.accounts.throttle import count_sign_in_attempt, sign_in_succeeded
from core.api import Blueprint, CursorArgs, CursorPage, keyset_page, position
from core.errors import Problem
from core.extensions import db
from core.onboarding.routes import ClinicDocumentSchema, SavedDocumentSchema, saved
from core.platform import metrics as platform_metrics
from core.platform import readiness
from core.tenancy import services as tenancy
from core.tenancy.models import Clinic, ClinicStatus
from core.tenancy.tenants_file import apply_document

health = FlaskBlueprint("health", __name__)


@health.get("/healthz")
@public
def healthz() -> Response:
    """Answer 200 when the app can reach its database, 503 when it cannot.

    ``status`` is ``"degraded"`` when a plugin was refused at start: it is
    named, with how many clinics cannot apply their rules until it is fixed
    (every other clinic is served as usual). The reasons and the clinics are
    the operator's to read (``GET /api/v1/platform/plugins``, ``clinics plugins``):
    an import error's text is no one else's business.
    """
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # any database failure means "not healthy"
        db.session.rollback()
        raise Problem(503, f"The database is unreachable ({type(error).__name__}).") from None
    plugins = tenancy.plugin_health()
    degraded = plugins["refused"] or plugins["clinics_unavailable"]
    return jsonify(
        status="degraded" if degraded else "ok",
        database="ok",
        plugins={
            "refused": sorted(plugins["refused"]),
            "clinics_unavailable": len(plugins["clinics_unavailable"]),
        },
    )


@health.get("/livez")
@public
def livez() -> Response:
    """Answer 200 while this process serves requests: it checks nothing else, by design.

    A failing database makes a server unready, not dead: restarting it would not help.
    """
    return jsonify(status="ok")


@health.get("/readyz")
@public
def readyz() -> Response:
    """Answer 200 when this server should get traffic: database reachable, its schema at
    this code's newest migration, and its Redis (throttling, jobs) answering; else 503
    naming what is not."""
    found = readiness.checks()
    if not readiness.ready(found):
        failing = sorted(
            name
            for name, value in found.items()
            if (value.get("state") if isinstance(value, dict) else value) != "ok"
        )
        raise Problem(503, f"Not ready: {', '.join(failing)}.", kind="not-ready", checks=found)
    return jsonify(status="ok", checks=found)


scrape = FlaskBlueprint("metrics", __name__)


@scrape.get("/metrics")
@public
def metrics() -> Response:
    """Answer a Prometheus scrape: requests by route, Stripe's answers, the work due (README).

    For the operator's scraper alone, with ``METRICS_TOKEN`` as its bearer token. The guard
    admits the operator by session only, and a scraper keeps none; so the guard is told
    "public" and the token is checked here: anonymous 401, any other token 403.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header or scheme.lower() != "bearer":
        raise Problem(
            401,
            "Send the metrics token: 'Authorization: Bearer <METRICS_TOKEN>'.",
            headers={"WWW-Authenticate": 'Bearer realm="clinic-saas"'},
        )
    expected = current_app.config.get("METRICS_TOKEN") or ""
    # Compared in constant time; with no METRICS_TOKEN set, no token opens it.
    if not expected or not hmac.compare_digest(secret.strip().encode(), expected.encode()):
        raise Problem(403, "Only the platform operator may do this.")
    body, content_type = platform_metrics.exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type)


blp = Blueprint(
    "platform",
    __name__,
    url_prefix="/api/v1/platform",
    description="The operator's view of the platform: clinics and their status.",
)


class PlatformClinicSchema(Schema):
    slug = fields.String()
    name = fields.String()
    status = fields.Enum(ClinicStatus, by_value=True)
    country = fields.String()
    timezone = fields.String()
    currency = fields.String()
    enabled_plugins = fields.List(fields.String())
    source_file = fields.String(allow_none=True)
    stripe_connected = fields.Function(lambda clinic: clinic.stripe_account_id is not None)
    stripe_charges_enabled = fields.Boolean(allow_none=True)
    platform_fee_bps = fields.Integer()
    rules_unavailable = fields.Function(
        lambda clinic: tenancy.plugin_host().unavailable(clinic),
        metadata={"description": "Why the clinic's plugins cannot answer, or null."},
    )


class PlatformClinicListSchema(CursorPage):
    items = fields.List(fields.Nested(PlatformClinicSchema))
    total = fields.Integer(metadata={"description": "How many clinics match, over every page."})


class PlatformClinicQuerySchema(CursorArgs):
    status = fields.Enum(ClinicStatus, by_value=True, load_default=None)
    q = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=100),
        metadata={"description": "Part of the clinic's slug or name."},
    )
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "Clinics per page, at most 200."},
    )


class ClinicStatusSchema(Schema):
    status = fields.Enum(ClinicStatus, by_value=True, required=True)


@blp.route("/session")
class OperatorSession(MethodView):
    @public
    @blp.arguments(LoginSchema)
    @blp.response(201, SessionSchema)
    def post(self, credentials: dict[str, Any]) -> dict[str, Any]:
        """Sign in as the platform operator (attempts are throttled)."""
        count_sign_in_attempt(credentials["email"])
        user = accounts.operator_sign_in(credentials["email"], credentials["password"])
        sign_in_succeeded(credentials["email"])
        begin_session(user, "platform")
        return {"user": user, "clinic": None, "role": None, "operator": True, "via": "session"}

    @operator_only
    @blp.response(204)
    def delete(self) -> None:
        """Sign out, everywhere."""
        end_sessions(current_principal().user)


@blp.route("/clinics")
class PlatformClinics(MethodView):
    @operator_only
    @blp.arguments(PlatformClinicQuerySchema, location="query")
    @blp.response(200, PlatformClinicListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the clinics on the platform by slug, with their state, Stripe and plugins; filtered and paged."""
        limit = args.pop("limit")
        after = args.pop("after", None)
        found, total = tenancy.clinics_page(
            **args, limit=limit + 1, after=position(after, (str,))[0] if after else None
        )
        return {**keyset_page(found, limit, lambda clinic: (clinic.slug,)), "total": total}

    @operator_only
    @blp.arguments(ClinicDocumentSchema)
    @blp.response(201, SavedDocumentSchema)
    def post(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create a clinic from its document (a tenants/ file as JSON); it starts onboarding,
        its booking pages closed until it is ready and opened."""
        clinic, outcome = apply_document(
            document, tenancy.plugin_host(), actor_user_id=current_principal().user.id
        )
        return saved(clinic, outcome)


class PluginHealthSchema(Schema):
    refused = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "Plugins refused at start, with the reason."},
    )
    clinics_unavailable = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "Clinics whose rules cannot be applied, by slug, with why."},
    )


@blp.route("/plugins")
class PlatformPlugins(MethodView):
    @operator_only
    @blp.response(200, PluginHealthSchema)
    def get(self) -> dict[str, Any]:
        """Say which plugins were refused at start and which clinics that leaves without their rules."""
        return tenancy.plugin_health()


@blp.route("/clinics/<slug>")
class PlatformClinic(MethodView):
    @operator_only
    @blp.arguments(ClinicStatusSchema)
    @blp.response(200, PlatformClinicSchema)
    def patch(self, data: dict[str, Any], slug: str) -> Clinic:
        """Open, suspend, reactivate or retire a clinic (an onboarding clinic opens once ready;
        a clinic with bookings still to come is not retired)."""
        from core.onboarding.services import change_status

        return change_status(slug, data["status"])
