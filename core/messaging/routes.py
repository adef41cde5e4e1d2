"""HTTP endpoints for messaging: the SMS provider's inbound webhook and marketing sends."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from twilio.request_validator import RequestValidator

from core.accounts.access import Permission, current_clinic, public_while_closed, requires
from core.accounts.throttle import not_counted
from core.api import Blueprint
from core.errors import Problem
from core.messaging import campaigns, inbound
from core.schemas import Id, Moment, text

webhooks = FlaskBlueprint("sms_webhooks", __name__)


@webhooks.post("/webhooks/sms/<clinic_slug>")
@public_while_closed
@not_counted
def sms_inbound(clinic_slug: str) -> Response:
    """Receive a text a client sent the clinic (Twilio's webhook), signature verified."""
    token = current_app.config.get("TWILIO_AUTH_TOKEN")
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not RequestValidator(token).validate(
        request.url, request.form.to_dict(), signature
    ):
        raise Problem(403, "The request is not signed by the SMS provider.", kind="bad-signature")
    sender = request.form.get("From", "")
    if not sender:
        raise Problem(
            422,
            "The text has no sender.",
            errors=[
                {"field": "From", "pointer": "#/From", "detail": "required", "location": "form"}
            ],
        )
    result = inbound.handle(current_clinic(), sender, request.form.get("Body", ""))
    reply = f"<Message>{escape(result.reply)}</Message>" if result.reply else ""
    return Response(
        f'<?xml version="1.0" encoding="UTF-8"?><Response>{reply}</Response>',
        mimetype="application/xml",
    )


blp = Blueprint(
    "messaging",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Marketing messages, sent only with consent and outside the client's quiet hours.",
)


class MarketingInputSchema(Schema):
    client_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=10_000))
    channel = fields.String(required=True, validate=validate.OneOf(["email", "sms"]))
    subject = fields.String(load_default="", validate=text(200, blank=True))
    body = fields.String(required=True, validate=text(1600))
    send_at = Moment(allow_none=True)
    campaign = fields.String(required=True, validate=text(100))


class MarketingResultSchema(Schema):
    queued = fields.List(Id())
    already_queued = fields.List(Id())
    not_consented = fields.List(Id())


@blp.route("/marketing-messages")
class MarketingMessages(MethodView):
    @requires(Permission.send_marketing)
    @blp.arguments(MarketingInputSchema)
    @blp.response(201, MarketingResultSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Queue a marketing message to clients who opted in to it on that channel.

        Each is held back while it is night where the client is; consent is
        checked again when it goes.
        """
        return campaigns.queue_marketing(current_clinic(), data)
