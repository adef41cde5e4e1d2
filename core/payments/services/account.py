"""The clinic's Stripe account: whether Stripe lets it take charges."""

from __future__ import annotations

from typing import Any

from core import clock
from core.errors import Unreadable
from core.payments.services.common import alert_clinic
from core.tenancy.models import Clinic


def _account_updated(clinic: Clinic, account: dict[str, Any], created: Any) -> str:
    """Remember whether Stripe lets the clinic take charges; an older event never wins."""
    at = clock.from_timestamp(created) if isinstance(created, int) else clock.now()
    if clinic.stripe_account_updated_at and clock.as_utc(clinic.stripe_account_updated_at) > at:
        return "unchanged (older than what is recorded)"
    enabled = account.get("charges_enabled")
    if not isinstance(enabled, bool):
        raise Unreadable("The account has no charges_enabled.", kind="bad-event")
    clinic.stripe_charges_enabled = enabled
    clinic.stripe_account_updated_at = at
    if not enabled:
        alert_clinic(
            clinic,
            f"charges-disabled:{int(at.timestamp())}",
            "Stripe has paused payments on your account",
            "Online deposits, fees and card payments are refused until Stripe re-enables "
            "charges. Check the requirements in your Stripe dashboard.",
        )
    return "charges enabled" if enabled else "charges disabled"
