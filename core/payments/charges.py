"""The one door through which money is asked of Stripe: a payment for the client to confirm, or a saved card charged.

Two kinds of charge, and only these, create a PaymentIntent:

- :func:`start_payment`: a payment the client confirms in the browser (Stripe.js)
  or on the card reader: a deposit, a prepayment, a card at checkout. Its
  webhook applies it.
- :func:`confirm_with_card`: that payment confirmed with the card the client
  entered on the booking page (a Stripe.js card token); the page runs 3-D
  Secure when the bank asks for it, and the webhook applies the outcome.
- :func:`charge_saved_card`: the client's saved card charged without them (a
  cancellation or no-show fee, a bill paid with the card on file). Every
  answer Stripe can give is read here, once, into a :class:`ChargeOutcome`,
  and the caller says what that outcome means for its fee or its bill.

Each is made under the payment's own idempotency key, which is committed
before Stripe is asked: a retry, or another worker, gets Stripe's first answer
and never a second charge.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any, cast

import stripe
from stripe.params import PaymentIntentCreateParams

from core.clients.models import Client
from core.errors import PaymentFailed, Refused, UpstreamFailed
from core.extensions import db
from core.payments import stripe_api
from core.payments.models import Payment, PaymentStatus
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, unit_of_work

log = logging.getLogger(__name__)


class ChargeOutcome(enum.Enum):
    """What came of charging a saved card."""

    #: Paid, or being paid (``processing``): the webhook confirms it.
    accepted = "accepted"
    #: The bank wants the client to approve it themselves (3-D Secure).
    needs_authentication = "needs_authentication"
    #: The card was declined.
    declined = "declined"
    #: Stripe did not answer: it may or may not have charged; the same key asks again.
    no_answer = "no_answer"
    #: Refused for a reason a retry will not change (a detached card, a changed request).
    refused = "refused"


@dataclass(frozen=True)
class SavedCardCharge:
    """Stripe's answer to a saved-card charge: the outcome, the intent (when there is one), why."""

    outcome: ChargeOutcome
    intent: Any | None = None
    reason: str | None = None
    #: What recording the answer will read from Stripe, read already (see ``stripe_api.fetched``).
    read: dict[tuple[str, str], Any] = field(default_factory=dict)


def read_ahead(intent: Any, account: str) -> dict[tuple[str, str], Any]:
    """Read from Stripe what recording ``intent`` will need (its card), before any unit opens."""
    method_id = getattr(intent, "payment_method", None)
    if not isinstance(method_id, str):
        return {}
    try:
        return {
            ("payment_methods", method_id): stripe_api.retrieve(
                "payment_methods", method_id, account
            )
        }
    except stripe.InvalidRequestError:
        return {}  # recording says what a missing card means


def platform_fee(clinic: Clinic, amount_minor: int) -> int:
    """Return the platform's fee on a charge of ``amount_minor`` at ``clinic`` (half up)."""
    return (amount_minor * (clinic.platform_fee_bps or 0) + 5000) // 10000


def _with_platform_fee(
    clinic: Clinic, params: PaymentIntentCreateParams
) -> PaymentIntentCreateParams:
    # The fee goes to the platform as Stripe's application fee, and rides in the metadata so
    # the ledger records, when the payment succeeds, the fee that was actually asked for.
    fee = platform_fee(clinic, int(params["amount"]))
    if not fee:
        return params
    metadata = dict(cast(dict[str, str], params.get("metadata") or {}))
    metadata["platform_fee"] = str(fee)
    with_fee = params.copy()
    with_fee["application_fee_amount"] = fee
    with_fee["metadata"] = metadata
    return with_fee


def start_payment(clinic: Clinic, key: str, params: PaymentIntentCreateParams) -> Any:
    """Create, under ``key``, the PaymentIntent the client confirms; the same intent on every call."""
    return stripe_api.client().v1.payment_intents.create(
        _with_platform_fee(clinic, params), stripe_api.on(clinic, key)
    )


def confirm_with_card(payment: Payment, customer_id: str, card_token: str) -> Any:
    """Confirm ``payment``'s intent with the card behind ``card_token`` (made by Stripe.js).

    The card is added to the client's customer on the clinic's account (so a
    later fee can use it), set on the intent and the intent confirmed: three
    calls, each under a key made of the payment's and the token's, so a second
    click with the same card repeats none of them. Returns the intent:
    ``succeeded`` or ``processing`` (the webhook applies it) or
    ``requires_action`` (the page runs 3-D Secure with Stripe.js). A declined
    card raises :class:`PaymentFailed` with the bank's words; nothing was charged.
    """
    no_open_unit("confirming a payment with a card")
    api = stripe_api.client()
    key = f"{payment.idempotency_key}:{card_token}"
    options = stripe_api.on_account
    intent_id = payment.stripe_payment_intent_id or ""
    try:
        card = api.v1.customers.payment_sources.create(
            customer_id, {"source": card_token}, options(payment.stripe_account, f"{key}:card")
        )
        api.v1.payment_intents.update(
            intent_id, {"payment_method": card.id}, options(payment.stripe_account, f"{key}:use")
        )
        return api.v1.payment_intents.confirm(
            intent_id, {}, options(payment.stripe_account, f"{key}:confirm")
        )
    except stripe.CardError as error:
        message = error.user_message or "Your card was declined."
        raise PaymentFailed(message, kind="card-declined") from None
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError):
        raise UpstreamFailed(
            "The card could not be checked just now; nothing was charged. Please try again.",
            kind="stripe-unavailable",
        ) from None
    except stripe.InvalidRequestError as error:
        log.info("payment %s: Stripe refused the card step (%s)", payment.idempotency_key, error)
        raise Refused(
            "This card cannot be used for this payment. Please try another card.",
            kind="card-refused",
        ) from None


def charge_saved_card(
    clinic: Clinic, payment: Payment, client: Client, metadata: dict[str, str]
) -> SavedCardCharge:
    """Charge ``payment`` to ``client``'s saved card, off-session, and record Stripe's answer on it.

    The payment (and its key) is committed first, and Stripe is asked with no
    unit of work open. The payment keeps the intent's id and the reason of a
    failure; it is marked ``requires_action`` when the client must approve it
    and ``failed`` when the card was declined or the charge refused. What that
    means for the fee or the bill is the caller's to record.
    """
    with unit_of_work():
        db.session.add(payment)  # the key exists before Stripe is asked
    no_open_unit("charging a saved card")
    try:
        intent = stripe_api.client().v1.payment_intents.create(
            _with_platform_fee(
                clinic,
                {
                    "amount": payment.amount_minor,
                    "currency": payment.currency.lower(),
                    "customer": client.stripe_customer_id or "",
                    "payment_method": client.stripe_payment_method_id or "",
                    "off_session": True,
                    "confirm": True,
                    "metadata": {"payment_key": payment.idempotency_key, **metadata},
                },
            ),
            stripe_api.on(clinic, payment.idempotency_key),
        )
    except stripe.CardError as error:
        failed = getattr(error.error, "payment_intent", None)
        payment.stripe_payment_intent_id = (
            getattr(failed, "id", None) or payment.stripe_payment_intent_id
        )
        payment.last_error = (error.user_message or str(error))[:500]
        if error.code == "authentication_required":
            payment.status = PaymentStatus.requires_action
            return SavedCardCharge(ChargeOutcome.needs_authentication, failed, payment.last_error)
        payment.status = PaymentStatus.failed
        return SavedCardCharge(ChargeOutcome.declined, failed, payment.last_error)
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
        log.warning("payment %s: Stripe did not answer (%s)", payment.idempotency_key, error)
        payment.last_error = str(error)[:500]
        return SavedCardCharge(ChargeOutcome.no_answer, None, payment.last_error)
    except stripe.StripeError as error:
        payment.status = PaymentStatus.failed
        payment.last_error = str(error)[:500]
        return SavedCardCharge(ChargeOutcome.refused, None, payment.last_error)
    # Read before the payment changes: nothing is pending while Stripe is asked again.
    read = read_ahead(intent, payment.stripe_account) if intent.status != "requires_action" else {}
    payment.stripe_payment_intent_id = intent.id
    if intent.status == "requires_action":
        # localstripe answers so where Stripe raises authentication_required.
        payment.status = PaymentStatus.requires_action
        return SavedCardCharge(ChargeOutcome.needs_authentication, intent, None)
    return SavedCardCharge(ChargeOutcome.accepted, intent, None, read)
