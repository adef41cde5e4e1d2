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


_FORM_ID = validate.Regexp(r"^[a-z][a-z0-9_]{0,62}$", error="lower-case letters, digits and _")


class IntakeQuestionSchema(Schema):
    """One question of the clinic's health intake, asked before the visit."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=_FORM_ID)
    question = fields.String(required=True, validate=validate.Length(min=1, max=500))
    #: ``yes_no`` (two choices) or ``text`` (in the client's words).
    kind = fields.String(load_default="text", validate=validate.OneOf(["yes_no", "text"]))
    required = fields.Boolean(load_default=True)


class ConsentFormSchema(Schema):
    """A consent document the client signs before treatment, in the clinic's words."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=_FORM_ID)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    #: Changes whenever the text does: a signature is to one version's exact words.
    version = fields.String(required=True, validate=validate.Length(min=1, max=50))
    text = fields.String(required=True, validate=validate.Length(min=1, max=20000))
    #: The service categories it is needed for; none listed means every treatment.
    categories = fields.List(fields.String(validate=_FORM_ID), load_default=list)


#: What the platform asks before a visit when the clinic's file asks nothing of its own: the
#: questions a provider needs before any aesthetic treatment.
DEFAULT_INTAKE: list[dict[str, Any]] = [
    {
        "id": "medications",
        "question": "Which medicines or supplements do you take?",
        "kind": "text",
        "required": False,
    },
    {
        "id": "allergies",
        "question": "Are you allergic to any medicine, anaesthetic, latex or skin product?",
        "kind": "yes_no",
    },
    {
        "id": "conditions",
        "question": "Do you have a medical condition, or have you had surgery, in the past year?",
        "kind": "yes_no",
    },
    {
        "id": "pregnant",
        "question": "Are you pregnant, trying to become pregnant, or breastfeeding?",
        "kind": "yes_no",
    },
    {
        "id": "recent_treatments",
        "question": "Have you had any cosmetic treatment in the past six months?",
        "kind": "yes_no",
    },
    {
        "id": "details",
        "question": "If you answered yes to any question, please tell us more.",
        "kind": "text",
        "required": False,
    },
]
#: The platform's consent to treatment, for every treatment, until the clinic writes its own.
DEFAULT_CONSENT_FORMS: list[dict[str, Any]] = [
    {
        "id": "treatment",
        "title": "Consent to treatment",
        "version": "platform-2026-12",
        "text": (
            "I consent to the treatment I have booked. I have answered the health questions "
            "truthfully and will tell my provider of any change before the treatment. My "
            "provider will explain the treatment, its expected results, its risks and its "
            "alternatives, and answer my questions, before it starts. I may withdraw this "
            "consent at any time before the treatment begins."
        ),
        "categories": [],
    }
]


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
    #: The clinic's logo for its pages: an image file beside its tenants/ file
    #: (``logos/bijoux.svg``), shown in the pages' header with the clinic's name as its text.
    logo = fields.String(
        load_default=None,
        allow_none=True,
        validate=[
            validate.Regexp(
                r"^(?!.*\.\./)[A-Za-z0-9_][A-Za-z0-9_./-]*\.(png|jpg|jpeg|svg|webp)$",
                error="a .png, .jpg, .svg or .webp file under the tenants/ folder",
            )
        ],
    )
    #: The health intake clients fill in from their booking link.
    intake = fields.List(
        fields.Nested(IntakeQuestionSchema),
        # A default is not loaded by the schema: load it, so each question has every field.
        load_default=lambda: IntakeQuestionSchema(many=True).load(DEFAULT_INTAKE),
        validate=validate.Length(min=1, max=60),
    )
    #: The consent documents clients sign from their booking link, by treatment category.
    consent_forms = fields.List(
        fields.Nested(ConsentFormSchema),
        load_default=lambda: ConsentFormSchema(many=True).load(DEFAULT_CONSENT_FORMS),
        validate=validate.Length(max=30),
    )

    @validates_schema
    def _ids_once(self, data: dict[str, Any], **kwargs: Any) -> None:
        for name in ("intake", "consent_forms"):
            ids = [item["id"] for item in data.get(name, [])]
            if len(ids) != len(set(ids)):
                raise ValidationError({name: ["each id may be used once"]})


def booking_settings(clinic: Any) -> dict[str, Any]:
    """Return the clinic's booking settings with defaults filled in (treat as read-only)."""
    stored = clinic.booking_settings or {}
    # A booking asks several times; the answer is kept on the clinic's row for as long as
    # the row holds the same settings object (assigning new settings replaces it).
    memo = clinic.__dict__.get(_MEMO)
    if memo is not None and memo[0] is stored:
        return memo[1]
    found = _load(json.dumps(stored, sort_keys=True))
    clinic.__dict__[_MEMO] = (stored, found)
    return found


_MEMO = "_clinic_saas_booking_settings"


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
