"""API schemas for availability and bookings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core import clock
from core.api import CursorArgs, CursorPage
from core.bookings.models import BookingStatus
from core.hooks.decisions import LateArrivalOption
from core.schemas import Email, Id, Moment, Phone, UtcDateTime, text

#: How far from today availability may be asked for, either way.
HORIZON_DAYS = 3 * 366


class AvailabilityArgs(Schema):
    service_id = Id(required=True)
    start = fields.Date(
        required=True, data_key="from", metadata={"description": "First local date, inclusive."}
    )
    end = fields.Date(
        required=True, data_key="to", metadata={"description": "Last local date, inclusive."}
    )
    location_id = Id()
    provider_id = Id()

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["end"] < data["start"]:
            raise ValidationError("must not be before 'from'", "to")
        if (data["end"] - data["start"]).days > 31:
            raise ValidationError("ask for at most 31 days at a time", "to")
        # Nothing is bookable years ahead; a far date is a mistake, not a question.
        today = clock.now().date()
        if data["start"] > today + timedelta(days=HORIZON_DAYS):
            raise ValidationError(f"must be within {HORIZON_DAYS} days from today", "from")
        if data["start"] < today - timedelta(days=HORIZON_DAYS):
            raise ValidationError(f"must be within {HORIZON_DAYS} days before today", "from")


class SlotDaySchema(Schema):
    """The bookable starts of one day with one provider at one location."""

    provider_id = fields.Integer()
    provider_name = fields.String()
    location_id = fields.Integer()
    date = fields.Date(metadata={"description": "The local date."})
    starts = fields.List(
        fields.String(),
        metadata={"description": "Local start times with their UTC offsets (ISO 8601)."},
    )


class SlotListSchema(Schema):
    duration_minutes = fields.Integer()
    items = fields.List(fields.Nested(SlotDaySchema))
    count = fields.Integer(metadata={"description": "How many start times in all."})


class GuestSchema(Schema):
    """A client booking online without an account."""

    legal_first_name = fields.String(required=True, validate=text(100))
    legal_last_name = fields.String(required=True, validate=text(100))
    email = Email(required=True)
    phone = Phone(required=True)
    date_of_birth = fields.Date(required=True)


class BookingRequestSchema(Schema):
    service_id = Id(required=True)
    location_id = Id(required=True)
    provider_id = Id(allow_none=True)
    starts_at = Moment(required=True, metadata={"description": "With its UTC offset."})


class OnlineBookingSchema(BookingRequestSchema):
    client = fields.Nested(GuestSchema, required=True)
    accept_policy = fields.Boolean(
        load_default=False,
        metadata={
            "description": "The client explicitly accepts the clinic's policy shown before "
            "booking: every clause of the booking's policy is recorded as accepted, with the "
            "time, address and browser, as evidence should a fee be disputed."
        },
    )


class StaffBookingSchema(BookingRequestSchema):
    client_id = Id(required=True)


class ChargeSchema(Schema):
    kind = fields.String()
    amount = fields.Function(lambda c: c.amount.to_dict())
    status = fields.String()
    clause_id = fields.String(allow_none=True)
    clause_text = fields.String(allow_none=True)


class EventSchema(Schema):
    action = fields.String()
    from_status = fields.String(allow_none=True)
    to_status = fields.String()
    at = UtcDateTime()
    actor = fields.String()
    clause_id = fields.String(allow_none=True)
    clause_text = fields.String(allow_none=True)
    decision = fields.Dict(allow_none=True)
    details = fields.Dict()


def _local(booking: Any, value: Any) -> str | None:
    if value is None:
        return None
    # The booking holds its location, so every time in one response costs no query.
    return clock.as_utc(value).astimezone(ZoneInfo(booking.location.timezone)).isoformat()


class PolicyAcceptanceSchema(Schema):
    """A client's acceptance of the booking's policy, as recorded."""

    policy_version_id = Id()
    clause_ids = fields.List(fields.String())
    accepted_at = UtcDateTime()
    ip_address = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    channel = fields.String(metadata={"description": "online, self_service or staff."})


class BookingSchema(Schema):
    id = fields.Integer()
    status = fields.Enum(BookingStatus, by_value=True)
    client_id = Id()
    service_id = Id()
    provider_id = Id()
    location_id = Id()
    starts_at = fields.Function(
        lambda b: _local(b, b.starts_at),
        metadata={"description": "Local time with its UTC offset."},
    )
    ends_at = fields.Function(lambda b: _local(b, b.ends_at))
    hold_expires_at = UtcDateTime(allow_none=True)
    source = fields.String()
    price = fields.Function(lambda b: b.price.to_dict())
    requirements = fields.Dict()
    policy_version_id = Id()
    policy_accepted_at = UtcDateTime()
    charges = fields.List(fields.Nested(ChargeSchema))
    events = fields.List(fields.Nested(EventSchema))
    policy_acceptances = fields.List(
        fields.Nested(PolicyAcceptanceSchema),
        metadata={
            "description": "The client's recorded acceptances of the booking's policy, oldest "
            "first: the evidence should a fee be disputed."
        },
    )


class OnlineBookingResultSchema(Schema):
    booking = fields.Nested(BookingSchema)
    self_service_token = fields.String()
    policy = fields.List(
        fields.Dict(), metadata={"description": "The clauses the client accepted by booking."}
    )
    payment = fields.Dict(
        allow_none=True,
        load_default=None,
        dump_default=None,
        metadata={
            "description": "What Stripe.js needs to pay the deposit, when one is owed and the "
            "clinic takes payments online; else null (the self-service link's deposit-payment "
            "gives it later)."
        },
    )
    payment_retry = fields.Dict(
        allow_none=True,
        dump_default=None,
        metadata={
            "description": "When a deposit is owed but its payment could not be started (the "
            "payment provider or the database did not answer): `detail`, and the `method` and "
            "`href` that start it, after `retry_after` seconds. The booking is made and held; "
            "repeating the booking with the same Idempotency-Key tries again too."
        },
    )


class BookingSummarySchema(BookingSchema):
    """A booking in a list: without its history."""

    class Meta:
        exclude = ("events", "policy_acceptances")


class OwnBookingSchema(BookingSchema):
    """A booking as its client sees it through their link."""

    class Meta:
        exclude = ("events", "requirements", "policy_acceptances")


class BookingListSchema(CursorPage):
    items = fields.List(fields.Nested(BookingSummarySchema))


class BookingQueryArgs(CursorArgs):
    starts_from = Moment(data_key="from")
    starts_before = Moment(data_key="before")
    provider_id = Id()
    client_id = Id()
    status = fields.Enum(BookingStatus, by_value=True)
    limit = fields.Integer(
        load_default=200,
        validate=validate.Range(min=1, max=500),
        metadata={"description": "Bookings per page, at most 500."},
    )


class ConfirmSchema(Schema):
    method = fields.String(
        required=True,
        validate=validate.OneOf(
            ["card_on_file", "gift_certificate", "deposit_paid", "prepaid", "waived_by_staff"]
        ),
    )
    gift_certificate_code = fields.String(
        validate=text(40),
        metadata={
            "description": "The certificate that guarantees the booking (method gift_certificate)."
        },
    )


class TurnedAwaySchema(Schema):
    reason = fields.String(required=True, validate=validate.OneOf(["children", "pets"]))
    new_starts_at = Moment(required=True)


class CancelSchema(Schema):
    by = fields.String(load_default="client", validate=validate.OneOf(["client", "clinic"]))


class RescheduleSchema(Schema):
    starts_at = Moment(required=True)
    provider_id = Id(allow_none=True)


class LateArrivalSchema(Schema):
    option = fields.Enum(LateArrivalOption, by_value=True, required=True)
    new_starts_at = Moment(allow_none=True)


class DecisionSchema(Schema):
    """A policy decision with the clause it applied."""

    decision = fields.Dict()
    booking = fields.Nested(BookingSchema)


class OwnDecisionSchema(DecisionSchema):
    """A decision as the client sees it through their link: their booking, not staff's records."""

    booking = fields.Nested(OwnBookingSchema)
