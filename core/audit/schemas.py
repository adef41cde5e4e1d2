"""API schemas for the audit trail."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.api import CursorArgs, CursorPage
from core.audit.models import AuditAction
from core.schemas import Id, Moment, UtcDateTime


class AuditEventSchema(Schema):
    """One audited access to health data."""

    seq = fields.Integer()
    at = UtcDateTime()
    actor_user_id = Id(allow_none=True)
    actor_role = fields.String(allow_none=True)
    action = fields.Enum(AuditAction, by_value=True)
    resource = fields.String()
    resource_id = Id(allow_none=True)
    client_id = Id(allow_none=True)
    fields_ = fields.List(fields.String(), data_key="fields", attribute="fields")
    reason = fields.String(allow_none=True)
    recipient = fields.String(allow_none=True)
    emergency = fields.Boolean()
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    hash = fields.String()


class AuditEventListSchema(CursorPage):
    items = fields.List(fields.Nested(AuditEventSchema))


class AuditQueryArgs(CursorArgs):
    client_id = Id()
    actor_user_id = Id()
    action = fields.Enum(AuditAction, by_value=True)
    emergency = fields.Boolean()
    since = Moment()
    until = Moment()
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "Events per page, at most 500."},
    )


class ChainReportSchema(Schema):
    intact = fields.Boolean()
    checked = fields.Integer()
    first_broken_seq = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
