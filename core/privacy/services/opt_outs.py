"""Opt-outs of sale or sharing (a browser's Global Privacy Control too) and replies to review."""

from __future__ import annotations

from sqlalchemy import func, select

from core.clients.models import Client
from core.extensions import db
from core.hooks.decisions import PrivacyRight
from core.privacy.models import OptOutReview, PrivacyRequest, RequestStatus
from core.privacy.services.requests import submit
from core.privacy.services.rules import rights_offered
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


def opted_out_of_sale(client_id: int) -> bool:
    """Return whether the client has opted out of the sale or sharing of their information."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(PrivacyRequest)
            .where(
                PrivacyRequest.client_id == client_id,
                PrivacyRequest.kind == PrivacyRight.opt_out_sale_sharing.value,
                PrivacyRequest.status == RequestStatus.completed,
            )
        )
        or 0
    ) > 0


@transaction
def carry_gpc(clinic: Clinic, client: Client) -> PrivacyRequest | None:
    """Apply a browser's Global Privacy Control signal to the client it now belongs to.

    For a clinic whose rules offer the opt-out of sale or sharing, ``Sec-GPC: 1``
    is that opt-out, first for the browser and, once the person is known, for
    them (11 CCR 7025). Recorded as a completed request, like any opt-out.
    """
    if PrivacyRight.opt_out_sale_sharing not in rights_offered(clinic):
        return None
    if client.id is None:
        db.session.flush()
    if opted_out_of_sale(client.id):
        return None
    return submit(
        clinic,
        {
            "kind": PrivacyRight.opt_out_sale_sharing.value,
            "client_id": client.id,
            "requester_name": client.display_name,
            "channel": "gpc",
            "details": "Global Privacy Control signal (Sec-GPC: 1) from the client's browser.",
        },
    )


def opt_out_reviews(open_only: bool = True) -> list[OptOutReview]:
    """Return free-text replies waiting for staff, the earliest honour-by date first."""
    statement = select(OptOutReview).order_by(OptOutReview.honour_by, OptOutReview.id)
    if open_only:
        statement = statement.where(OptOutReview.decided_at.is_(None))
    return list(db.session.scalars(statement))
