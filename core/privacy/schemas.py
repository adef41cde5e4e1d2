"""Request and response shapes of the privacy API."""

from __future__ import annotations

from typing import Any

from flask import g
from marshmallow import Schema, fields, validate

from core import clock
from core.api import CursorPage, PageArgs
from core.hooks.decisions import PrivacyRight
from core.privacy.calendars import local_day
from core.schemas import Email, Id, Moment, Phone, UtcDateTime, text


def _local_day(value: Any) -> str | None:
    """The date ``value`` falls on at the clinic of the request being answered."""
    if value is None:
        return None
    return local_day(clock.as_utc(value), g.clinic.timezone).isoformat()


class PrivacyRequestInputSchema(Schema):
    """A privacy request as the client (or their representative) makes it."""

    kind = fields.String(required=True, validate=validate.OneOf([r.value for r in PrivacyRight]))
    requester_name = fields.String(required=True, validate=text(200))
    requester_email = Email(allow_none=True)
    requester_phone = Phone(allow_none=True)
    requester_date_of_birth = fields.Date(allow_none=True)
    representative_name = fields.String(allow_none=True, validate=text(200))
    representative_relationship = fields.String(allow_none=True, validate=text(100))
    details = fields.String(allow_none=True, validate=text(5000))
    channel = fields.String(
        load_default="web", validate=validate.OneOf(["web", "email", "phone", "in_person", "mail"])
    )


class StaffPrivacyRequestInputSchema(PrivacyRequestInputSchema):
    """A request staff record for a client (received by phone, mail or at the desk)."""

    client_id = Id(allow_none=True)
    received_at = Moment(allow_none=True, metadata={"description": "When it reached the clinic."})


class ProcessorNoticeSchema(Schema):
    """A deletion passed on to a processor or recipient: what was asked, what happened, and when."""

    id = fields.Integer()
    processor = fields.String()
    name = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    account = fields.String(allow_none=True)
    data_recipient_id = Id(allow_none=True)
    action = fields.String(allow_none=True)
    status = fields.String(attribute="status.value")
    outcome = fields.String(allow_none=True)
    recorded_at = UtcDateTime(attribute="created_at")
    attempted_at = UtcDateTime(allow_none=True)
    sent_at = UtcDateTime(
        allow_none=True, metadata={"description": "When it was done: deleted, or the notice sent."}
    )


class PrivacyRequestSchema(Schema):
    """A privacy request with its deadline and the rule that set it."""

    id = fields.Integer()
    kind = fields.String()
    status = fields.String(attribute="status.value")
    client_id = Id(allow_none=True)
    requester_name = fields.String()
    # What the requester gave, for staff to verify them against the record.
    requester_email = fields.String(allow_none=True)
    requester_phone = fields.String(allow_none=True)
    requester_date_of_birth = fields.Date(allow_none=True)
    representative_name = fields.String(allow_none=True)
    representative_relationship = fields.String(allow_none=True)
    channel = fields.String()
    received_at = UtcDateTime()
    acknowledged_at = UtcDateTime(allow_none=True)
    acknowledge_by = UtcDateTime(allow_none=True)
    acknowledge_on = fields.Function(lambda r: _local_day(r.acknowledge_by))
    due_at = UtcDateTime()
    due_on = fields.Function(
        lambda r: _local_day(r.due_at),
        metadata={"description": "The due date in the clinic's timezone."},
    )
    deadline_clause_id = fields.String()
    deadline_clause_text = fields.String()
    verify_identity = fields.Boolean()
    lookback_days = fields.Integer(allow_none=True)
    extendable_to = UtcDateTime(allow_none=True)
    extended_at = UtcDateTime(allow_none=True)
    extension_reason = fields.String(allow_none=True)
    verified_at = UtcDateTime(allow_none=True)
    verification_method = fields.String(allow_none=True)
    closed_at = UtcDateTime(allow_none=True)
    outcome = fields.String(allow_none=True)
    denial_reason = fields.String(allow_none=True)
    result = fields.Dict()
    processor_notices = fields.List(
        fields.Nested(ProcessorNoticeSchema),
        metadata={
            "description": "A deletion's notices to the processors holding the client's data."
        },
    )


class PrivacyRequestListSchema(CursorPage):
    items = fields.List(fields.Nested(PrivacyRequestSchema))


class QueueArgs(PageArgs):
    include_closed = fields.Boolean(load_default=False)


class VerificationSchema(Schema):
    client_id = Id(required=True)
    method = fields.String(
        required=True,
        validate=text(200),
        metadata={"description": "How identity was checked, e.g. photo ID at the front desk."},
    )
    guardian_id = Id(allow_none=True)


class ExtensionSchema(Schema):
    reason = fields.String(required=True, validate=text(2000))
    notice = fields.String(
        required=True, validate=text(5000), metadata={"description": "The notice sent."}
    )


class CompletionSchema(Schema):
    outcome = fields.String(allow_none=True, validate=text(5000))


class DenialSchema(Schema):
    reason = fields.String(required=True, validate=text(2000))


class PlanItemSchema(Schema):
    records = fields.String()
    count = fields.Integer()
    action = fields.String()
    keep_until = fields.String(allow_none=True)
    clause_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class ProcessorItemSchema(Schema):
    processor = fields.String()
    name = fields.String()
    reference = fields.String(allow_none=True)
    account = fields.String(allow_none=True)
    data_recipient_id = Id(allow_none=True)
    action = fields.String(
        metadata={"description": "delete, keep (with why), notify (staff send it) or record."}
    )
    detail = fields.String()


class DeletionPlanSchema(Schema):
    items = fields.List(fields.Nested(PlanItemSchema))
    processors = fields.List(fields.Nested(ProcessorItemSchema))


class NoticeSentSchema(Schema):
    outcome = fields.String(
        allow_none=True,
        validate=text(2000),
        metadata={"description": "How and to whom it was sent."},
    )


class BreachInputSchema(Schema):
    description = fields.String(required=True, validate=text(5000))
    discovered_at = Moment(required=True)
    affected_count = fields.Integer(required=True, validate=validate.Range(min=0, max=10**9))
    affected_by_region = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")),
        values=fields.Integer(validate=validate.Range(min=0, max=10**9)),
        load_default=dict,
    )
    health_data = fields.Boolean(load_default=True)
    encrypted = fields.Boolean(load_default=False)
    serious_harm_likely = fields.Boolean(load_default=True)


class BreachNoticeSchema(Schema):
    id = fields.Integer()
    recipient = fields.String()
    due_at = UtcDateTime(allow_none=True)
    as_soon_as_practicable = fields.Boolean()
    clause_id = fields.String()
    clause_text = fields.String()
    clause_source = fields.String(allow_none=True)
    sent_at = UtcDateTime(allow_none=True)


class BreachSchema(Schema):
    id = fields.Integer()
    description = fields.String()
    discovered_at = UtcDateTime()
    affected_count = fields.Integer()
    affected_by_region = fields.Dict()
    health_data = fields.Boolean()
    encrypted = fields.Boolean()
    serious_harm_likely = fields.Boolean()
    notices = fields.List(fields.Nested(BreachNoticeSchema))


class BreachListSchema(CursorPage):
    items = fields.List(fields.Nested(BreachSchema))


class DataRecipientSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=text(200))
    country = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{2}$"))
    role = fields.String(required=True, validate=validate.OneOf(["processor", "recipient"]))
    purpose = fields.String(required=True, validate=text(2000))
    basis = fields.String(
        allow_none=True,
        validate=validate.OneOf(
            ["authorised", "comparable_law", "model_clauses", "nz_law_applies"]
        ),
    )
    basis_note = fields.String(allow_none=True, validate=text(2000))


class DataRecipientListSchema(CursorPage):
    items = fields.List(fields.Nested(DataRecipientSchema))


class TransferSchema(Schema):
    client_id = Id(required=True)
    purpose = fields.String(required=True, validate=text(500))
    description = fields.String(required=True, validate=text(2000))


class OptOutReviewSchema(Schema):
    id = fields.Integer()
    client_id = Id(allow_none=True)
    phone = fields.String()
    body = fields.String()
    received_at = UtcDateTime()
    honour_by = UtcDateTime()
    decided_at = UtcDateTime(allow_none=True)
    decision = fields.String(allow_none=True)


class OptOutReviewListSchema(CursorPage):
    items = fields.List(fields.Nested(OptOutReviewSchema))


class ReviewDecisionSchema(Schema):
    decision = fields.String(
        required=True, validate=validate.OneOf(["opted_out", "not_an_opt_out"])
    )


class RightSchema(Schema):
    right = fields.String()
    clauses = fields.List(fields.Dict())


class RightListSchema(CursorPage):
    items = fields.List(fields.Nested(RightSchema))
