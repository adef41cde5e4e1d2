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


def contrast_with_white(colour: str) -> float:
    """The WCAG 2 contrast ratio of ``#rrggbb`` against white (1 to 21)."""

    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return 1.05 / (luminance + 0.05)


def _readable_on_white(colour: str) -> None:
    # WCAG 2.2 AA: 4.5:1 for text. The colour is both link text on white and the
    # background of white button text, so it must hold on white either way.
    if contrast_with_white(colour) < 4.5:
        raise ValidationError(
            f"{colour} is too light to read on white (contrast "
            f"{contrast_with_white(colour):.1f}:1; WCAG AA asks 4.5:1): choose a darker shade"
        )


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
    #: The booking pages' accent colour (links, buttons), as ``#rrggbb``.
    page_colour = fields.String(
        load_default="#0b5cad",
        validate=[
            validate.Regexp(r"^#[0-9a-fA-F]{6}$", error="a colour as #rrggbb"),
            _readable_on_white,
        ],
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
