"""Data recipients, and transfers of a client's data to them under the clinic's rules."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.accounts.access import Principal
from core.clients import services as clients
from core.errors import NotFound, Refused
from core.extensions import db
from core.privacy.models import DataRecipient
from core.privacy.services.processors import recipient_label
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


@transaction
def transfer(clinic: Clinic, actor: Principal, recipient_id: int, data: dict[str, Any]) -> Any:
    """Send a client's data to a recipient, if every rule allows it, and log the disclosure."""
    recipient = db.session.get(DataRecipient, recipient_id)
    if recipient is None:
        raise NotFound("No such data recipient at this clinic.")
    record = clients.client(data["client_id"])
    decisions = hooks_for(clinic).answers(
        "clinic_disclosure_allowed", clinic=clinic, disclosure=recipient
    )
    refused = next((d for d in decisions if not d.allowed), None)
    if refused is not None:
        raise Refused(
            f"{refused.clause.text} Record the basis for {recipient.name} ({recipient.country}) first.",
            kind="disclosure-refused",
            clause=refused.clause.id,
        )
    basis = next((d.basis for d in decisions if d.basis), None)
    clients.record_disclosure(
        actor,
        record,
        recipient=recipient_label(recipient),
        purpose=data["purpose"],
        description=f"{data['description']}" + (f" [basis: {basis}]" if basis else ""),
    )
    return {"allowed": True, "basis": basis, "recipient": recipient.name}


@transaction
def add_data_recipient(data: dict[str, Any]) -> DataRecipient:
    """Record a processor or recipient of client data, where it is and on what basis."""
    recipient = DataRecipient(**data)
    db.session.add(recipient)
    return recipient


def data_recipients() -> list[DataRecipient]:
    """The clinic's data recipients, first recorded first."""
    return list(db.session.scalars(select(DataRecipient).order_by(DataRecipient.id)))
