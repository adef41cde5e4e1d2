"""Checks on what plugins answer: the right decision type, a clause, money in the clinic's currency.

The decision types are frozen dataclasses, which do not check their own
fields; a fee given as a float or a decision without a clause would travel
to the client or into the ledger. The host checks each answer here before
any caller sees it, and a wrong one is the plugin's failure.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from core.hooks import specs
from core.hooks.decisions import Clause
from core.money import Money


def problem(hook_name: str, answer: Any, clinic: Any = None) -> str | None:
    """Return what is wrong with ``answer`` to ``hook_name``, or None when it keeps the contract.

    ``clinic``: the clinic asked about; money must be in its currency.
    """
    expected = specs.ANSWER_TYPES.get(hook_name)
    if expected is None:
        return None
    items: Sequence[Any] = (answer,)
    if hook_name in specs.MANY_ANSWERS and isinstance(answer, list | tuple):
        items = answer
    currency = getattr(clinic, "currency", None)
    for item in items:
        if item is None and hook_name in specs.MANY_ANSWERS:
            continue
        if not isinstance(item, expected):
            many = " (or a list of them)" if hook_name in specs.MANY_ANSWERS else ""
            return f"answered {_kind(item)}, not a {expected.__name__}{many}"
        reason = _fields_problem(item, currency)
        if reason is not None:
            return f"{expected.__name__}: {reason}"
    return None


def settings_schema_problem(schema: Any) -> str | None:
    """Return what is wrong with a ``clinic_settings_schema`` answer, or None."""
    from marshmallow import Schema

    if schema is None or isinstance(schema, Schema):
        return None
    if isinstance(schema, type) and issubclass(schema, Schema):
        return f"answered the class {schema.__name__}; return an instance, {schema.__name__}()"
    return f"answered {_kind(schema)}, not a marshmallow Schema"


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields_problem(decision: Any, currency: str | None) -> str | None:
    if not dataclasses.is_dataclass(decision):
        return None
    hints = _hints(typing.cast(type, type(decision)))
    for f in dataclasses.fields(decision):
        value = getattr(decision, f.name)
        reason = _value_problem(value, hints[f.name], currency)
        if reason is not None:
            return f"{f.name} {reason}"
    if hasattr(decision, "clause") and not (decision.clause.id and decision.clause.text):
        return "clause needs an id and the words it applies"
    return None


def _value_problem(value: Any, hint: Any, currency: str | None) -> str | None:
    """Return why ``value`` does not fit the type ``hint``, or None."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            return None if type(None) in options else "is missing"
        reasons = [_value_problem(value, option, currency) for option in options]
        if any(reason is None for reason in reasons):
            return None
        return next(r for r in reasons if r is not None)
    if origin is tuple:
        if not isinstance(value, tuple):
            return f"is {_kind(value)}, not a tuple"
        (inner, *_rest) = typing.get_args(hint) or (Any,)
        for item in value:
            reason = _value_problem(item, inner, currency)
            if reason is not None:
                return f"item {reason}"
        return None
    if hint is Any or hint is type(None):
        return None if hint is Any or value is None else f"is {_kind(value)}"
    if not isinstance(hint, type):
        return None  # a shape the checks do not cover
    if value is None:
        return "is missing"
    if issubclass(hint, enum.Enum):
        if isinstance(value, hint):
            return None
        return f"is {value!r}; use {hint.__name__} (one of {', '.join(m.value for m in hint)})"
    if hint is Money:
        if not isinstance(value, Money):
            return f"is {_kind(value)}; amounts are Money (Money.parse('50.00', currency))"
        if currency is not None and value.currency != currency:
            return f"is in {value.currency}; the clinic charges in {currency}"
        if value.minor < 0:
            return f"is {value.format()}; amounts owed or returned are never negative"
        return None
    if hint is Clause and not isinstance(value, Clause):
        return f"is {_kind(value)}, not a Clause"
    if hint is int and isinstance(value, bool):
        return "is a bool, not an int"
    if hint is datetime and isinstance(value, datetime) and value.tzinfo is None:
        return "has no time zone; give an aware datetime"
    if hint is date and isinstance(value, datetime):
        return "is a datetime; give a date (value.date() in the clinic's zone)"
    if hint in (int, str, bool, date, datetime, timedelta, float) and not isinstance(value, hint):
        return f"is {_kind(value)}, not {hint.__name__}"
    if not isinstance(value, hint):
        return f"is {_kind(value)}, not {hint.__name__}"
    return None
