"""The platform's Stripe client: every call on a clinic's connected account, with its idempotency key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import stripe
from flask import current_app, g, has_request_context

from core import request_ids
from core.errors import Refused, Unavailable
from core.tenancy.models import Clinic

#: Told how each request to Stripe ended (see :func:`on_request`).
_request_listeners: list[Callable[[str], None]] = []


def on_request(listener: Callable[[str], None]) -> None:
    """Tell ``listener`` how each request sent to Stripe ends: ``"ok"`` or ``"error"``.

    ``"error"``: Stripe gave no answer, refused the platform's key (401), was overloaded
    (429) or failed (5xx). A declined card or a missing object is Stripe working: ``"ok"``.
    Each retry is a request of its own. The platform's metrics listen; this module knows
    nothing of them.
    """
    if listener not in _request_listeners:
        _request_listeners.append(listener)


def _reported(send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    outcome = "error"
    try:
        answer = send(*args, **kwargs)
        if answer[1] < 500 and answer[1] not in (401, 429):
            outcome = "ok"
        return answer
    finally:
        for listener in _request_listeners:
            listener(outcome)


class BudgetedRequests(stripe.RequestsClient):
    """HTTP to Stripe within the current web request's total budget for Stripe.

    Each call gets the connect and read timeouts it was built with, cut down to what is
    left of ``STRIPE_WEB_BUDGET`` since the request's first Stripe call; once the budget is
    spent no call or retry starts, so a page never waits on Stripe longer than that,
    however many calls it makes. Outside a request (jobs) only the timeouts apply.
    """

    def __init__(self, timeout: tuple[float, float]) -> None:
        self._local = threading.local()
        super().__init__(timeout=timeout)

    # The SDK reads ``self._timeout`` for each call; the budget narrows it per thread.
    @property  # type: ignore[override]
    def _timeout(self) -> tuple[float, float]:
        return getattr(self._local, "timeout", None) or self._default_timeout

    @_timeout.setter
    def _timeout(self, value: tuple[float, float]) -> None:
        self._default_timeout = value

    def _left(self) -> float | None:
        if not has_request_context():
            return None
        budget = float(current_app.config["STRIPE_WEB_BUDGET"])
        started = g.setdefault("stripe_budget_started", time.monotonic())
        return budget - (time.monotonic() - started)

    def _within_budget(self) -> None:
        left = self._left()
        self._local.timeout = None
        if left is None:
            return
        if left <= 0.05:
            raise stripe.APIConnectionError(
                "Stripe did not answer within this request's time budget.", should_retry=False
            )
        connect, read = self._default_timeout
        self._local.timeout = (min(connect, left), min(read, left))

    def _send(self, send: Callable[..., Any], args: tuple[Any, ...], options: Any) -> Any:
        # Every call, plain or streamed: within the budget, with our Request-Id, counted.
        method, url, headers, *post_data = args
        self._within_budget()
        return _reported(send, method, url, _with_request_id(headers), *post_data, **options)

    def request(self, *args: Any, **options: Any) -> Any:
        return self._send(super().request, args, options)

    def request_stream(self, *args: Any, **options: Any) -> Any:
        return self._send(super().request_stream, args, options)

    def _should_retry(self, *args: Any, **kwargs: Any) -> bool:
        left = self._left()
        if left is not None and left < 1.0:
            return False  # no time left for a back-off and another attempt
        return bool(super()._should_retry(*args, **kwargs))


def _with_request_id(headers: Mapping[str, str] | None) -> dict[str, str]:
    # Our id beside Stripe's own, so a call in our logs and in Stripe's can be matched.
    return {**(headers or {}), **request_ids.outbound_headers()}


def client() -> stripe.StripeClient:
    """Return the Stripe client for this context: a person waiting on a page, or a job.

    Each has a budget (see README, Timeouts): a call on a page waits at most
    ``STRIPE_WEB_TIMEOUT`` seconds for an answer and retries ``STRIPE_WEB_RETRIES`` times,
    and all of a request's calls together stop after ``STRIPE_WEB_BUDGET`` seconds, so a
    Stripe that accepts the connection and never answers is given up on in seconds, not
    minutes; jobs, which nobody watches, wait longer and retry more. Every POST
    carries an idempotency key, so a retry after a lost answer is the same request.
    """
    interactive = has_request_context()
    name = "clinic_saas.stripe.web" if interactive else "clinic_saas.stripe.jobs"
    found = current_app.extensions.get(name)
    if found is None:
        key = current_app.config.get("STRIPE_SECRET_KEY")
        if not key:
            raise Unavailable(
                "Online payments are not configured on this platform.",
                kind="payments-not-configured",
            )
        config = current_app.config
        prefix = "STRIPE_WEB_" if interactive else "STRIPE_JOB_"
        base = config.get("STRIPE_API_BASE")
        found = stripe.StripeClient(
            key,
            base_addresses={"api": base} if base else None,
            max_network_retries=config[prefix + "RETRIES"],
            http_client=BudgetedRequests(
                (config["STRIPE_CONNECT_TIMEOUT"], config[prefix + "TIMEOUT"])
            ),
        )
        current_app.extensions[name] = found
    return found


def account_of(clinic: Clinic) -> str:
    """Return the clinic's connected account, or say clearly that it cannot take payments."""
    if not clinic.stripe_account_id:
        raise Refused(
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
        raise Refused(
            f"{clinic.name} cannot take payments right now: Stripe has paused charges on its "
            "account.",
            kind="payments-paused",
        )
    return account


def on_account(account: str, idempotency_key: str | None = None) -> stripe.RequestOptions:
    """Return the request options of a call on ``account`` (an object's own account, for reads)."""
    options: stripe.RequestOptions = {"stripe_account": account}
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def on(clinic: Clinic, idempotency_key: str | None = None) -> stripe.RequestOptions:
    """Return the request options of a call for ``clinic``: its account, and a key for POSTs.

    Keys are derived from business ids (``deposit:<booking>``) so a retry,
    even from another worker, is the same request to Stripe.
    """
    return on_account(account_of(clinic), idempotency_key)


#: What was read from Stripe before a transaction opened, by (resource, id): see ``fetched``.
_FETCHED: ContextVar[dict[tuple[str, str], Any] | None] = ContextVar("stripe_fetched", default=None)


@contextmanager
def fetched(objects: dict[tuple[str, str], Any]) -> Iterator[None]:
    """Let :func:`retrieve` answer from ``objects``, read before the write transaction began.

    A webhook reads what it needs from Stripe first, then records its effect in a short
    transaction: no lock is held while the network is waited on.
    """
    token = _FETCHED.set(objects)
    try:
        yield
    finally:
        _FETCHED.reset(token)


def retrieve(resource: str, object_id: str, account: str) -> Any:
    """Read one Stripe object (``payment_intents``, ``charges`` ...) on ``account``.

    Answers from what :func:`fetched` holds when it has the object, else asks Stripe.
    """
    held = _FETCHED.get()
    if held is not None and (resource, object_id) in held:
        return held[(resource, object_id)]
    return getattr(client().v1, resource).retrieve(object_id, options=on_account(account))


def read_ahead(resource: str, object_id: str) -> Any:
    """Return the object :func:`fetched` holds, or None: never asks Stripe (a transaction is open)."""
    held = _FETCHED.get()
    return None if held is None else held.get((resource, object_id))


def submit_dispute_evidence(account: str, dispute_id: str, evidence: dict[str, str]) -> Any:
    """Send ``evidence`` for a dispute on ``account`` and submit it; return Stripe's dispute.

    Stripe takes one submission per dispute; its key (``dispute-evidence:<dispute>``)
    makes a retry after a lost answer the same request, answered the same way.
    """
    params: Any = {"evidence": evidence, "submit": True}  # the text fields, as Stripe names them
    return client().v1.disputes.update(
        dispute_id, params, options=on_account(account, f"dispute-evidence:{dispute_id}")
    )


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
