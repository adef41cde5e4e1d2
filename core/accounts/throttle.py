"""Throttling: sign-in attempts, counted before the password is checked, and public requests.

Counting first (an atomic hit on the limiter's storage) means parallel
guesses cannot slip past the limit while earlier ones are still being
verified. Limits apply per client address and per account (across clinics);
a successful sign-in clears its account's count.

When the shared store (Redis) cannot be reached, sign-in goes on with counters
kept in the process, and says so in the log: every clinic locked out because a
cache is down would be worse than a limit counted per worker for a while.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import RateLimiter
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout

from core import clock
from core.errors import Problem
from core.extensions import limiter

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
#: What the shared store raises when it cannot be reached.
STORE_DOWN = (RedisConnectionError, RedisTimeout, StorageError, ConnectionError, TimeoutError)
#: While counting in-process, how often (seconds) to try the shared store again.
RETRY_SHARED_AFTER = 30
_FALLBACK = "clinic_saas.throttle_fallback"
_FALLBACK_SINCE = "clinic_saas.throttle_fallback_since"


def _limits(setting: str) -> list[RateLimitItem]:
    return parse_many(current_app.config[setting])


def _counters() -> RateLimiter:
    """Return the shared counters, or this process's own while the shared store is down."""
    return current_app.extensions.get(_FALLBACK) or limiter.limiter


def _fallback(error: Exception) -> RateLimiter:
    """Switch this process to counters of its own, and say so, when the shared store fails.

    Refusing every sign-in while Redis is away would lock every clinic out; counting per
    process keeps the limit (per worker) until the store answers again.
    """
    log.warning(
        "rate-limit counters unreachable (%s): counting in this process until they answer",
        error.__class__.__name__,
    )
    own = type(limiter.limiter)(MemoryStorage())
    current_app.extensions[_FALLBACK] = own
    current_app.extensions[_FALLBACK_SINCE] = clock.now().timestamp()
    return own


def _hit(item: RateLimitItem, *identity: str) -> tuple[bool, RateLimiter]:
    counters = _counters()
    since = current_app.extensions.get(_FALLBACK_SINCE)
    if since is not None and clock.now().timestamp() - since > RETRY_SHARED_AFTER:
        counters = limiter.limiter  # try the shared store again now and then
    try:
        allowed = counters.hit(item, *identity)
    except STORE_DOWN as error:
        counters = _fallback(error)
        allowed = counters.hit(item, *identity)
    else:
        if counters is limiter.limiter and since is not None:
            current_app.extensions.pop(_FALLBACK, None)
            current_app.extensions.pop(_FALLBACK_SINCE, None)
            log.warning("rate-limit counters reachable again")
    return allowed, counters


def _refuse(counters: RateLimiter, item: RateLimitItem, *identity: str) -> Problem:
    stats = counters.get_window_stats(item, *identity)
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
        allowed, counters = _hit(item, "sign-in-address", address)
        if not allowed:
            raise _refuse(counters, item, "sign-in-address", address)
    for item in _limits("LOGIN_ACCOUNT_RATE_LIMIT"):
        allowed, counters = _hit(item, "sign-in-account", account)
        if not allowed:
            raise _refuse(counters, item, "sign-in-account", account)


_NOT_COUNTED = "_clinic_saas_not_counted"


def not_counted(view: F) -> F:
    """Leave ``view`` out of the public limits: a provider's signed callback (an SMS reply
    relayed by Twilio) comes from the provider's few addresses, for every client at once."""
    setattr(view, _NOT_COUNTED, True)
    return view


def is_counted(view: Any) -> bool:
    """Whether requests to ``view`` count against the public limits."""
    return not getattr(view, _NOT_COUNTED, False)


#: Where the current request's tightest public limit is kept for its response headers.
_PUBLIC_LIMIT = "clinic_saas_rate_limit"


def count_public_request(reading: bool) -> None:
    """Count a request to a clinic's public routes from this address; raise 429 past a limit.

    Anyone may call them (times, booking, a client's own link, privacy requests), so
    each address gets PUBLIC_READ_RATE_LIMIT reads and PUBLIC_WRITE_RATE_LIMIT writes,
    counted on the shared store: every server enforces the same count. The tightest
    window is told in ``RateLimit-*`` headers (see :func:`rate_limit_headers`).
    """
    kind = "public-read" if reading else "public-write"
    address = request.remote_addr or "unknown"
    setting = "PUBLIC_READ_RATE_LIMIT" if reading else "PUBLIC_WRITE_RATE_LIMIT"
    tightest: tuple[int, int, int] | None = None
    for item in _limits(setting):
        allowed, counters = _hit(item, kind, address)
        stats = counters.get_window_stats(item, kind, address)
        reset = max(1, math.ceil(stats.reset_time - clock.now().timestamp()))
        if not allowed:
            raise Problem(
                429,
                "Too many requests from this address; wait before trying again.",
                kind="rate-limited",
                headers={
                    "Retry-After": str(reset),
                    "RateLimit-Limit": str(item.amount),
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(reset),
                },
            )
        if tightest is None or stats.remaining < tightest[1]:
            tightest = (item.amount, stats.remaining, reset)
    g.setdefault(_PUBLIC_LIMIT, tightest)


def rate_limit_headers(response: Response) -> Response:
    """Tell the caller of a public route where it stands against its tightest limit."""
    found = g.get(_PUBLIC_LIMIT)
    if found is not None:
        limit, remaining, reset = found
        response.headers.setdefault("RateLimit-Limit", str(limit))
        response.headers.setdefault("RateLimit-Remaining", str(remaining))
        response.headers.setdefault("RateLimit-Reset", str(reset))
    return response


def sign_in_succeeded(email: str) -> None:
    """Forget the account's failed attempts after it signs in."""
    account = email.strip().lower()
    for item in _limits("LOGIN_ACCOUNT_RATE_LIMIT"):
        try:
            _counters().clear(item, "sign-in-account", account)
        except STORE_DOWN as error:
            _fallback(error).clear(item, "sign-in-account", account)


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
