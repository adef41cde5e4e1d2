"""HTTP endpoints for payments: a booking's deposit, and Stripe's webhook."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import jsonify, request
from flask.views import MethodView
from flask.wrappers import Response
from marshmallow import Schema, fields

from core.accounts.access import Permission, current_clinic, public, requires
from core.api import Blueprint
from core.bookings import services as bookings
from core.payments import services

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
