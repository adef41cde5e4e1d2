"""Sign-in throttling: each attempt is counted before the password is checked.

Counting first (an atomic hit on the limiter's storage) means parallel
guesses cannot slip past the limit while earlier ones are still being
verified. Limits apply per client address and per account (across clinics);
a successful sign-in clears its account's count.
"""

from __future__ import annotations

import math

from flask import current_app, request
from limits import RateLimitItem, parse_many

from core import clock
from core.errors import Problem
from core.extensions import limiter


def _limits(setting: str) -> list[RateLimitItem]:
    return parse_many(current_app.config[setting])


def _refuse(item: RateLimitItem, *identity: str) -> Problem:
    stats = limiter.limiter.get_window_stats(item, *identity)
    wait = max(1, math.ceil(stats.reset_time - clock.now().timestamp()))
    return Problem(
        429,
        "Too many sign-in attempts; wait before trying again.",
        headers={"Retry-After": str(wait)},
    )


def count_sign_in_attempt(email: str) -> None:
    """Count an attempt for this address and this account; raise 429 if either is over its limit."""
    address = request.remote_addr or "unknown"
    account = email.strip().lower()
    for item in _limits("LOGIN_RATE_LIMIT"):
        if not limiter.limiter.hit(item, "sign-in-address", address):
            raise _refuse(item, "sign-in-address", address)
    for item in _limits("LOGIN_ACCOUNT_RATE_LIMIT"):
        if not limiter.limiter.hit(item, "sign-in-account", account):
            raise _refuse(item, "sign-in-account", account)


def sign_in_succeeded(email: str) -> None:
    """Forget the account's failed attempts after it signs in."""
    account = email.strip().lower()
    for item in _limits("LOGIN_ACCOUNT_RATE_LIMIT"):
        limiter.limiter.clear(item, "sign-in-account", account)
