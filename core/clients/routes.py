"""HTTP API for clients, their health records, consents, photos and break-glass access."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView
from werkzeug.datastructures import FileStorage

from core.accounts.access import Permission, current_clinic, current_principal, requires
from core.api import Blueprint, PageArgs, by, by_id, keyset_page, newest_first, page, position
from core.clients import services
from core.clients.models import Client
from core.clients.schemas import (
    ClientInputSchema,
    ClientListSchema,
    ClientPatchSchema,
    ClientSchema,
    ClientSearchArgs,
    ConsentInputSchema,
    ConsentListSchema,
    ConsentSchema,
    DisclosureInputSchema,
    EmergencyAccessArgs,
    EmergencyAccessInputSchema,
    EmergencyAccessListSchema,
    EmergencyAccessSchema,
    ExportArgs,
    GuardianSchema,
    IntakeInputSchema,
    IntakeListSchema,
    IntakeSchema,
    NoteInputSchema,
    NoteListSchema,
    NoteSchema,
    PhotoListSchema,
    PhotoSchema,
    PhotoUploadSchema,
    ProductInputSchema,
    ProductListSchema,
    ProductSchema,
    ReactionInputSchema,
    ReactionListSchema,
    ReactionSchema,
    ReviewSchema,
    RevokeSchema,
)
from core.errors import Problem, field_error

blp = Blueprint(
    "clients",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Clients and their health records. Health data is for providers and managers; every access is audited.",
)


def _with_gates(record: Client) -> Client:
    """Attach the age rules that apply to the client today, for the response."""
    record.age_rules = services.age_gates(current_clinic(), record)
    record.parental_consent_on_file = services.has_parental_consent(record)
    return record


def _client_position(record: Client) -> tuple[str, str, int]:
    return record.search_last, record.search_first, record.id


@blp.route("/clients")
class Clients(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(ClientSearchArgs, location="query")
    @blp.response(200, ClientListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Search clients by name, email or phone (no query: all, by name)."""
        after = position(args["after"], (str, str, int)) if "after" in args else None
        found = services.search(
            args.get("q"),
            limit=args["limit"] + 1,  # one more than the page: whether another follows
            after=after,
            country=current_clinic().country,
        )
        return keyset_page(found, args["limit"], _client_position)

    @requires(Permission.edit_clients)
    @blp.arguments(ClientInputSchema)
    @blp.response(201, ClientSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Client:
        """Add a client."""
        record = services.create_client(data)
        return _with_gates(record)


@blp.route("/clients/<id:client_id>")
class ClientRecord(MethodView):
    @requires(Permission.view_clients)
    @blp.response(200, ClientSchema)
    def get(self, clinic_slug: str, client_id: int) -> Client:
        """Show a client's identity and contact details (no health data)."""
        return _with_gates(services.client(client_id))

    @requires(Permission.edit_clients)
    @blp.arguments(ClientPatchSchema)
    @blp.response(200, ClientSchema)
    def patch(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Client:
        """Change a client's details."""
        record = services.update_client(services.client(client_id), data)
        return _with_gates(record)


@blp.route("/clients/<id:client_id>/guardians")
class Guardians(MethodView):
    @requires(Permission.edit_clients)
    @blp.arguments(GuardianSchema)
    @blp.response(201, GuardianSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Record a parent or guardian of a client."""
        guardian = services.add_guardian(services.client(client_id), data)
        return guardian


@blp.route("/clients/<id:client_id>/intake")
class Intake(MethodView):
    @requires(Permission.view_clients)
    @blp.response(200, IntakeSchema)
    def get(self, clinic_slug: str, client_id: int) -> Any:
        """Show the latest health intake (providers and managers; audited)."""
        found = services.intake(current_principal(), services.client(client_id))
        return found

    @requires(Permission.view_clients)
    @blp.arguments(IntakeInputSchema)
    @blp.response(201, IntakeSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Record a new version of the health intake; earlier versions stay readable."""
        found = services.record_intake(
            current_principal(),
            services.client(client_id),
            data["answers"],
            data.get("change_reason"),
        )
        return found


@blp.route("/clients/<id:client_id>/intake/versions")
class IntakeVersions(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, IntakeListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List every version of the health intake, oldest first."""
        found = services.intake_versions(current_principal(), services.client(client_id))
        return page(found, args, by("version"))


@blp.route("/clients/<id:client_id>/intake/versions/<id:version>")
class IntakeVersion(MethodView):
    @requires(Permission.view_clients)
    @blp.response(200, IntakeSchema)
    def get(self, clinic_slug: str, client_id: int, version: int) -> Any:
        """Show one version of the health intake."""
        found = services.intake(current_principal(), services.client(client_id), version)
        return found


@blp.route("/clients/<id:client_id>/notes")
class Notes(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, NoteListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List file notes (skin, treatment, medical conditions, leisure activities)."""
        found = services.notes(current_principal(), services.client(client_id))
        return page(found, args, by_id)

    @requires(Permission.view_clients)
    @blp.arguments(NoteInputSchema)
    @blp.response(201, NoteSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Add a file note."""
        note = services.add_note(
            current_principal(), services.client(client_id), data["kind"], data["body"]
        )
        return note


@blp.route("/clients/<id:client_id>/notes/<id:note_id>/amendments")
class NoteAmendments(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(NoteInputSchema)
    @blp.response(201, NoteSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int, note_id: int) -> Any:
        """Amend a note: the amendment is appended and the original stays as written."""
        note = services.add_note(
            current_principal(),
            services.client(client_id),
            data["kind"],
            data["body"],
            amends_note_id=note_id,
        )
        return note


@blp.route("/clients/<id:client_id>/products")
class Products(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ProductListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List products used in the clinic and at home."""
        found = services.products(current_principal(), services.client(client_id))
        return page(found, args, by_id)

    @requires(Permission.view_clients)
    @blp.arguments(ProductInputSchema)
    @blp.response(201, ProductSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Record a product used."""
        use = services.add_product(current_principal(), services.client(client_id), data)
        return use


@blp.route("/clients/<id:client_id>/adverse-reactions")
class Reactions(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ReactionListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List adverse reactions."""
        found = services.reactions(current_principal(), services.client(client_id))
        return page(found, args, by_id)

    @requires(Permission.view_clients)
    @blp.arguments(ReactionInputSchema)
    @blp.response(201, ReactionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Record an adverse reaction and the product or service that caused it."""
        reaction = services.add_reaction(current_principal(), services.client(client_id), data)
        return reaction


@blp.route("/clients/<id:client_id>/consents")
class Consents(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ConsentListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List the client's consents, given and revoked."""
        return page(services.consents(services.client(client_id)), args, by_id)

    @requires(Permission.edit_clients)
    @blp.arguments(ConsentInputSchema)
    @blp.response(201, ConsentSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Record a consent with the exact text and version shown."""
        consent = services.give_consent(current_principal(), services.client(client_id), data)
        return consent


@blp.route("/clients/<id:client_id>/consents/<id:consent_id>/revocation")
class ConsentRevocation(MethodView):
    @requires(Permission.edit_clients)
    @blp.arguments(RevokeSchema)
    @blp.response(200, ConsentSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int, consent_id: int) -> Any:
        """Revoke one consent; the client's other consents are untouched."""
        consent = services.revoke_consent(
            current_principal(), services.client(client_id), consent_id, data["method"]
        )
        return consent


def _photo_view(photo: Any, in_marketing_use: bool | None = None) -> Any:
    """The photo as the API shows it; a list passes ``in_marketing_use``, found for all at once."""
    if in_marketing_use is None:
        in_marketing_use = services.in_marketing_use(photo)
    photo.in_marketing_use = in_marketing_use
    return photo


@blp.route("/clients/<id:client_id>/photos")
class Photos(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, PhotoListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List the client's photos (details only)."""
        record = services.client(client_id)
        found = services.photos(current_principal(), record)
        in_use = services.photos_in_marketing_use(record, found)
        return page([_photo_view(p, p.id in in_use) for p in found], args, by_id)

    @requires(Permission.view_clients)
    @blp.arguments(PhotoUploadSchema, location="form_and_files")
    @blp.response(201, PhotoSchema)
    def post(self, form: dict[str, Any], clinic_slug: str, client_id: int) -> Any:
        """Upload a before/after photo (JPEG, PNG or WebP); needs clinical-photo consent on file."""
        upload = form["image"]
        if not isinstance(upload, FileStorage):
            raise Problem(
                422,
                "Send the photo as a file.",
                errors=[field_error("image", "must be a file upload", "files")],
            )
        max_bytes = current_app.config["PHOTO_MAX_BYTES"]
        raw = upload.stream.read(max_bytes + 1)
        if not raw:
            raise Problem(
                422, "The image is empty.", errors=[field_error("image", "empty file", "files")]
            )
        photo = services.add_photo(
            current_principal(),
            services.client(client_id),
            raw,
            kind=form["kind"],
            caption=form.get("caption"),
            taken_on=form.get("taken_on"),
            marketing_use=form["marketing_use"],
            clinic_slug=clinic_slug,
            max_bytes=max_bytes,
        )
        return _photo_view(photo)


@blp.route("/clients/<id:client_id>/photos/<id:photo_id>/image")
class PhotoImage(MethodView):
    @requires(Permission.view_clients)
    @blp.response(200, description="The image bytes.")
    def get(self, clinic_slug: str, client_id: int, photo_id: int) -> Response:
        """Download a photo (providers and managers; audited)."""
        photo, data = services.photo_image(
            current_principal(), services.client(client_id), photo_id
        )
        return Response(data, mimetype=photo.content_type)  # no-store: core.security_headers


@blp.route("/clients/<id:client_id>/export")
class Export(MethodView):
    @requires(Permission.view_clients)
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """Export everything held about the client as JSON (logged as an export, or a disclosure if for someone else)."""
        document = services.export(
            current_principal(),
            services.client(client_id),
            args.get("recipient"),
            args.get("purpose"),
        )
        return document


@blp.route("/clients/<id:client_id>/disclosures")
class Disclosures(MethodView):
    @requires(Permission.view_audit)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """Account for every disclosure of the client's data (exports and disclosures to others)."""
        from core.audit import services as audit
        from core.audit.schemas import AuditEventSchema

        services.client(client_id)
        found = audit.disclosures(client_id)
        return page(AuditEventSchema(many=True).dump(found), args, by("seq"))

    @requires(Permission.view_clients)
    @blp.arguments(DisclosureInputSchema)
    @blp.response(204)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> None:
        """Log a disclosure made outside the platform, for the accounting of disclosures."""
        services.record_disclosure(
            current_principal(),
            services.client(client_id),
            data["recipient"],
            data["purpose"],
            data["description"],
        )


@blp.route("/emergency-access")
class EmergencyAccessGrants(MethodView):
    @requires(Permission.review_emergency_access)
    @blp.arguments(EmergencyAccessArgs, location="query")
    @blp.response(200, EmergencyAccessListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List break-glass grants for review (owners and managers)."""
        return page(services.emergency_grants(args["unreviewed"]), args, newest_first)

    @requires(Permission.view_clients)
    @blp.arguments(EmergencyAccessInputSchema)
    @blp.response(201, EmergencyAccessSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Break the glass: time-limited access to one client's health data, with a reason, flagged for review."""
        grant = services.open_emergency_access(
            current_principal(), services.client(data["client_id"]), data["reason"], data["minutes"]
        )
        return grant


@blp.route("/emergency-access/<id:grant_id>/review")
class EmergencyAccessReview(MethodView):
    @requires(Permission.review_emergency_access)
    @blp.arguments(ReviewSchema)
    @blp.response(200, EmergencyAccessSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, grant_id: int) -> Any:
        """Review a break-glass grant (and end it if it is still running)."""
        grant = services.review_emergency_access(current_principal(), grant_id, data["note"])
        return grant
