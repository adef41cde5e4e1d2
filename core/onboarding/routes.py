"""HTTP API for a clinic's way onto the instance: the operator's documents, the clinic's readiness."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import INCLUDE, Schema, fields, validate

from core.accounts import services as accounts
from core.accounts.access import (
    Permission,
    current_clinic,
    current_principal,
    operator_only,
    public_while_closed,
    requires,
)
from core.accounts.models import Role
from core.accounts.throttle import count_sign_in_attempt
from core.api import Blueprint, json_response
from core.errors import NotAllowed, NotFound
from core.onboarding import invitations, services
from core.tenancy import services as tenancy
from core.tenancy.documents import document_of
from core.tenancy.models import Clinic
from core.tenancy.tenants_file import apply_document
from core.unit_of_work import unit_of_work

blp = Blueprint(
    "onboarding",
    __name__,
    url_prefix="/api/v1",
    description="Clinics joining the instance: their documents, revisions and readiness.",
)


class ClinicDocumentSchema(Schema):
    """A clinic's whole document: what a tenants/ file holds, as JSON (see tenants/*.toml)."""

    class Meta:
        unknown = INCLUDE


class SavedDocumentSchema(Schema):
    slug = fields.String()
    status = fields.String()
    outcome = fields.String(metadata={"description": "created, updated or unchanged"})
    revision = fields.Integer(allow_none=True)


class RevisionSchema(Schema):
    number = fields.Integer()
    source = fields.String()
    changed_by_user_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    accepted_by_user_id = fields.Integer(allow_none=True)
    accepted_at = fields.DateTime(allow_none=True)


class RevisionListSchema(Schema):
    items = fields.List(fields.Nested(RevisionSchema))


class MissingSchema(Schema):
    item = fields.String(
        metadata={"description": "stripe, plugins, jurisdiction, policy, services, providers"}
    )
    detail = fields.String()


class ReadinessSchema(Schema):
    ready = fields.Boolean()
    status = fields.String()
    missing = fields.List(fields.Nested(MissingSchema))


def saved(clinic: Clinic, outcome: str) -> dict[str, Any]:
    revision = services.latest_revision(clinic)
    return {
        "slug": clinic.slug,
        "status": clinic.status.value,
        "outcome": outcome,
        "revision": revision.number if revision else None,
    }


def _clinic(slug: str) -> Clinic:
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        raise NotFound("No such clinic.")
    return clinic


@blp.route("/platform/clinics/<slug>/document")
class ClinicDocument(MethodView):
    @operator_only
    @blp.response(200, ClinicDocumentSchema)
    def get(self, slug: str) -> Any:
        """Show the clinic's current document, as `clinics export` writes it."""
        # Returned whole: the schema documents the shape, and would keep none of its fields.
        return json_response(document_of(_clinic(slug)), 200)

    @operator_only
    @blp.arguments(ClinicDocumentSchema)
    @blp.response(200, SavedDocumentSchema)
    def put(self, document: dict[str, Any], slug: str) -> dict[str, Any]:
        """Replace the clinic's document; a change is kept as its next revision."""
        clinic, outcome = apply_document(
            document, tenancy.plugin_host(), actor_user_id=current_principal().user.id, slug=slug
        )
        return saved(clinic, outcome)


@blp.route("/platform/clinics/<slug>/revisions")
class ClinicRevisions(MethodView):
    @operator_only
    @blp.response(200, RevisionListSchema)
    def get(self, slug: str) -> dict[str, Any]:
        """List the clinic's kept documents, newest first, with who changed and who accepted each."""
        return {"items": services.revisions(_clinic(slug))}


@blp.route("/clinics/<clinic_slug>/readiness")
class Readiness(MethodView):
    @requires(Permission.view_clinic)
    @blp.response(200, ReadinessSchema)
    def get(self, clinic_slug: str) -> dict[str, Any]:
        """Say what stands between the clinic and taking bookings; empty when it can open."""
        clinic = current_clinic()
        missing = services.readiness(clinic)
        return {"ready": not missing, "status": clinic.status.value, "missing": missing}


class AcceptanceSchema(Schema):
    revision = fields.Integer(
        required=True,
        validate=validate.Range(min=1),
        metadata={
            "description": "The revision read (GET .../document): only the newest is accepted."
        },
    )


@blp.route("/clinics/<clinic_slug>/document")
class OwnDocument(MethodView):
    @requires(Permission.view_clinic)
    @blp.response(200, ClinicDocumentSchema)
    def get(self, clinic_slug: str) -> Any:
        """Read the clinic's document (its rules, settings, locations, services) and its revision."""
        clinic = current_clinic()
        revision = services.latest_revision(clinic)
        return json_response(
            {
                "revision": revision.number if revision else None,
                "document": document_of(clinic),
            },
            200,
        )


@blp.route("/clinics/<clinic_slug>/policy-acceptance")
class PolicyAcceptance(MethodView):
    @requires(Permission.edit_clinic)
    @blp.arguments(AcceptanceSchema)
    @blp.response(200, RevisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Accept, as the clinic's owner, its policy as the revision read states it."""
        principal = current_principal()
        if principal.membership is None or principal.membership.role != Role.owner:
            raise NotAllowed("Only the clinic's owner accepts its policy.")
        with unit_of_work():
            revision = services.accept_policy(current_clinic(), principal.user.id, data["revision"])
        return revision


class InvitationSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.Enum(Role, by_value=True, load_default=Role.owner)


class InvitedSchema(Schema):
    email = fields.String()
    role = fields.String()
    expires_in_hours = fields.Integer()


class ResetRequestSchema(Schema):
    email = fields.String(required=True, validate=validate.Length(min=3, max=254))


class NewPasswordSchema(Schema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=10, max=100))
    password = fields.String(
        required=True, load_only=True, validate=validate.Length(min=1, max=256)
    )


class DoneSchema(Schema):
    detail = fields.String()


@blp.route("/platform/clinics/<slug>/invitations")
class Invitations(MethodView):
    @operator_only
    @blp.arguments(InvitationSchema)
    @blp.response(201, InvitedSchema)
    def post(self, data: dict[str, Any], slug: str) -> dict[str, Any]:
        """Invite a clinic's person (its first owner, usually): an email with a link to set a password."""
        membership = invitations.invite(_clinic(slug), data["email"], data["name"], data["role"])
        lifetime = accounts.LINK_LIFETIME["invitation"]
        return {
            "email": membership.user.email,
            "role": membership.role.value,
            "expires_in_hours": int(lifetime.total_seconds() // 3600),
        }


@blp.route("/clinics/<clinic_slug>/password-reset")
class PasswordReset(MethodView):
    @public_while_closed
    @blp.arguments(ResetRequestSchema)
    @blp.response(202, DoneSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Ask for a link to reset a staff member's password (the answer is the same for anyone)."""
        count_sign_in_attempt(data["email"])
        invitations.request_reset(current_clinic(), data["email"])
        return {"detail": "If this address belongs to the clinic's staff, an email is on its way."}


@blp.route("/clinics/<clinic_slug>/password")
class NewPassword(MethodView):
    @public_while_closed
    @blp.arguments(NewPasswordSchema)
    @blp.response(200, DoneSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Set a password with the code from an invitation or reset email (it works once)."""
        accounts.set_password_with_link(current_clinic(), data["token"], data["password"])
        return {"detail": "Your password is set: sign in with it."}


class PlatformFeeSchema(Schema):
    basis_points = fields.Integer(
        required=True,
        validate=validate.Range(min=0, max=3000),
        metadata={"description": "The fee on each charge: 250 is 2.5%; at most 30%."},
    )


@blp.route("/platform/clinics/<slug>/platform-fee")
class PlatformFee(MethodView):
    @operator_only
    @blp.arguments(PlatformFeeSchema)
    @blp.response(200, PlatformFeeSchema)
    def put(self, data: dict[str, Any], slug: str) -> dict[str, Any]:
        """Set the platform's fee on the clinic's charges from now on (Stripe's application fee)."""
        clinic = services.set_platform_fee(slug, data["basis_points"])
        return {"basis_points": clinic.platform_fee_bps}
