"""Signing with the instance's secret key, and verifying with it or a key it replaced."""

from __future__ import annotations

from flask import current_app


def secret_keys() -> list[str]:
    """The keys to verify with, oldest first; the last, SECRET_KEY, signs.

    itsdangerous takes a list in this order, so a link signed before a rotation
    still verifies while its old key stays in SECRET_KEY_FALLBACKS.
    """
    config = current_app.config
    return [*config.get("SECRET_KEY_FALLBACKS", ()), config["SECRET_KEY"]]
