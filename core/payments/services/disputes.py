"""Card disputes: the money withdrawn and how each ended, recorded once, and the evidence answering them.

When Stripe tells of a dispute on a booking's deposit, prepayment or fee, the
evidence is assembled at once from what the platform stored
(``dispute_evidence``) and kept on the clinic's :class:`Dispute` row. The clinic
chooses what happens next (``Clinic.dispute_evidence``): ``review`` holds it
for a manager to read, edit and submit; ``submit`` queues it for the jobs,
which send it to Stripe. Either way it is sent once: the row is claimed and
committed before Stripe is asked, the request carries the key
``dispute-evidence:<dispute>``, and a submitted row refuses another.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError

from core import clock, events, ledger
from core.errors import NotFound, Refused, Unreadable, UpstreamFailed
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.payments import stripe_api
from core.payments.models import UNSENT, Dispute, EvidenceStatus, Payment
from core.payments.services import dispute_evidence
from core.payments.services.common import alert_clinic
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, unit_of_work

log = logging.getLogger(__name__)

#: How a dispute's final status is recorded.
DISPUTE_CLOSED = {"won": LedgerKind.dispute_won, "lost": LedgerKind.dispute_lost}

#: Stripe's dispute statuses by how far along they are: an event never moves a dispute back.
PROGRESS = {
    "warning_needs_response": 0,
    "needs_response": 0,
    "warning_under_review": 1,
    "under_review": 1,
    "won": 2,
    "lost": 2,
    "warning_closed": 2,
    "prevented": 2,
}
#: Statuses in which Stripe still takes evidence.
ANSWERABLE = ("warning_needs_response", "needs_response")

#: A claim older than this whose answer never came is sent again by the jobs (same key).
CLAIM_PATIENCE = timedelta(minutes=2)


def _sync_dispute(clinic: Clinic, dispute: dict[str, Any]) -> str:
    """Record a card dispute: the money withdrawn when opened, and how it ended, each once.

    Stripe may tell of the end before the start: whichever arrives first
    records the opening too, and the database refuses a second of either.
    The dispute as Stripe has it now (read before the transaction) wins over
    the event's copy, which may be older than another already applied.
    """
    if isinstance(dispute.get("id"), str):
        fresh = stripe_api.read_ahead("disputes", dispute["id"])
        if fresh is not None:
            dispute = fresh.to_dict()
    amount, currency = dispute.get("amount"), dispute.get("currency")
    if not isinstance(amount, int) or not isinstance(currency, str) or not dispute.get("id"):
        raise Unreadable("The dispute has no id, amount or currency.", kind="bad-event")
    intent = dispute.get("payment_intent")
    payment = (
        db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent))
        if isinstance(intent, str)
        else None
    )
    money = Money(amount, currency.upper())
    found = {
        "booking_id": payment.booking_id if payment else None,
        "payment_id": payment.id if payment else None,
        "reference": dispute["id"],
        "charge": dispute.get("charge"),
        "reason": dispute.get("reason"),
    }
    kept = _keep(clinic, dispute, payment, money)
    done = []
    if str(dispute.get("status", "")).startswith("warning_"):
        # An inquiry: the bank asks, but withdraws nothing, so the ledger has nothing to
        # record until it becomes a dispute. The clinic is told it may answer.
        alert_clinic(
            clinic,
            f"dispute-inquiry:{dispute['id']}",
            f"A client's bank asks about a card payment of {money.format()}",
            f"The bank has withdrawn nothing yet (reason: {dispute.get('reason')}). "
            + _next_step(kept),
        )
        return "inquiry recorded"
    if _once(LedgerKind.dispute_opened, money, found):
        done.append("opened")
        events.publish("dispute.opened", payment, dispute=dispute)
        alert_clinic(
            clinic,
            f"dispute:{dispute['id']}",
            f"A card payment of {money.format()} is disputed",
            f"The client's bank withdrew {money.format()} (reason: {dispute.get('reason')}). "
            + _next_step(kept),
        )
    closed = DISPUTE_CLOSED.get(dispute.get("status", ""))
    if closed is not None and _once(closed, money, found):
        done.append(dispute["status"])
    return "dispute " + ", ".join(done) if done else "unchanged (dispute recorded)"


def _next_step(kept: Dispute) -> str:
    due = f"before {_when(kept.due_by)}" if kept.due_by else "before its deadline"
    if kept.evidence_status == EvidenceStatus.held:
        return (
            "The platform has put together the evidence from the booking (the policy the client "
            f"accepted, the booking's history, the receipt). Read it and submit it {due} "
            f"(dispute {kept.id} in the API): it is not sent until a manager submits it."
        )
    if kept.evidence_status == EvidenceStatus.queued:
        return (
            "The platform is submitting the evidence from the booking (the policy the client "
            f"accepted, the booking's history, the receipt) to Stripe {due}, as the clinic's "
            "setting asks."
        )
    return f"Send your evidence from the Stripe dashboard {due}."


def _when(moment: datetime) -> str:
    return clock.as_utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def _due_by(dispute: dict[str, Any]) -> datetime | None:
    details = dispute.get("evidence_details")
    due = details.get("due_by") if isinstance(details, dict) else None
    return datetime.fromtimestamp(due, UTC) if isinstance(due, int) else None


def _keep(
    clinic: Clinic, dispute: dict[str, Any], payment: Payment | None, money: Money
) -> Dispute:
    """Write or move forward the clinic's row for this dispute; assemble its evidence when new."""
    status = str(dispute.get("status") or "needs_response")
    # Locked: a submission claiming the row at the same moment waits, rather than being
    # overwritten by this event's view of the evidence.
    row = db.session.scalar(
        select(Dispute).where(Dispute.stripe_dispute_id == dispute["id"]).with_for_update()
    )
    if row is None:
        row = _first_seen(clinic, dispute, payment, money, status)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:
            # Another delivery about the same dispute recorded it meanwhile: move that one on.
            row = db.session.scalars(
                select(Dispute).where(Dispute.stripe_dispute_id == dispute["id"])
            ).one()
        else:
            return row
    if PROGRESS.get(status, 0) >= PROGRESS.get(row.status, 0):
        row.status = status
    row.due_by = _due_by(dispute) or row.due_by
    if PROGRESS.get(row.status, 0) >= 1 and row.evidence_status == EvidenceStatus.submitting:
        # Stripe has the evidence although its answer to us was lost.
        row.evidence_status = EvidenceStatus.submitted
        row.submitted_at = row.submitted_at or clock.now()
    elif PROGRESS.get(row.status, 0) >= 1 and row.evidence_status in UNSENT:
        row.evidence_status = EvidenceStatus.lapsed
    if PROGRESS.get(row.status, 0) == 2:
        row.outcome = row.status
    return row


def _first_seen(
    clinic: Clinic, dispute: dict[str, Any], payment: Payment | None, money: Money, status: str
) -> Dispute:
    evidence = dispute_evidence.assemble(clinic, payment)
    if evidence is None:
        evidence_status = EvidenceStatus.no_evidence
    elif status not in ANSWERABLE:
        evidence_status = EvidenceStatus.lapsed  # closed, or answered at Stripe, before we knew
    elif clinic.dispute_evidence == "submit":
        evidence_status = EvidenceStatus.queued
    else:
        evidence_status = EvidenceStatus.held
    return Dispute(
        stripe_dispute_id=dispute["id"],
        stripe_account=(payment.stripe_account if payment else clinic.stripe_account_id) or "",
        stripe_charge_id=dispute.get("charge") if isinstance(dispute.get("charge"), str) else None,
        payment_id=payment.id if payment else None,
        booking_id=payment.booking_id if payment else None,
        amount_minor=money.minor,
        currency=money.currency,
        reason=str(dispute.get("reason") or "")[:64] or None,
        status=status,
        due_by=_due_by(dispute),
        evidence=evidence,
        evidence_status=evidence_status,
        outcome=status if PROGRESS.get(status, 0) == 2 else None,
    )


def _once(kind: LedgerKind, amount: Money, found: dict[str, Any]) -> bool:
    try:
        with db.session.begin_nested():
            ledger.record(
                kind,
                amount,
                booking_id=found["booking_id"],
                payment_id=found["payment_id"],
                reference=found["reference"],
                charge=found["charge"],
                reason=found["reason"],
            )
    except IntegrityError:
        return False
    return True


# --- reading and submitting ------------------------------------------------------------------------


def disputes(
    *, limit: int = 50, after: tuple[datetime, int] | None = None
) -> tuple[list[Dispute], int]:
    """Return the current clinic's disputes, newest first, after the position ``after`` (the
    ``created_at`` and id of the last one shown), ``limit`` at most; and how many there are."""
    query = select(Dispute).order_by(Dispute.created_at.desc(), Dispute.id.desc()).limit(limit)
    if after is not None:
        query = query.where(tuple_(Dispute.created_at, Dispute.id) < tuple_(*after))
    return list(db.session.scalars(query)), db.session.scalar(select(func.count(Dispute.id))) or 0


def dispute(dispute_id: int) -> Dispute:
    """Return dispute ``dispute_id`` of the current clinic, or raise 404."""
    found = db.session.get(Dispute, dispute_id)
    if found is None:
        raise NotFound("No such dispute at this clinic.")
    return found


def submit_evidence(
    clinic: Clinic, dispute_id: int, *, user_id: int | None, edits: dict[str, str] | None = None
) -> Dispute:
    """Submit a dispute's evidence to Stripe, with a manager's ``edits`` to its text fields.

    ``user_id`` is the manager submitting; None is the platform acting on the
    clinic's ``submit`` setting. Three short units: the row claimed (refused
    once submitted, closed or past its due date), Stripe asked with nothing
    open, its answer recorded. Stripe refusing the evidence is recorded and
    raised as :class:`UpstreamFailed`; no answer at all leaves the claim for the
    jobs to send again under the same key.
    """
    with unit_of_work():
        row = _claim(dispute_id, user_id, edits or {})
        if row is None:
            return dispute(dispute_id)
        account, stripe_id, evidence = (
            row.stripe_account,
            row.stripe_dispute_id,
            dict(row.evidence or {}),
        )
    no_open_unit("Submitting dispute evidence")
    try:
        answer = stripe_api.submit_dispute_evidence(account, stripe_id, evidence)
    except stripe.InvalidRequestError as error:
        why = str(error.user_message or error)[:500]
        with unit_of_work():
            row = dispute(dispute_id)
            row.evidence_status = EvidenceStatus.refused
            row.last_error = why
            alert_clinic(
                clinic,
                f"dispute-evidence-refused:{stripe_id}",
                f"Stripe refused the evidence for a disputed payment of {row.amount.format()}",
                f"Stripe would not take the evidence ({why}). Answer from the Stripe dashboard.",
            )
        raise UpstreamFailed(
            f"Stripe refused the evidence: {why}", kind="dispute-evidence-refused"
        ) from None
    with unit_of_work():
        row = dispute(dispute_id)
        row.evidence_status = EvidenceStatus.submitted
        row.submitted_at = clock.now()
        row.last_error = None
        status = getattr(answer, "status", None)
        if isinstance(status, str) and PROGRESS.get(status, 0) >= PROGRESS.get(row.status, 0):
            row.status = status
    return row


def _claim(dispute_id: int, user_id: int | None, edits: dict[str, str]) -> Dispute | None:
    """Lock the row and mark it being submitted; None when the platform has nothing to send."""
    row = db.session.scalars(
        select(Dispute).where(Dispute.id == dispute_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound("No such dispute at this clinic.")
    if row.evidence_status == EvidenceStatus.submitted:
        raise Refused(
            f"The evidence was submitted to Stripe at {_when(row.submitted_at or row.updated_at)}; "
            "Stripe takes it once.",
            kind="dispute-evidence-submitted",
        )
    if row.evidence_status in (EvidenceStatus.lapsed, EvidenceStatus.refused) or (
        row.status not in ANSWERABLE
    ):
        raise Refused(
            "This dispute no longer takes evidence from the platform "
            f"(dispute {row.status}, evidence {row.evidence_status.value}).",
            kind="dispute-closed",
        )
    if row.due_by is not None and clock.as_utc(row.due_by) <= clock.now():
        if user_id is None:
            row.evidence_status = EvidenceStatus.lapsed
            return None
        raise Refused(
            f"The evidence was due by {_when(row.due_by)}; Stripe no longer takes it.",
            kind="dispute-past-due",
        )
    if row.evidence_status == EvidenceStatus.submitting:
        if edits:
            raise Refused(
                "The evidence is being submitted as it stood; it can no longer be changed.",
                kind="dispute-evidence-submitting",
            )
        return row  # the same request again, under the same key
    evidence = dispute_evidence.edited(row.evidence or {}, edits)
    if not evidence:
        raise Refused(
            "There is no evidence to submit: write it in the dispute's text fields.",
            kind="dispute-evidence-empty",
        )
    row.evidence = evidence
    row.evidence_status = EvidenceStatus.submitting
    row.submitted_by_user_id = user_id
    return row


def submit_queued_evidence(clinic: Clinic) -> int:
    """Submit the evidence the clinic sends without review, and claims whose answer was lost.

    For the jobs, in the clinic's scope. Returns how many were submitted.
    """
    with unit_of_work():
        waiting = list(
            db.session.scalars(
                select(Dispute.id).where(
                    or_(
                        Dispute.evidence_status == EvidenceStatus.queued,
                        and_(
                            Dispute.evidence_status == EvidenceStatus.submitting,
                            Dispute.updated_at < clock.now() - CLAIM_PATIENCE,
                        ),
                    )
                )
            )
        )
    submitted = 0
    for dispute_id in waiting:
        try:
            row = submit_evidence(clinic, dispute_id, user_id=None)
        except (stripe.StripeError, UpstreamFailed, Refused):
            # Refusals are recorded on the row; no answer is retried next run under the same key.
            log.exception("dispute evidence %s not submitted", dispute_id)
            continue
        submitted += row.evidence_status == EvidenceStatus.submitted
    return submitted
