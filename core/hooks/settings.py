"""Marshmallow fields for plugin settings: the shapes tenants/ files write numbers in."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields

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
