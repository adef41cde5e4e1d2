"""The clinic's Stripe account: whether Stripe lets it take charges."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from stripe.params import AccountCreateParams

from core import clock
from core.errors import NotFound, Refused, Unreadable
from core.extensions import db
from core.payments import stripe_api
from core.payments.services.common import alert_clinic
from core.secret_keys import secret_keys
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, transaction


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


#: How long the signed addresses Stripe sends the owner back to stay good: they are bearer
#: credentials (the refresh address makes a new onboarding link), so not long.
RETURN_MAX_AGE = 3600


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_keys(), salt="stripe-onboarding")


def onboarding_link(clinic: Clinic) -> tuple[str, datetime]:
    """Return a link to Stripe's hosted onboarding of the clinic's account, and when it lapses.

    The clinic's connected account is made on the first call (one per clinic:
    the same idempotency key every time) and kept; each call makes a new link,
    as links are short-lived and single-use. Stripe sends the owner back to the
    return address when done, or to the refresh address when the link lapsed,
    which makes a new one. Both carry a signed, expiring state naming the clinic.
    """
    no_open_unit("creating a Stripe account link")
    if not current_app.config.get("STRIPE_SECRET_KEY"):
        # The platform's own setting, not an outage: nothing to retry until the operator sets it.
        raise Refused(
            "Online payments are not configured on this platform yet: ask its operator.",
            kind="payments-not-configured",
        )
    stripe = stripe_api.client().v1
    if clinic.stripe_account_id is None:
        params: AccountCreateParams = {
            "type": "standard",
            "country": clinic.country,
            "metadata": {"clinic": clinic.slug},
        }
        if clinic.contact_email:
            params["email"] = clinic.contact_email
        account = stripe.accounts.create(
            params=params,
            options={"idempotency_key": f"clinic-account:{clinic.id}:{clinic.stripe_generation}"},
        )
        _remember_account(clinic.id, account.id)
        account_id = account.id
    else:
        account_id = clinic.stripe_account_id
    state = _signer().dumps({"clinic": clinic.id, "account": account_id})
    base = current_app.config["PUBLIC_URL"].rstrip("/") + f"/api/v1/clinics/{clinic.slug}/stripe"
    link = stripe.account_links.create(
        params={
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": f"{base}/onboarding-refresh?state={state}",
            "return_url": f"{base}/onboarding-return?state={state}",
        },
        options={"idempotency_key": f"account-link:{account_id}:{secrets.token_hex(8)}"},
    )
    return link.url, clock.from_timestamp(link.expires_at)


@transaction
def _remember_account(clinic_id: int, account_id: str) -> None:
    clinic = db.session.get_one(Clinic, clinic_id)
    clinic.stripe_account_id = account_id
    clinic.stripe_charges_enabled = False


def clinic_of_state(clinic: Clinic, state: str) -> str:
    """Return the account a signed onboarding state names, refusing one not of ``clinic``'s."""
    try:
        found = _signer().loads(state, max_age=RETURN_MAX_AGE)
    except (BadSignature, SignatureExpired):
        raise NotFound("This onboarding address is not valid any more.") from None
    if found.get("clinic") != clinic.id or found.get("account") != clinic.stripe_account_id:
        raise NotFound("This onboarding address is not this clinic's.")
    return str(found["account"])


def refresh_from_stripe(clinic: Clinic) -> bool:
    """Read the clinic's account from Stripe and record whether it can take charges."""
    no_open_unit("reading the clinic's Stripe account")
    account = stripe_api.client().v1.accounts.retrieve(str(clinic.stripe_account_id))
    _record_account(clinic.id, account.to_dict())
    return bool(account.charges_enabled)


@transaction
def _record_account(clinic_id: int, account: dict[str, Any]) -> None:
    clinic = db.session.get_one(Clinic, clinic_id)
    # Read now, so as new as anything a webhook said: the account's creation time is not when.
    _account_updated(clinic, account, None)


@transaction
def disconnect(clinic: Clinic) -> None:
    """Forget the clinic's Stripe account: new payments wait for a new one.

    Payments already made keep the account they were made on, so their
    refunds, disputes and reconciliation still reach it.
    """
    found = db.session.get_one(Clinic, clinic.id)
    if found.stripe_account_id is not None:
        found.former_stripe_accounts = [
            *(found.former_stripe_accounts or []),
            found.stripe_account_id,
        ]
    found.stripe_account_id = None
    found.stripe_charges_enabled = None
    found.stripe_generation += 1
