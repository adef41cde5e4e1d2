"""API schemas for webhook endpoints, their deliveries and the event types."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from core.api import CursorArgs, CursorPage
from core.integrations.models import DeliveryStatus
from core.integrations.publishing import EVENT_TYPES
from core.schemas import Id, UtcDateTime, text

_EVENT_TYPE = fields.String(validate=validate.OneOf(list(EVENT_TYPES)))


class EndpointInputSchema(Schema):
    url = fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "An https:// URL whose host resolves to public addresses only."},
    )
    description = fields.String(allow_none=True, validate=text(200, blank=True))
    event_types = fields.List(
        _EVENT_TYPE,
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES)),
        metadata={"description": "The event types sent to it (GET .../events/types)."},
    )


class EndpointUpdateSchema(Schema):
    url = fields.String(validate=validate.Length(min=1, max=2000))
    description = fields.String(allow_none=True, validate=text(200, blank=True))
    event_types = fields.List(_EVENT_TYPE, validate=validate.Length(min=1, max=len(EVENT_TYPES)))
    enabled = fields.Boolean(
        metadata={"description": "true sends again, in order, what waited while it was disabled."}
    )


class EndpointSchema(Schema):
    id = Id()
    url = fields.String()
    description = fields.String(allow_none=True)
    event_types = fields.List(fields.String())
    enabled = fields.Boolean()
    disabled_at = UtcDateTime(allow_none=True)
    disabled_reason = fields.String(allow_none=True)
    failing_since = UtcDateTime(
        allow_none=True,
        metadata={"description": "The first failed attempt since the last success."},
    )
    consecutive_failures = fields.Integer()
    created_at = UtcDateTime()
    updated_at = UtcDateTime()


class CreatedEndpointSchema(EndpointSchema):
    secret = fields.String(
        metadata={"description": "The signing secret (whsec_...): shown once, here only."}
    )


class EndpointListSchema(CursorPage):
    items = fields.List(fields.Nested(EndpointSchema))


class DeliverySchema(Schema):
    id = Id()
    endpoint_id = Id()
    event_id = fields.String(
        metadata={"description": "The event's id (evt_...), the same on replays."}
    )
    event_type = fields.String()
    status = fields.Enum(DeliveryStatus, by_value=True)
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    last_attempt_at = UtcDateTime(allow_none=True)
    next_attempt_at = UtcDateTime(allow_none=True)
    delivered_at = UtcDateTime(allow_none=True)
    created_at = UtcDateTime()
    replay_of_id = Id(allow_none=True)


class DeliveryListSchema(CursorPage):
    items = fields.List(fields.Nested(DeliverySchema))


class DeliveryQueryArgs(CursorArgs):
    limit = fields.Integer(
        load_default=50,
        validate=validate.Range(min=1, max=200),
        metadata={"description": "Deliveries per page, at most 200."},
    )


class EventTypeSchema(Schema):
    type = fields.String()
    description = fields.String()


class EventTypeListSchema(CursorPage):
    items = fields.List(fields.Nested(EventTypeSchema))
