"""Password hashing with Argon2id, and the rules a staff password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 256

_hashers: dict[tuple[int, int, int], PasswordHasher] = {}
_dummies: dict[tuple[int, int, int], str] = {}


def _hasher() -> PasswordHasher:
    """Return the Argon2id hasher with the app's cost (RFC 9106 defaults unless configured)."""
    from flask import current_app, has_app_context

    params = (3, 65536, 4)
    if has_app_context() and current_app.config.get("ARGON2_COST"):
        params = tuple(current_app.config["ARGON2_COST"])  # type: ignore[assignment]
    if params not in _hashers:
        time_cost, memory_cost, parallelism = params
        _hashers[params] = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # A hash of a random password, verified against when the account does
        # not exist, so a wrong email takes as long as a wrong password.
        _dummies[params] = _hashers[params].hash("not a real password, only for timing")
    return _hashers[params]


def _dummy_hash() -> str:
    hasher = _hasher()
    return next(v for k, v in _dummies.items() if _hashers[k] is hasher)


def password_problem(password: str) -> str | None:
    """Return why ``password`` is not acceptable, or None if it is."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    if len(set(password)) < 5:
        return "Use a less repetitive password."
    return None


def hash_password(password: str) -> str:
    """Return the Argon2id hash to store for ``password``."""
    return _hasher().hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return whether ``password`` matches ``stored_hash``; with no hash, spend the same time."""
    try:
        return _hasher().verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return whether ``stored_hash`` was made with weaker parameters than today's."""
    return _hasher().check_needs_rehash(stored_hash)
