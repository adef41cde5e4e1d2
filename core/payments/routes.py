"""HTTP endpoints for payments: a booking's deposit, Stripe's webhook, the account, disputes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import jsonify, redirect, request
from flask.views import MethodView
from flask.wrappers import Response
from marshmallow import Schema, fields, validate

from core.accounts.access import (
    Permission,
    current_clinic,
    current_principal,
    public,
    public_while_closed,
    requires,
)
from core.accounts.models import Role
from core.api import Blueprint, CursorArgs, CursorPage, keyset_page, position
from core.bookings import services as bookings
from core.clock import as_utc
from core.errors import NotAllowed
from core.payments import services
from core.payments.models import Dispute
from core.payments.services import account
from core.payments.services.dispute_evidence import FIELD_LENGTH, TEXT_FIELDS
from core.schemas import UtcDateTime

webhooks = FlaskBlueprint("stripe_webhooks", __name__)


@webhooks.post("/webhooks/stripe")
@public
def stripe_webhook() -> Response:
    """Apply a Stripe event: signature checked on the raw body, routed by connected account."""
    event = services.verified_event(
        request.get_data(cache=False), request.headers.get("Stripe-Signature", "")
    )
    outcome = services.apply_event(event)  # checks the event's shape first
    return jsonify({"received": event["id"], "outcome": outcome})


class DepositPaymentSchema(Schema):
    """What Stripe.js needs to take the payment on the clinic's account."""

    client_secret = fields.String()
    publishable_key = fields.String(allow_none=True)
    stripe_account = fields.String()
    amount = fields.Dict()
    purpose = fields.String()


blp = Blueprint(
    "payments",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Payments on the clinic's own Stripe account.",
)


@blp.route("/bookings/<id:booking_id>/deposit-payment")
class DepositPayment(MethodView):
    @requires(Permission.manage_bookings)
    @blp.response(200, DepositPaymentSchema)
    def post(self, clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Start (or resume) paying what a held booking owes up front, at the front desk."""
        result = services.deposit_payment(current_clinic(), bookings.booking(booking_id))
        return result


def _owner_only() -> None:
    membership = current_principal().membership
    if membership is None or membership.role != Role.owner:
        raise NotAllowed("Only the clinic's owner connects or disconnects its Stripe account.")


class OnboardingLinkSchema(Schema):
    url = fields.String(
        metadata={"description": "Stripe's hosted onboarding: send the owner there."}
    )
    expires_at = fields.DateTime()


class StripeAccountSchema(Schema):
    account = fields.String(allow_none=True)
    charges_enabled = fields.Boolean(allow_none=True)


class OnboardingStateSchema(Schema):
    state = fields.String(required=True, validate=validate.Length(min=10, max=500))


@blp.route("/stripe/onboarding")
class StripeOnboarding(MethodView):
    @requires(Permission.edit_clinic)
    @blp.response(201, OnboardingLinkSchema)
    def post(self, clinic_slug: str) -> dict[str, Any]:
        """Start (or go on with) connecting the clinic's Stripe account: a link to Stripe's onboarding.

        The owner only: the account is where the clinic's money goes."""
        _owner_only()
        url, expires_at = account.onboarding_link(current_clinic())
        return {"url": url, "expires_at": expires_at}


@blp.route("/stripe")
class StripeAccount(MethodView):
    @requires(Permission.edit_clinic)
    @blp.response(200, StripeAccountSchema)
    def get(self, clinic_slug: str) -> dict[str, Any]:
        """Show the clinic's Stripe account and whether it can take charges."""
        clinic = current_clinic()
        return {
            "account": clinic.stripe_account_id,
            "charges_enabled": clinic.stripe_charges_enabled,
        }

    @requires(Permission.edit_clinic)
    @blp.response(204)
    def delete(self, clinic_slug: str) -> None:
        """Disconnect the clinic's Stripe account (the owner only); payments made on it keep it."""
        _owner_only()
        account.disconnect(current_clinic())


@blp.route("/stripe/onboarding-return")
class StripeOnboardingReturn(MethodView):
    @public_while_closed
    @blp.arguments(OnboardingStateSchema, location="query")
    @blp.response(200, StripeAccountSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Where Stripe sends the owner back: the account is read again from Stripe."""
        clinic = current_clinic()
        found = account.clinic_of_state(clinic, args["state"])
        enabled = account.refresh_from_stripe(clinic)
        return {"account": found, "charges_enabled": enabled}


@blp.route("/stripe/onboarding-refresh")
class StripeOnboardingRefresh(MethodView):
    @public_while_closed
    @blp.arguments(OnboardingStateSchema, location="query")
    @blp.response(302)
    def get(self, args: dict[str, Any], clinic_slug: str) -> Any:
        """Where Stripe sends the owner when the link lapsed: on to a new link."""
        clinic = current_clinic()
        account.clinic_of_state(clinic, args["state"])
        url, _ = account.onboarding_link(clinic)
        return redirect(url, 302)


# --- disputes -------------------------------------------------------------------------------------


class DisputeSchema(Schema):
    """A card dispute on one of the clinic's payments, and where its evidence stands."""

    id = fields.Integer()
    stripe_dispute_id = fields.String()
    payment_id = fields.Integer(allow_none=True)
    booking_id = fields.Integer(allow_none=True)
    amount = fields.Function(lambda d: d.amount.to_dict())
    reason = fields.String(allow_none=True)
    status = fields.String(
        metadata={"description": "Stripe's: needs_response, under_review, won ..."}
    )
    due_by = UtcDateTime(allow_none=True)
    evidence_status = fields.Function(
        lambda d: d.evidence_status.value,
        metadata={
            "description": "held (for a manager), queued, submitting, submitted, no_evidence, "
            "lapsed (closed or past due unsent), refused (by Stripe)"
        },
    )
    submitted_at = UtcDateTime(allow_none=True)
    submitted_by = fields.Function(
        lambda d: (
            None if d.submitted_at is None else ("staff" if d.submitted_by_user_id else "platform")
        )
    )
    submitted_by_user_id = fields.Integer(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"description": "won, lost"})
    last_error = fields.String(allow_none=True)
    created_at = UtcDateTime()


class DisputeDetailSchema(DisputeSchema):
    evidence = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        allow_none=True,
        metadata={"description": "Stripe's evidence text fields, as they are or were sent."},
    )


class DisputeListSchema(CursorPage):
    items = fields.List(fields.Nested(DisputeSchema))
    total = fields.Integer(metadata={"description": "How many disputes the clinic has had."})


class DisputeQuerySchema(CursorArgs):
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "Disputes per page, at most 200."},
    )


class EvidenceEditsSchema(Schema):
    """Changes to the evidence before it goes: a text field's new words, or "" to leave it out."""

    evidence = fields.Dict(
        keys=fields.String(validate=validate.OneOf(TEXT_FIELDS)),
        values=fields.String(validate=validate.Length(max=FIELD_LENGTH)),
        load_default=dict,
    )


@blp.route("/disputes")
class Disputes(MethodView):
    @requires(Permission.answer_disputes)
    @blp.arguments(DisputeQuerySchema, location="query")
    @blp.response(200, DisputeListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's card disputes, newest first, with where each one's evidence stands."""
        limit = args["limit"]
        after = position(args["after"], (datetime, int)) if args.get("after") else None
        found, total = services.disputes(limit=limit + 1, after=after)
        return {
            **keyset_page(found, limit, lambda d: (as_utc(d.created_at), d.id)),
            "total": total,
        }


@blp.route("/disputes/<id:dispute_id>")
class DisputeItem(MethodView):
    @requires(Permission.answer_disputes)
    @blp.response(200, DisputeDetailSchema)
    def get(self, clinic_slug: str, dispute_id: int) -> Dispute:
        """Show a dispute with its evidence: what was, or will be, sent to Stripe."""
        return services.dispute(dispute_id)


@blp.route("/disputes/<id:dispute_id>/submit")
class DisputeSubmission(MethodView):
    @requires(Permission.answer_disputes)
    @blp.arguments(EvidenceEditsSchema)
    @blp.response(200, DisputeDetailSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, dispute_id: int) -> Dispute:
        """Submit the dispute's evidence to Stripe, with any edits to its text fields.

        Stripe takes evidence once: a second submission, or one after the due date, is refused.
        """
        return services.submit_evidence(
            current_clinic(),
            dispute_id,
            user_id=current_principal().user.id,
            edits=data["evidence"],
        )
