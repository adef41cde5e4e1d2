"""Signing webhook deliveries, and the check a receiver runs: Stripe's scheme, our header.

A delivery carries ``ClinicSaas-Signature: t=<unix seconds>,v1=<hex>``, where
``<hex>`` is the HMAC-SHA256, keyed with the endpoint's secret (the whole
``whsec_...`` string), of ``"<t>.<raw body>"``. :func:`verify_signature` uses
nothing but the standard library so a receiver can copy it as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

HEADER = "ClinicSaas-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """Return a new endpoint secret (``whsec_`` and 32 random bytes, URL-safe base64)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return the ``ClinicSaas-Signature`` header value for ``payload`` sent now (or at ``timestamp``)."""
    at = int(time.time()) if timestamp is None else timestamp
    return f"t={at},v1={_digest(payload, secret, at)}"


def verify_signature(payload: bytes, header: str, secret: str, tolerance: int = 300) -> None:
    """Check that ``payload`` (the raw request body) was signed with ``secret``; raise ValueError if not.

    ``header`` is the ``ClinicSaas-Signature`` header as received. A signature
    older (or further in the future) than ``tolerance`` seconds is refused, so a
    captured request cannot be replayed later. Any ``v1`` entry may match: while
    a secret is being replaced a header may carry one per secret.
    """
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise ValueError("the signature header has no timestamp or no v1 signature")
    signed = str(timestamp).encode("ascii") + b"." + payload
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, found) for found in signatures):
        raise ValueError("no signature matches the payload")
    if abs(time.time() - timestamp) > tolerance:
        raise ValueError("the signature's timestamp is outside the tolerance")
