"""Sign-in throttling: each attempt is counted before the password is checked.

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

from flask import Flask, current_app, request
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
        "sign-in counters unreachable (%s): counting in this process until they answer",
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
            log.warning("sign-in counters reachable again")
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
