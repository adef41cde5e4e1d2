"""Refunds, returns and exchanges: the clinic's policy asked, a manager's approval, carried out."""

from __future__ import annotations

import functools
import logging
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import clock, events, ledger
from core.catalog.models import Service
from core.errors import Invalid, NotFound, Refused, UpstreamFailed
from core.extensions import db
from core.hooks.decisions import Clause, RefundDecision, RefundOutcome
from core.hooks.views import RefundItem
from core.ledger import LedgerKind
from core.messaging import outbox
from core.money import Money
from core.payments import services as payments
from core.payments import stripe_api
from core.sales.models import (
    ClientPackage,
    LineKind,
    PackageStatus,
    Product,
    RefundRequest,
    RefundStatus,
    Sale,
    SaleLine,
    SaleStatus,
    TenderStatus,
)
from core.sales.services.common import _fresh, _invalid, _on_bill
from core.sales.services.packages import package_sessions_left
from core.sales.services.store_credit import issue_store_credit
from core.schedules.models import Provider
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import after_commit, transaction

log = logging.getLogger(__name__)


def refund_request(request_id: int) -> RefundRequest:
    """Return the refund request with this id, or answer 404."""
    found = db.session.get(RefundRequest, request_id)
    if found is None:
        raise NotFound("No such refund request.")
    return found


#: Requests that hold part of a line: returned, or on their way to being returned.
HOLDING = (RefundStatus.awaiting_approval, RefundStatus.approved, RefundStatus.done)


def _returned_so_far(line: SaleLine, but: int | None = None) -> int:
    """Return what requests on ``line`` have returned or will return (except request ``but``).

    Called under the bill's lock, so two requests on one line see each other.
    """
    return sum(
        r.amount_minor
        for r in db.session.scalars(
            select(RefundRequest).where(
                RefundRequest.sale_line_id == line.id,
                RefundRequest.status.in_(HOLDING),
                RefundRequest.outcome != RefundOutcome.exchange.value,
                RefundRequest.id != (but or 0),
            )
        )
    )


def _item(line: SaleLine, bill: Sale, data: dict[str, Any]) -> RefundItem:
    quantity = data.get("quantity", 1)
    if quantity > line.quantity:
        raise _invalid("quantity", f"Only {line.quantity} were sold on this line.")
    share = line.amount_minor * quantity // line.quantity
    open_amount = max(0, min(share, line.amount_minor - _returned_so_far(line)))
    product = db.session.get(Product, line.product_id) if line.product_id else None
    package = (
        db.session.get(ClientPackage, line.client_package_id) if line.client_package_id else None
    )
    if package is not None:
        # Only the unused part of a package can come back, and only while it is open.
        unused = ledger.balance(package.account, package.currency).minor
        open_amount = min(open_amount, unused) if package.status == PackageStatus.active else 0
    service = db.session.get(Service, line.service_id) if line.service_id else None
    assessor = data.get("assessed_by_provider_id")
    if assessor is not None and db.session.get(Provider, assessor) is None:
        raise _invalid("assessed_by_provider_id", "No such provider at this clinic.", NotFound)
    return RefundItem(
        kind=line.kind.value,
        description=line.description,
        amount_paid=Money(open_amount, line.currency),
        sold_at=clock.as_utc(bill.paid_at or bill.created_at),
        quantity=quantity,
        condition=data.get("condition"),
        has_receipt=data.get("has_receipt", True),
        prescription=bool(product and product.prescription),
        promotional=bool(package and package.promotional),
        service_category=service.category if service else None,
        assessed_by_provider=assessor is not None,
        note=data.get("note"),
    )


@transaction
def request_refund(clinic: Clinic, line_id: int, data: dict[str, Any], key: str) -> RefundRequest:
    """Ask the clinic's policy about a refund, return or exchange, and act on its decision.

    A decision that needs a manager waits for one; a repeated request (same
    key) returns the first; nothing is returned beyond what was paid.
    """
    line = db.session.get(SaleLine, line_id)
    if line is None:
        raise NotFound("No such sale line.")
    bill = _fresh(Sale, line.sale_id)  # one request on a bill at a time
    existing = db.session.scalar(select(RefundRequest).where(RefundRequest.idempotency_key == key))
    if existing is not None:
        return existing
    if bill.status != SaleStatus.paid:
        raise Refused("Only a paid bill can be refunded.", kind="sale-not-paid")
    item = _item(line, bill, data)
    if item.amount_paid.minor <= 0:
        raise Refused("This line has been refunded or returned already.", kind="refunded")
    decision: RefundDecision = hooks_for(clinic).clinic_refund_decision(
        clinic=clinic, item=item, reason=data["reason"], at=clock.now()
    )
    request = RefundRequest(
        sale_line_id=line.id,
        client_id=bill.client_id,
        reason=data["reason"],
        condition=item.condition,
        quantity=item.quantity,
        note=data.get("note"),
        outcome=decision.outcome.value,
        amount_minor=min(decision.amount, item.amount_paid).minor,
        currency=line.currency,
        clause_id=decision.clause.id,
        clause_text=decision.clause.text,
        refusal_reason=decision.refusal_reason,
        status=RefundStatus.awaiting_approval,
        decision={
            "outcome": decision.outcome.value,
            "amount": decision.amount.to_dict(),
            "requires_manager_approval": decision.requires_manager_approval,
            "clause": {"id": decision.clause.id, "text": decision.clause.text},
        },
        idempotency_key=key,
    )
    try:
        with db.session.begin_nested():
            db.session.add(request)
    except IntegrityError:
        raise Invalid(
            "This Idempotency-Key was used for a different request.",
            kind="idempotency-key-reused",
        ) from None
    if decision.outcome == RefundOutcome.store_credit and bill.client_id is None:
        raise Refused(
            "Store credit belongs to a client, and this bill names none: add the client first.",
            kind="no-client",
        )
    if decision.outcome == RefundOutcome.refused:
        request.status = RefundStatus.refused
        request.decided_at = clock.now()
        _tell_client(bill, request)
    elif decision.requires_manager_approval:
        _tell_client(bill, request, waiting=True)
    else:
        request.status = RefundStatus.approved
        after_commit(functools.partial(_carry_out_approved, clinic, request.id))
    return request


#: How a refund request's outcome is put to the client.
OUTCOME_TOLD = {
    "refund": "{amount} will be refunded to the card you paid with.",
    "store_credit": "{amount} is given as store credit.",
    "exchange": "The product will be exchanged for the same product.",
    "refused": "We cannot refund or exchange this.",
}


def _tell_client(bill: Sale, request: RefundRequest, *, waiting: bool = False) -> None:
    """Email the client the decision on their request, with the clause it comes from."""
    if bill.client_id is None:
        return
    outcome = "refused" if request.status == RefundStatus.refused else request.outcome
    told = OUTCOME_TOLD[outcome].format(amount=request.amount.format())
    body = (
        f"Your request about {db.session.get_one(SaleLine, request.sale_line_id).description}: "
        + ("it is with the clinic's management for approval. " if waiting else "")
        + (f"If approved, {told[0].lower()}{told[1:]}" if waiting else told)
        + f' Why: "{request.clause_text}"'
    )
    outbox.queue(
        "sale_notice",
        client_id=bill.client_id,
        dedupe_key=f"refund-request:{request.id}:{'asked' if waiting else outcome}",
        subject="Your refund request",
        body=body,
        clause=request.clause_id,
    )


@transaction
def decide_refund(
    clinic: Clinic, request: RefundRequest, approve: bool, actor_user_id: int
) -> RefundRequest:
    """A manager approves or refuses a request waiting for them; approving twice refunds once."""
    request = _fresh_request(request.id)
    if not approve and request.status != RefundStatus.awaiting_approval:
        raise Refused(
            f"This request is {request.status.value} and can no longer be refused.",
            kind="already-decided",
        )
    if request.status == RefundStatus.awaiting_approval:
        request.decided_by_user_id = actor_user_id
        if not approve:
            request.status = RefundStatus.refused
            request.decided_at = clock.now()
            request.refusal_reason = "Not approved by management."
            _tell_client(
                db.session.get_one(
                    Sale, db.session.get_one(SaleLine, request.sale_line_id).sale_id
                ),
                request,
            )
            return request
        request.status = RefundStatus.approved
    # An approved request whose refund failed before is carried out again, under the same key.
    after_commit(functools.partial(_carry_out_approved, clinic, request.id))
    return request


@transaction
def _carry_out_approved(clinic: Clinic, request_id: int) -> RefundRequest:
    """Carry out an approved request once: run after its approval commits, then done under its lock.

    The refund's Stripe key is the request's, so a retry after a failure (or
    a lost answer) gets Stripe's first refund rather than a second one.
    """
    line = db.session.get_one(SaleLine, db.session.get_one(RefundRequest, request_id).sale_line_id)
    bill = _fresh(Sale, line.sale_id)  # the bill first, as a new request takes it
    request = _fresh_request(request_id)
    if request.status != RefundStatus.approved:
        return request  # another approval carried it out meanwhile
    try:
        _carry_out(clinic, request, line, bill)
    except stripe.StripeError as error:
        log.warning("refund request %s: Stripe refused or did not answer (%s)", request_id, error)
        raise UpstreamFailed(
            "Stripe did not make the refund; the request stays approved. Approve it again to retry.",
            kind="stripe-error",
        ) from None
    _tell_client(bill, request)
    return request


def _fresh_request(request_id: int) -> RefundRequest:
    # A write takes the lock before the read, on SQLite too (where FOR UPDATE
    # is ignored): two managers approving at once decide one after the other.
    db.session.flush()
    db.session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == request_id)
        .values(status=RefundRequest.status)
        .execution_options(synchronize_session=False)
    )
    return db.session.scalar(
        select(RefundRequest)
        .where(RefundRequest.id == request_id)
        .execution_options(populate_existing=True)
    )


def _carry_out(clinic: Clinic, request: RefundRequest, line: SaleLine, bill: Sale) -> None:
    left = line.amount_minor - _returned_so_far(line, but=request.id)
    if left <= 0 and request.outcome != RefundOutcome.exchange.value:
        request.status = RefundStatus.refused
        request.decided_at = clock.now()
        request.refusal_reason = "This line has been refunded or returned already."
        request.amount_minor = 0
        return
    amount = Money(min(request.amount_minor, left), line.currency)
    request.amount_minor = amount.minor
    package = None
    if line.kind == LineKind.package and request.outcome != RefundOutcome.exchange.value:
        package = _fresh(ClientPackage, line.client_package_id)
        unused = ledger.balance(package.account, package.currency)
        if package.status != PackageStatus.active or unused.minor <= 0:
            request.status = RefundStatus.refused
            request.decided_at = clock.now()
            request.refusal_reason = "Nothing of this package is left unused."
            request.amount_minor = 0
            return
        amount = min(amount, unused)
        request.amount_minor = amount.minor
        package.status = PackageStatus.closed
        _on_bill(
            bill,
            LedgerKind.package_closed,
            amount,
            account=package.account,
            clause=request.clause_id,
            sessions_left=package_sessions_left(package),
            sale=bill.id,
        )
    if request.outcome == RefundOutcome.refund.value and amount.minor > 0:
        request.stripe_refund_id = _refund_card(clinic, bill, request, amount)
    elif request.outcome == RefundOutcome.store_credit.value and amount.minor > 0:
        credit = issue_store_credit(
            clinic,
            bill.client_id,
            amount,
            reason="package_closed" if package is not None else f"{line.kind.value}_return",
            clause=Clause(request.clause_id, request.clause_text),
            source=package.account if package is not None else f"sale_line:{line.id}",
            min_service_price=(
                db.session.get(Service, package.service_id).price if package is not None else None
            ),
        )
        request.store_credit_id = credit.id
    elif request.outcome == RefundOutcome.exchange.value:
        _on_bill(
            bill,
            LedgerKind.product_exchanged,
            Money.zero(line.currency),
            product=line.product_id,
            quantity=request.quantity,
            clause=request.clause_id,
            sale=bill.id,
        )
    if line.kind == LineKind.product and request.outcome != RefundOutcome.exchange.value:
        _on_bill(
            bill,
            LedgerKind.product_returned,
            amount,
            product=line.product_id,
            quantity=request.quantity,
            outcome=request.outcome,
            clause=request.clause_id,
            sale=bill.id,
        )
    request.status = RefundStatus.done
    request.decided_at = clock.now()


def _refund_card(clinic: Clinic, bill: Sale, request: RefundRequest, amount: Money) -> str | None:
    """Refund to the cards that paid the bill, never more than they paid less what went back."""
    left = amount.minor
    refunded_ids = []
    for tender in bill.tenders:
        if left <= 0:
            break
        if tender.payment_id is None or tender.status != TenderStatus.applied:
            continue
        payment = payments.locked(tender.payment_id)
        room = payment.amount_minor - payments.refunded_so_far(payment)
        part = min(room, left)
        if part <= 0:
            continue
        refund = stripe_api.client().v1.refunds.create(
            {"payment_intent": payment.stripe_payment_intent_id, "amount": part},
            stripe_api.on(clinic, f"refund-request:{request.id}:{payment.id}"),
        )
        _on_bill(
            bill,
            LedgerKind.refund,
            Money(part, payment.currency),
            payment_id=payment.id,
            reference=refund.id,
            purpose="sale",
            clause=request.clause_id,
        )
        events.publish("payment.refunded", payment, refunded=part, refund_id=refund.id)
        refunded_ids.append(refund.id)
        left -= part
    if left > 0:
        # Paid by gift certificate, financing or cash: a person returns the rest.
        payments.alert_clinic(
            clinic,
            f"refund-by-hand:{request.id}",
            f"Refund {Money(left, amount.currency).format()} by hand (bill {bill.id})",
            "The approved refund is more than the cards on this bill paid; "
            "return the rest the way it was paid.",
        )
    return ",".join(refunded_ids)[:64] or None
