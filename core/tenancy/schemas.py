"""API schemas for clinics and locations."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.api import CursorPage
from core.schemas import Email, Phone, TimeZone, text
from core.tenancy.models import DISPUTE_EVIDENCE_CHOICES, ClinicStatus


class LocationSchema(Schema):
    """A clinic location as the API shows it."""

    id = fields.Integer(dump_only=True)
    slug = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    street = fields.String(dump_only=True, allow_none=True)
    unit = fields.String(dump_only=True, allow_none=True)
    city = fields.String(dump_only=True, allow_none=True)
    region = fields.String(dump_only=True, allow_none=True)
    postal_code = fields.String(dump_only=True, allow_none=True)
    country = fields.String(dump_only=True)
    phone = fields.String(dump_only=True, allow_none=True)
    timezone = fields.String(dump_only=True)
    active = fields.Boolean(dump_only=True)


class ClinicSchema(Schema):
    """A clinic's profile as the API shows it."""

    slug = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    legal_name = fields.String(dump_only=True, allow_none=True)
    timezone = fields.String(dump_only=True)
    currency = fields.String(dump_only=True)
    country = fields.String(dump_only=True)
    locale = fields.String(
        dump_only=True, metadata={"description": "How money and dates are written (en_NZ)."}
    )
    status = fields.Enum(ClinicStatus, by_value=True, dump_only=True)
    contact_email = fields.String(dump_only=True, allow_none=True)
    contact_phone = fields.String(dump_only=True, allow_none=True)
    privacy_email = fields.String(dump_only=True, allow_none=True)
    website = fields.String(dump_only=True, allow_none=True)
    idle_timeout_minutes = fields.Integer(dump_only=True)
    dispute_evidence = fields.String(
        dump_only=True,
        metadata={
            "description": "review: a manager submits dispute evidence; submit: sent at once"
        },
    )
    locations = fields.List(fields.Nested(LocationSchema), dump_only=True)


class ClinicUpdateSchema(Schema):
    """The profile fields owners and managers may change through the API."""

    name = fields.String(validate=text(200))
    contact_email = Email(allow_none=True)
    contact_phone = Phone(allow_none=True)
    privacy_email = Email(allow_none=True)
    website = fields.Url(
        allow_none=True, schemes={"https", "http"}, validate=validate.Length(max=500)
    )
    timezone = TimeZone()
    idle_timeout_minutes = fields.Integer(validate=validate.Range(min=1, max=60))
    dispute_evidence = fields.String(
        validate=validate.OneOf(DISPUTE_EVIDENCE_CHOICES),
        metadata={
            "description": "How evidence answering a card dispute goes to Stripe: review (held "
            "for a manager to submit; the default) or submit (sent as soon as it is assembled)."
        },
    )


class PluginSchema(Schema):
    """A plugin enabled for a clinic, with the hooks it answers."""

    name = fields.String()
    core_default = fields.Boolean()
    installed = fields.Boolean()
    refused = fields.String(
        allow_none=True, metadata={"description": "Why the plugin was refused at start, if it was."}
    )
    hooks = fields.List(fields.String())
    settings = fields.Dict()


class PluginListSchema(CursorPage):
    """The plugins a clinic's hook calls reach."""

    items = fields.List(fields.Nested(PluginSchema))
    count = fields.Integer()
