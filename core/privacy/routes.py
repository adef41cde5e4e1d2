"""HTTP API for privacy requests, deletion plans, the breach register and data recipients."""

from __future__ import annotations

from typing import Any

from flask import Response, request, session
from flask.views import MethodView

from core.accounts.access import (
    Permission,
    current_clinic,
    current_principal,
    public_while_closed,
    requires,
)
from core.api import Blueprint, PageArgs, by, by_id, newest_first, page
from core.clients import services as clients
from core.messaging import inbound
from core.privacy import services
from core.privacy.schemas import (
    BreachInputSchema,
    BreachListSchema,
    BreachNoticeSchema,
    BreachSchema,
    CompletionSchema,
    DataRecipientListSchema,
    DataRecipientSchema,
    DeletionPlanSchema,
    DenialSchema,
    ExtensionSchema,
    NoticeSentSchema,
    OptOutReviewListSchema,
    OptOutReviewSchema,
    PrivacyRequestInputSchema,
    PrivacyRequestListSchema,
    PrivacyRequestSchema,
    ProcessorNoticeSchema,
    QueueArgs,
    ReviewDecisionSchema,
    RightListSchema,
    StaffPrivacyRequestInputSchema,
    TransferSchema,
    VerificationSchema,
)


def remember_gpc() -> None:
    """Remember a browser's Global Privacy Control signal (``Sec-GPC: 1``) in its session.

    It is an opt-out of sale and sharing for the browser now, and for the
    person once they are known (an online booking, their self-service link):
    :func:`carry_gpc` then records it against them.
    """
    if request.headers.get("Sec-GPC", "").strip() == "1" and not session.get("gpc"):
        session["gpc"] = True


def carry_gpc(client: Any) -> None:
    """Record the browser's remembered GPC signal against the client it turned out to be."""
    if session.get("gpc") or request.headers.get("Sec-GPC", "").strip() == "1":
        services.carry_gpc(current_clinic(), client)


blp = Blueprint(
    "privacy",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Privacy requests and their deadlines, deletion under retention holds, breaches and data recipients.",
)


@blp.route("/privacy-rights")
class PrivacyRights(MethodView):
    @public_while_closed
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, RightListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """The privacy rights this clinic's clients may exercise, each with the rule that grants it."""
        offered = services.rights_offered(current_clinic())
        return page(
            [
                {
                    "right": right.value,
                    "clauses": [{"id": c.id, "text": c.text, "source": c.source} for c in clauses],
                }
                for right, clauses in sorted(offered.items())
            ],
            args,
            by("right"),
        )


@blp.route("/privacy-requests")
class PrivacyRequests(MethodView):
    @public_while_closed
    @blp.arguments(PrivacyRequestInputSchema)
    @blp.response(201, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Make a privacy request (access, deletion, correction, opt-out...); it is acknowledged at once."""
        clinic = current_clinic()
        request = services.submit(clinic, data)
        return request

    @requires(Permission.manage_privacy)
    @blp.arguments(QueueArgs, location="query")
    @blp.response(200, PrivacyRequestListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """The queue of privacy requests, the nearest deadline first."""
        return page(services.queue(args["include_closed"]), args, by("due_at", "id"))


@blp.route("/privacy-requests/recorded")
class RecordedPrivacyRequests(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(StaffPrivacyRequestInputSchema)
    @blp.response(201, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Record a request received by phone, mail or at the desk, with when it arrived."""
        clinic = current_clinic()
        request = services.submit(clinic, data, current_principal())
        return request


@blp.route("/privacy-requests/<id:request_id>")
class PrivacyRequestItem(MethodView):
    @requires(Permission.manage_privacy)
    @blp.response(200, PrivacyRequestSchema)
    def get(self, clinic_slug: str, request_id: int) -> Any:
        """Show a privacy request."""
        return services.request_of(request_id)


@blp.route("/privacy-requests/<id:request_id>/verification")
class Verification(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(VerificationSchema)
    @blp.response(200, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int) -> Any:
        """Record that the requester's identity (and a representative's authority) was verified."""
        request = services.verify(
            current_clinic(), services.request_of(request_id), current_principal(), **data
        )
        return request


@blp.route("/privacy-requests/<id:request_id>/extension")
class Extension(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(ExtensionSchema)
    @blp.response(200, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int) -> Any:
        """Extend the deadline once, with the notice sent to the requester and the reason."""
        request = services.extend(current_clinic(), services.request_of(request_id), **data)
        return request


@blp.route("/privacy-requests/<id:request_id>/completion")
class Completion(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(CompletionSchema)
    @blp.response(200, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int) -> Any:
        """Carry out the request (a deletion runs its plan and tells the processors) and close it.

        A deletion is committed before Stripe is called to delete the client's
        customer; the response shows each processor's notice and its outcome.
        """
        clinic = current_clinic()
        request = services.complete(
            clinic,
            services.request_of(request_id),
            current_principal(),
            data.get("outcome"),
        )
        return request


@blp.route("/privacy-requests/<id:request_id>/processor-notices/retry")
class ProcessorNoticesRetry(MethodView):
    @requires(Permission.manage_privacy)
    @blp.response(200, PrivacyRequestSchema)
    def post(self, clinic_slug: str, request_id: int) -> Any:
        """Carry out again a deletion's notices that failed, or whose customer was kept for a reason since ended."""
        clinic = current_clinic()
        request = services.request_of(request_id)
        services.carry_out_notices(clinic, request, again=True)
        return request


@blp.route("/privacy-requests/<id:request_id>/processor-notices/<id:notice_id>/sent")
class ProcessorNoticeSent(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(NoticeSentSchema)
    @blp.response(200, ProcessorNoticeSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int, notice_id: int) -> Any:
        """Record that the clinic sent a notice the platform cannot send itself (to a data recipient)."""
        notice = services.mark_processor_notice_sent(
            services.request_of(request_id), notice_id, data.get("outcome")
        )
        return notice


@blp.route("/privacy-requests/<id:request_id>/denial")
class Denial(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(DenialSchema)
    @blp.response(200, PrivacyRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int) -> Any:
        """Deny the request, with the reason the requester is told."""
        request = services.deny(
            current_clinic(), services.request_of(request_id), current_principal(), data["reason"]
        )
        return request


@blp.route("/privacy-requests/<id:request_id>/export")
class Export(MethodView):
    @requires(Permission.manage_privacy)
    @blp.response(200)
    def get(self, clinic_slug: str, request_id: int) -> Any:
        """Everything held about the client within the request's lookback, as JSON (logged as a disclosure)."""
        document = services.access_export(
            current_clinic(), services.request_of(request_id), current_principal()
        )
        return document


@blp.route("/privacy-requests/<id:request_id>/export.html")
class ReadableExport(MethodView):
    @requires(Permission.manage_privacy)
    def get(self, clinic_slug: str, request_id: int) -> Response:
        """The same export as a readable, printable document."""
        clinic = current_clinic()
        document = services.access_export(
            clinic, services.request_of(request_id), current_principal()
        )
        return Response(services.readable(document, clinic), mimetype="text/html")


@blp.route("/clients/<id:client_id>/deletion-plan")
class DeletionPlan(MethodView):
    @requires(Permission.manage_privacy)
    @blp.response(200, DeletionPlanSchema)
    def get(self, clinic_slug: str, client_id: int) -> Any:
        """What deleting the client removes now, keeps (until when, why) and asks of each processor."""
        return services.deletion_plan(current_clinic(), clients.client(client_id))


@blp.route("/breaches")
class Breaches(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(BreachInputSchema)
    @blp.response(201, BreachSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Register an incident; the response lists each notice it requires, to whom and by when."""
        incident = services.record_breach(current_clinic(), data, current_principal())
        return incident

    @requires(Permission.manage_privacy)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, BreachListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """The breach register."""
        return page(services.breaches(), args, newest_first)


@blp.route("/breaches/<id:incident_id>/notices/<id:notice_id>/sent")
class NoticeSent(MethodView):
    @requires(Permission.manage_privacy)
    @blp.response(200, BreachNoticeSchema)
    def post(self, clinic_slug: str, incident_id: int, notice_id: int) -> Any:
        """Record that a breach notice was sent."""
        notice = services.mark_notice_sent(incident_id, notice_id)
        return notice


@blp.route("/data-recipients")
class DataRecipients(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(DataRecipientSchema)
    @blp.response(201, DataRecipientSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Record a processor or recipient of client data, where it is and on what basis."""
        return services.add_data_recipient(data)

    @requires(Permission.manage_privacy)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, DataRecipientListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """The clinic's data recipients."""
        return page(services.data_recipients(), args, by_id)


@blp.route("/data-recipients/<id:recipient_id>/transfers")
class Transfers(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(TransferSchema)
    @blp.response(201)
    def post(self, data: dict[str, Any], clinic_slug: str, recipient_id: int) -> Any:
        """Send a client's data to a recipient: refused where the rules forbid it, logged as a disclosure."""
        result = services.transfer(current_clinic(), current_principal(), recipient_id, data)
        return result


@blp.route("/sms-opt-out-reviews")
class OptOutReviews(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, OptOutReviewListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Texts that may be opt-outs in the client's own words, the earliest honour-by date first."""
        return page(services.opt_out_reviews(), args, by("honour_by", "id"))


@blp.route("/sms-opt-out-reviews/<id:review_id>/decision")
class OptOutDecision(MethodView):
    @requires(Permission.manage_privacy)
    @blp.arguments(ReviewDecisionSchema)
    @blp.response(200, OptOutReviewSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, review_id: int) -> Any:
        """Decide a reviewed text: an opt-out withdraws every SMS consent of the client."""
        return inbound.decide_review(review_id, data["decision"], current_principal().user.id)
