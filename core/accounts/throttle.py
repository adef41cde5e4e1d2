"""Sign-in throttling: each attempt is counted before the password is checked.

Counting first (an atomic hit on the limiter's storage) means parallel
guesses cannot slip past the limit while earlier ones are still being
verified. Limits apply per client address and per account (across clinics);
a successful sign-in clears its account's count.
"""

from __future__ import annotations

import math
import os

from flask import Flask, current_app, request
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


def serving_workers() -> int | None:
    """Return how many worker processes the gunicorn serving this process runs, or None.

    gunicorn's arbiter marks its processes with ``SERVER_SOFTWARE``; its own parser reads
    the same command line, environment and config file it did, so the count is the real one.
    """
    if not os.environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/"):
        return None
    from gunicorn.app.wsgiapp import WSGIApplication

    return int(WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg.workers)


def check_counters_are_shared(app: Flask) -> None:
    """Refuse to serve from several workers that would each keep their own counts.

    With per-process counters every worker allows the full number of wrong passwords, so
    the limit multiplies by the worker count. Set RATELIMIT_STORAGE_URI (or REDIS_URL), or
    RATELIMIT_ALLOW_PER_PROCESS=1 to accept that knowingly.
    """
    if not app.config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
        return
    if app.config["RATELIMIT_ALLOW_PER_PROCESS"]:
        return
    workers = serving_workers()
    if workers is not None and workers > 1:
        raise RuntimeError(
            f"{workers} workers would each keep their own sign-in counts (RATELIMIT_STORAGE_URI "
            "is memory://): set RATELIMIT_STORAGE_URI or REDIS_URL to a shared Redis, run one "
            "worker, or set RATELIMIT_ALLOW_PER_PROCESS=1 to accept per-worker limits"
        )
