"""HTTP endpoints for payments: a booking's deposit, and Stripe's webhook."""

from __future__ import annotations

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
from core.api import Blueprint
from core.bookings import services as bookings
from core.errors import NotAllowed
from core.payments import services
from core.payments.services import account

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
