"""The platform's Stripe client: every call on a clinic's connected account, with its idempotency key."""

from __future__ import annotations

from typing import Any

import stripe
from flask import current_app

from core.errors import Problem
from core.tenancy.models import Clinic


def client() -> stripe.StripeClient:
    """Return the app's Stripe client (one per app; the SDK pools its connections)."""
    found = current_app.extensions.get("clinic_saas.stripe")
    if found is None:
        key = current_app.config.get("STRIPE_SECRET_KEY")
        if not key:
            raise Problem(
                503,
                "Online payments are not configured on this platform.",
                kind="payments-not-configured",
            )
        base = current_app.config.get("STRIPE_API_BASE")
        found = stripe.StripeClient(
            key,
            base_addresses={"api": base} if base else None,
            max_network_retries=2,
        )
        current_app.extensions["clinic_saas.stripe"] = found
    return found


def account_of(clinic: Clinic) -> str:
    """Return the clinic's connected account, or say clearly that it cannot take payments."""
    if not clinic.stripe_account_id:
        raise Problem(
            409,
            f"{clinic.name} cannot take payments online yet: its Stripe account is not connected.",
            kind="payments-not-connected",
        )
    return clinic.stripe_account_id


def charging_account(clinic: Clinic) -> str:
    """Return the account to take a new payment on, or say why the clinic cannot take one now.

    Only new charges stop while Stripe has paused the account: webhooks,
    refunds and reconciliation still reach it through :func:`account_of`.
    """
    account = account_of(clinic)
    if clinic.stripe_charges_enabled is False:
        raise Problem(
            409,
            f"{clinic.name} cannot take payments right now: Stripe has paused charges on its "
            "account.",
            kind="payments-paused",
        )
    return account


def on_account(account: str, idempotency_key: str | None = None) -> dict[str, Any]:
    """Return the request options of a call on ``account`` (an object's own account, for reads)."""
    options: dict[str, Any] = {"stripe_account": account}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def on(clinic: Clinic, idempotency_key: str | None = None) -> dict[str, Any]:
    """Return the request options of a call for ``clinic``: its account, and a key for POSTs.

    Keys are derived from business ids (``deposit:<booking>``) so a retry,
    even from another worker, is the same request to Stripe.
    """
    return on_account(account_of(clinic), idempotency_key)


def delete_customer(account: str, customer_id: str) -> bool:
    """Delete a customer and its saved cards on ``account``; return False if it was already gone.

    Stripe takes no idempotency key on DELETE: a repeat answers 404
    (``resource_missing``), which means the work is done, so a retry after a
    lost answer succeeds. Charges made to the customer stay at Stripe, so
    refunds and disputes on them still work.
    """
    try:
        client().v1.customers.delete(customer_id, options=on_account(account))
    except stripe.InvalidRequestError as error:
        if error.http_status == 404 or error.code == "resource_missing":
            return False
        raise
    return True
