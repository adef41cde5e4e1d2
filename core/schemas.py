"""Marshmallow fields shared by every capability: email, phone, timezone.

A schema that reads a request's arguments or body is made once and shared by
every request (core/api.py), so neither a schema nor a field may keep anything
of one load on itself (no ``self.x = ...`` in a hook or ``_deserialize``).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from marshmallow import fields, validate

from core.clock import as_utc

_ZONES: frozenset[str] | None = None


def is_timezone(name: str) -> bool:
    """Return whether ``name`` is an IANA timezone such as ``America/Los_Angeles``."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    if name not in _ZONES:
        return False
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return False
    return True


def normalise_phone(value: str, region: str | None = "US") -> str:
    """Return ``value`` as an E.164 number (``+14088211633``), or raise ``ValueError``.

    ``region`` is where a number written without a country code is read as
    being from: a clinic's own country.
    """
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"not a phone number ({error})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


#: Refuses text that is empty once spaces are ignored.
not_blank = validate.Regexp(r"\S", error="Cannot be blank.")


def text(max_length: int, *, blank: bool = False) -> validate.Validator:
    """Return the validator for a text field of at most ``max_length`` characters."""
    length = validate.Length(max=max_length)
    return length if blank else validate.And(length, not_blank)


class Email(fields.String):
    """An email address, checked for form (no DNS lookups) and lower-cased."""

    default_error_messages = {"invalid_email": "Not a valid email address: {reason}"}

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(max=254))
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return validate_email(text, check_deliverability=False).normalized.lower()
        except EmailNotValidError as error:
            raise self.make_error("invalid_email", reason=str(error)) from None


class Phone(fields.String):
    """A phone number, stored in E.164; numbers without a country code are read as US."""

    default_error_messages = {"invalid_phone": "Not a valid phone number: {reason}"}

    def __init__(self, *, region: str = "US", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.region = region

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_phone(text, self.region)
        except ValueError as error:
            raise self.make_error("invalid_phone", reason=str(error)) from None


class UtcDateTime(fields.AwareDateTime):
    """A moment in time, always written in UTC with its offset (``2026-11-21T23:32:08+00:00``).

    SQLite returns naive datetimes; everything stored is UTC, so naive means UTC.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else super()._serialize(as_utc(value), attr, obj, **kwargs)


#: The largest row id: ids are 32-bit integers on PostgreSQL.
MAX_ID = 2**31 - 1


class Id(fields.Integer):
    """The id of a row: a positive integer that fits the database's column."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=1, max=MAX_ID))
        super().__init__(**kwargs)


class Moment(fields.AwareDateTime):
    """A moment given with its UTC offset, within sane years, converted to UTC on load."""

    default_error_messages = {"out_of_range": "Give a date between 1900 and 2200."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not 1900 <= moment.year <= 2200:
            raise self.make_error("out_of_range")
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            raise self.make_error("out_of_range") from None


class TimeZone(fields.String):
    """An IANA timezone name."""

    default_error_messages = {"invalid_tz": "Not an IANA timezone such as America/New_York."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_timezone(text):
            raise self.make_error("invalid_tz")
        return text
