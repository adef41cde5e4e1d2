"""Marshmallow fields for plugin settings: the shapes tenants/ files write numbers in."""

from __future__ import annotations

import functools
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import Schema, ValidationError, fields

from core.money import Money


class Amount(fields.Field):
    """A non-negative amount of money written as decimal text (``"50.00"``).

    The currency is the clinic's; :func:`money` turns the stored text into
    :class:`Money` when a hook needs it. Floats are refused: TOML ``50.0``
    would invite rounding errors, so settings write ``"50.00"``.
    """

    default_error_messages = {
        "invalid": 'Write amounts as text with at most two decimals, for example "50.00".',
        "negative": "Amounts cannot be negative.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, (bool, float)):
            raise self.make_error("invalid")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.make_error("invalid") from None
        if not amount.is_finite() or amount.as_tuple().exponent < -2:
            raise self.make_error("invalid")
        if amount < 0:
            raise self.make_error("negative")
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
    return schema().load(json.loads(stored))


def settings_of(clinic: Any, plugin_name: str, schema: type[Schema]) -> dict[str, Any]:
    """Return ``plugin_name``'s settings for ``clinic`` with the schema's defaults filled in.

    The way a plugin reads its numbers: ``settings_of(clinic, NAME, MySettings)["window_hours"]``.
    """
    return _load_settings(schema, json.dumps(clinic.settings_for(plugin_name), sort_keys=True))
