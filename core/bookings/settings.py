"""A clinic's booking settings, from the ``[bookings]`` table of its tenants/ file."""

from __future__ import annotations

import functools
import json
from datetime import time
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema


class ReminderSchema(Schema):
    """One reminder: a number of hours before the appointment, or a time on its morning."""

    class Meta:
        unknown = RAISE

    hours_before = fields.Integer(validate=validate.Range(min=1, max=24 * 14))
    morning_of = fields.Time(format="%H:%M")

    @validates_schema
    def _one(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("hours_before" in data) == ("morning_of" in data):
            raise ValidationError("give exactly one of hours_before or morning_of")


class BookingSettingsSchema(Schema):
    """How a clinic takes bookings."""

    class Meta:
        unknown = RAISE

    hold_minutes = fields.Integer(load_default=15, validate=validate.Range(min=1, max=24 * 60))
    slot_step_minutes = fields.Integer(
        load_default=15, validate=validate.OneOf([5, 10, 15, 20, 30, 60])
    )
    min_notice_minutes = fields.Integer(
        load_default=120, validate=validate.Range(min=0, max=14 * 24 * 60)
    )
    max_advance_days = fields.Integer(load_default=90, validate=validate.Range(min=1, max=730))
    reminder_channels = fields.List(
        fields.String(validate=validate.OneOf(["email", "sms"])), load_default=lambda: ["email"]
    )
    reminders = fields.List(
        fields.Nested(ReminderSchema), load_default=lambda: [{"hours_before": 24}]
    )


def booking_settings(clinic: Any) -> dict[str, Any]:
    """Return the clinic's booking settings with defaults filled in (treat as read-only)."""
    return _load(json.dumps(clinic.booking_settings or {}, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _load(stored: str) -> dict[str, Any]:
    # Validating on every request would cost more than the request's queries;
    # the stored JSON is the cache key, so an edited file is seen at once.
    return BookingSettingsSchema().load(json.loads(stored))


def dump_booking_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Return validated settings in their JSON form, for storing."""
    out = dict(settings)
    out["reminders"] = [
        {k: (v.strftime("%H:%M") if isinstance(v, time) else v) for k, v in r.items()}
        for r in settings["reminders"]
    ]
    return out
