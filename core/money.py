"""The platform's one money type: integer minor units with an ISO 4217 currency."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, is_currency


@functools.lru_cache(maxsize=4096)
def _format(minor: int, currency: str, locale: str) -> str:
    # Babel's formatting is slow next to everything else a request does.
    amount = Decimal(minor).scaleb(-get_currency_precision(currency))
    return format_currency(amount, currency, locale=locale)


def _en_us() -> str:
    return "en_US"


_locale_now: Callable[[], str] = _en_us


def speak_as(locale_now: Callable[[], str]) -> None:
    """Set where amounts find their locale when none is given (the clinic scope sets it).

    Money sits below the clinics: the layer that knows them tells it, rather than
    money asking for it.
    """
    global _locale_now
    _locale_now = locale_now


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


@functools.lru_cache(maxsize=512)
def validate_currency(code: str) -> str:
    """Return ``code`` upper-cased if it is an ISO 4217 currency, else raise ``ValueError``."""
    upper = (code or "").upper()
    if len(upper) != 3 or not is_currency(upper):
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return upper


@dataclass(frozen=True, order=False, slots=True)
class Money:
    """An amount of money: ``minor`` units (cents) of ``currency``.

    Floats never enter: build from integers with ``Money(5000, "USD")`` or
    from the decimal text people write with ``Money.parse("50.00", "USD")``.
    """

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError("Money.minor must be an int of minor units")
        object.__setattr__(self, "currency", validate_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Return no money in ``currency``."""
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | int | Decimal, currency: str) -> Money:
        """Parse a decimal amount such as ``"50.00"`` or ``"30"`` in ``currency``.

        Refuse more decimal places than the currency has (``"1.005"`` USD),
        since rounding money silently is how ledgers drift.
        """
        currency = validate_currency(currency)
        if isinstance(text, float):
            raise TypeError("Money.parse does not accept floats")
        try:
            amount = Decimal(str(text).strip())
        except InvalidOperation:
            raise ValueError(f"{text!r} is not an amount of money") from None
        if not amount.is_finite():
            raise ValueError(f"{text!r} is not an amount of money")
        exponent = get_currency_precision(currency)
        scaled = amount.scaleb(exponent)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{text!r} has more than {exponent} decimal places for {currency}")
        return cls(int(scaled), currency)

    @property
    def exponent(self) -> int:
        """Return how many decimal places the currency has (2 for USD and NZD)."""
        return get_currency_precision(self.currency)

    def to_decimal(self) -> Decimal:
        """Return the amount as a Decimal in major units (``Money(5000, "USD")`` is 50.00)."""
        return Decimal(self.minor).scaleb(-self.exponent)

    def format(self, locale: str | None = None) -> str:
        """Return the amount as people read it: ``$40.00`` in Auckland, ``NZ$40.00`` in Boston.

        Without ``locale``, in the locale of the clinic whose scope is active (see
        :func:`speak_as`), else ``en_US``.
        """
        return _format(self.minor, self.currency, locale or _locale_now())

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __bool__(self) -> bool:
        return self.minor != 0

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.currency}"

    def to_dict(self) -> dict[str, object]:
        """Return the JSON form used by the API: minor units, currency and display text."""
        return {"amount": self.minor, "currency": self.currency, "display": self.format()}
