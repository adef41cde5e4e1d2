"""What a payment means beyond a booking's charge, answered by the capabilities that sell things.

Payments sits below sales: it takes the money, follows Stripe and keeps the ledger, and
must not import what is sold. Sales registers here what a card payment toward a bill
means, how a membership follows Stripe's subscription events, and how money becomes
store credit; payments calls them without knowing who answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class PaymentHandlers:
    """The handlers registered so far; each is None until its capability is loaded."""

    #: A card payment toward a bill succeeded: (clinic, payment, Stripe charge id or None).
    sale_paid: Callable[[Any, Any, str | None], None] | None = None
    #: A card payment toward a bill failed or was cancelled: (payment).
    sale_failed: Callable[[Any], None] | None = None
    #: A subscription or invoice event for a membership: (clinic, event type, object) -> outcome.
    membership_event: Callable[[Any, str, dict[str, Any]], str] | None = None
    #: Money paid up front becomes store credit: (clinic, client id, amount, reason=, clause=,
    #: source=).
    issue_store_credit: Callable[..., Any] | None = None


_handlers = PaymentHandlers()


def register(**handlers: Callable[..., Any]) -> None:
    """Register handlers by name (see :class:`PaymentHandlers`); a later one replaces an earlier."""
    for name, handler in handlers.items():
        if not hasattr(_handlers, name):
            raise TypeError(f"no payment handler is called {name!r}")
        setattr(_handlers, name, handler)


def handler(name: str) -> Callable[..., Any]:
    """Return the handler registered as ``name``, or fail loudly if none is."""
    found: Callable[..., Any] | None = getattr(_handlers, name)
    if found is None:
        raise RuntimeError(f"no {name} handler is registered: is core.sales loaded?")
    return found
