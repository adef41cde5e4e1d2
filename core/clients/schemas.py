"""API schemas for clients, their health records, consents and break-glass access."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from core.api import CursorArgs, CursorPage, PageArgs
from core.clients.models import (
    Channel,
    ConsentKind,
    ConsentMethod,
    NoteKind,
    PhotoKind,
    ProductSetting,
    Severity,
)
from core.schemas import Email, Id, Moment, Phone, TimeZone, UtcDateTime, text

_NAME = text(100)
_TEXT = validate.Length(max=10_000)


def _not_in_future(born: Any) -> None:
    from core import clock

    if born is not None and born > clock.now().date():
        raise ValidationError("cannot be in the future")


class ClientInputSchema(Schema):
    """A client's identity and contact details as staff enter them."""

    legal_first_name = fields.String(required=True, validate=_NAME)
    legal_last_name = fields.String(required=True, validate=_NAME)
    preferred_name = fields.String(allow_none=True, validate=_NAME)
    date_of_birth = fields.Date(allow_none=True, validate=lambda born: _not_in_future(born))
    gender = fields.String(allow_none=True, validate=validate.Length(max=50))
    email = Email(allow_none=True)
    phone = Phone(allow_none=True)
    street = fields.String(allow_none=True, validate=validate.Length(max=200))
    unit = fields.String(allow_none=True, validate=validate.Length(max=100))
    city = fields.String(allow_none=True, validate=validate.Length(max=100))
    region = fields.String(allow_none=True, validate=validate.Length(max=100))
    postal_code = fields.String(allow_none=True, validate=validate.Length(max=20))
    country = fields.String(allow_none=True, validate=validate.Length(equal=2))
    emergency_contact_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    emergency_contact_phone = Phone(allow_none=True)
    emergency_contact_relationship = fields.String(
        allow_none=True, validate=validate.Length(max=100)
    )
    preferred_location_id = Id(allow_none=True)
    preferred_channel = fields.Enum(Channel, by_value=True)
    language = fields.String(allow_none=True, validate=validate.Length(max=16))
    timezone = TimeZone(allow_none=True)


class ClientPatchSchema(ClientInputSchema):
    """A change to some of a client's details."""

    legal_first_name = fields.String(validate=_NAME)
    legal_last_name = fields.String(validate=_NAME)


class GuardianSchema(Schema):
    """A parent or guardian of a client."""

    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=text(200))
    relationship_to_client = fields.String(required=True, validate=text(100))
    email = Email(allow_none=True)
    phone = Phone(allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class AgeGateSchema(Schema):
    """An age rule that applies to the client today."""

    under = fields.Integer()
    requires = fields.String()
    applies_to = fields.String()
    satisfied = fields.Boolean()
    clause = fields.Function(lambda gate: {"id": gate.clause.id, "text": gate.clause.text})


class ClientSchema(ClientInputSchema):
    """A client as staff see them: contact data only, never health data."""

    id = fields.Integer(dump_only=True)
    display_name = fields.String(dump_only=True)
    guardians = fields.List(fields.Nested(GuardianSchema), dump_only=True)
    age_rules = fields.List(fields.Nested(AgeGateSchema), dump_only=True)
    parental_consent_on_file = fields.Boolean(dump_only=True)
    created_at = UtcDateTime(dump_only=True)
    updated_at = UtcDateTime(dump_only=True)


class ClientSummarySchema(Schema):
    """A client in search results."""

    id = fields.Integer()
    display_name = fields.String()
    legal_first_name = fields.String()
    legal_last_name = fields.String()
    preferred_name = fields.String(allow_none=True)
    date_of_birth = fields.Date(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class ClientListSchema(CursorPage):
    items = fields.List(fields.Nested(ClientSummarySchema))


class ClientSearchArgs(CursorArgs):
    q = fields.String(validate=validate.Length(max=200))
    limit = fields.Integer(
        load_default=25,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "Clients per page, at most 100."},
    )


class SensitivitiesSchema(Schema):
    """Sensitivities Bijoux asks about: "allergies or sensitivities to aromas or ingredients"."""

    aromas = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)
    ingredients = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)


class IntakeAnswersSchema(Schema):
    """The health intake: history, medications, allergies, and the conditions a clinic asks about."""

    medical_history = fields.String(allow_none=True, validate=_TEXT)
    current_medications = fields.List(
        fields.String(validate=validate.Length(max=200)), load_default=list
    )
    allergies = fields.List(fields.String(validate=validate.Length(max=200)), load_default=list)
    sensitivities = fields.Nested(
        SensitivitiesSchema, load_default=lambda: {"aromas": [], "ingredients": []}
    )
    pregnant_or_possibly_pregnant = fields.Boolean(allow_none=True)
    injuries = fields.String(allow_none=True, validate=_TEXT)
    high_blood_pressure = fields.Boolean(allow_none=True)
    sun_or_tanning_bed_exposure = fields.String(allow_none=True, validate=_TEXT)
    disabilities = fields.String(allow_none=True, validate=_TEXT)
    illnesses = fields.String(allow_none=True, validate=_TEXT)
    other_practitioners = fields.String(allow_none=True, validate=_TEXT)
    notes = fields.String(allow_none=True, validate=_TEXT)


class IntakeInputSchema(Schema):
    answers = fields.Nested(IntakeAnswersSchema, required=True)
    change_reason = fields.String(allow_none=True, validate=validate.Length(max=2000))


class IntakeSchema(Schema):
    """One version of a client's health intake."""

    id = fields.Integer()
    version = fields.Integer()
    answers = fields.Dict()
    change_reason = fields.String(allow_none=True)
    recorded_by_user_id = Id(allow_none=True)
    recorded_at = UtcDateTime()


class IntakeListSchema(CursorPage):
    items = fields.List(fields.Nested(IntakeSchema))


class NoteInputSchema(Schema):
    kind = fields.Enum(NoteKind, by_value=True, required=True)
    body = fields.String(required=True, validate=validate.Length(min=1, max=20_000))


class NoteSchema(NoteInputSchema):
    id = fields.Integer(dump_only=True)
    amends_note_id = Id(dump_only=True, allow_none=True)
    author_user_id = Id(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class NoteListSchema(CursorPage):
    items = fields.List(fields.Nested(NoteSchema))


class ProductInputSchema(Schema):
    product = fields.String(required=True, validate=validate.Length(min=1, max=200))
    setting = fields.Enum(ProductSetting, by_value=True, required=True)
    details = fields.String(allow_none=True, validate=_TEXT)
    started_on = fields.Date(allow_none=True)


class ProductSchema(ProductInputSchema):
    id = fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class ProductListSchema(CursorPage):
    items = fields.List(fields.Nested(ProductSchema))


class ReactionInputSchema(Schema):
    product_use_id = Id(allow_none=True)
    service = fields.String(allow_none=True, validate=validate.Length(max=200))
    description = fields.String(required=True, validate=validate.Length(min=1, max=10_000))
    severity = fields.Enum(Severity, by_value=True, required=True)
    occurred_on = fields.Date(required=True)


class ReactionSchema(ReactionInputSchema):
    id = fields.Integer(dump_only=True)
    created_at = UtcDateTime(dump_only=True)


class ReactionListSchema(CursorPage):
    items = fields.List(fields.Nested(ReactionSchema))


class ConsentInputSchema(Schema):
    """A consent as given: the exact words shown, their version, how and when."""

    kind = fields.Enum(ConsentKind, by_value=True, required=True)
    text = fields.String(required=True, validate=validate.Length(min=1, max=20_000))
    text_version = fields.String(required=True, validate=validate.Length(min=1, max=50))
    method = fields.Enum(ConsentMethod, by_value=True, required=True)
    given_at = Moment(allow_none=True)
    evidence = fields.Dict(keys=fields.String(), load_default=dict)
    phone = Phone(allow_none=True)
    guardian_id = Id(allow_none=True)


class ConsentSchema(ConsentInputSchema):
    id = fields.Integer(dump_only=True)
    given_at = UtcDateTime(dump_only=True)
    active = fields.Boolean(dump_only=True)
    recorded_by_user_id = Id(dump_only=True, allow_none=True)
    revoked_at = UtcDateTime(dump_only=True, allow_none=True)
    revocation_method = fields.String(dump_only=True, allow_none=True)


class ConsentListSchema(CursorPage):
    items = fields.List(fields.Nested(ConsentSchema))


class RevokeSchema(Schema):
    method = fields.String(
        required=True,
        validate=validate.OneOf(["written", "electronic", "verbal", "sms_keyword", "email"]),
    )


class PhotoUploadSchema(Schema):
    """A photo upload: the image file and its details, as multipart/form-data."""

    image = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    kind = fields.Enum(PhotoKind, by_value=True, required=True)
    caption = fields.String(allow_none=True, validate=validate.Length(max=500))
    taken_on = fields.Date(allow_none=True)
    marketing_use = fields.Boolean(load_default=False)


class PhotoSchema(Schema):
    id = fields.Integer()
    kind = fields.Enum(PhotoKind, by_value=True)
    caption = fields.String(allow_none=True)
    content_type = fields.String()
    byte_size = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    taken_on = fields.Date(allow_none=True)
    marketing_use = fields.Boolean()
    in_marketing_use = fields.Boolean()
    created_at = UtcDateTime()


class PhotoListSchema(CursorPage):
    items = fields.List(fields.Nested(PhotoSchema))


class EmergencyAccessInputSchema(Schema):
    client_id = Id(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=10, max=2000))
    minutes = fields.Integer(load_default=60)


class EmergencyAccessSchema(Schema):
    id = fields.Integer()
    user_id = Id()
    client_id = Id()
    reason = fields.String()
    started_at = UtcDateTime()
    expires_at = UtcDateTime()
    reviewed_at = UtcDateTime(allow_none=True)
    reviewed_by_user_id = Id(allow_none=True)
    review_note = fields.String(allow_none=True)


class EmergencyAccessListSchema(CursorPage):
    items = fields.List(fields.Nested(EmergencyAccessSchema))


class EmergencyAccessArgs(PageArgs):
    unreviewed = fields.Boolean(load_default=False)


class ReviewSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DisclosureInputSchema(Schema):
    recipient = fields.String(required=True, validate=validate.Length(min=1, max=200))
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=500))
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ExportArgs(Schema):
    recipient = fields.String(validate=validate.Length(min=1, max=200))
    purpose = fields.String(validate=validate.Length(min=1, max=500))
