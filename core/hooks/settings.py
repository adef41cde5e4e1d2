"""Marshmallow fields for plugin settings: the shapes tenants/ files write numbers in.

Clinic policies share a few shapes, written here once and parameterised by
each clinic's numbers: an amount (:class:`Amount`), a notice window
(:func:`within_notice`), a fee table by service category (:class:`FeeRow`,
:func:`fee_for`) and a validity period (:func:`valid_until`).
"""

from __future__ import annotations

import copy
import functools
import json
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from dateutil.relativedelta import relativedelta
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.clock import as_utc
from core.money import Money


class Amount(fields.Field[str]):
    """A non-negative amount of money written as decimal text (``"50.00"``).

    The currency is the clinic's; :func:`money` turns the stored text into
    :class:`Money` when a hook needs it. Floats are refused: TOML ``50.0``
    would invite rounding errors, so settings write ``"50.00"``.
    """

    default_error_messages = {
        "invalid": 'Write amounts as text with at most two decimals, for example "50.00".',
        "negative": "Amounts cannot be negative.",
        "too_large": "Amounts above 9999999.99 are not accepted.",
    }
    #: The most any one amount may be: far above any clinic's price, and it fits the columns.
    LIMIT = Decimal("9999999.99")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, (bool, float)):
            raise self.make_error("invalid")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.make_error("invalid") from None
        exponent = amount.as_tuple().exponent
        if not amount.is_finite() or not isinstance(exponent, int) or exponent < -2:
            raise self.make_error("invalid")
        if amount < 0:
            raise self.make_error("negative")
        if amount > self.LIMIT:
            raise self.make_error("too_large")
        return f"{amount:.2f}"

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


def money(text: str | None, currency: str) -> Money:
    """Return the settings amount ``text`` as :class:`Money` in ``currency`` (zero if unset)."""
    if text is None:
        return Money.zero(currency)
    try:
        return Money.parse(text, currency)
    except ValueError as error:
        raise ValidationError(str(error)) from error


@functools.lru_cache(maxsize=4096)
def _load_settings(schema: type[Schema], stored: str) -> dict[str, Any]:
    # Settings were validated when the tenants/ file was loaded; this only
    # fills defaults, once per distinct settings text.
    loaded: dict[str, Any] = schema().load(json.loads(stored))
    return loaded


def settings_of(clinic: Any, plugin_name: str, schema: type[Schema]) -> dict[str, Any]:
    """Return ``plugin_name``'s settings for ``clinic`` with the schema's defaults filled in.

    The way a plugin reads its numbers: ``settings_of(clinic, NAME, MySettings)["window_hours"]``.
    """
    # A copy: the loaded settings are cached, and one plugin's change must not reach another clinic.
    return copy.deepcopy(
        _load_settings(schema, json.dumps(clinic.settings_for(plugin_name), sort_keys=True))
    )


def within_notice(starts_at: datetime, at: datetime, hours: int) -> bool:
    """Return whether ``at`` falls inside the ``hours`` before ``starts_at`` (absolute, DST-safe)."""
    return as_utc(at) > as_utc(starts_at) - timedelta(hours=hours)


def valid_until(issued_on: date, months: int) -> date:
    """Return the last day of a validity period of ``months`` from ``issued_on`` (calendar months)."""
    until: date = issued_on + relativedelta(months=months)
    return until


class FeeRow(Schema):
    """One row of a fee table: a service category, an optional duration range, and the fee.

    ``min_minutes`` and ``max_minutes`` are inclusive; a row without them
    covers every duration of the category. The first matching row wins.
    """

    category = fields.String(required=True, validate=validate.Length(min=1, max=63))
    min_minutes = fields.Integer(load_default=None, validate=validate.Range(min=0))
    max_minutes = fields.Integer(load_default=None, validate=validate.Range(min=0))
    fee = Amount(required=True)

    @validates_schema
    def _range(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("min_minutes"), data.get("max_minutes")
        if low is not None and high is not None and high < low:
            raise ValidationError("must not be below min_minutes", "max_minutes")


def fee_for(rows: list[dict[str, Any]], service: Any, currency: str) -> Money | None:
    """Return the fee a table charges for ``service`` (its category and duration), or None."""
    minutes = service.duration_minutes
    for row in rows:
        if row["category"] != service.category:
            continue
        if row.get("min_minutes") is not None and minutes < row["min_minutes"]:
            continue
        if row.get("max_minutes") is not None and minutes > row["max_minutes"]:
            continue
        return money(row["fee"], currency)
    return None
