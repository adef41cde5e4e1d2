"""What every sales topic shares: a field's problem, a bill's ledger entry, a row locked afresh."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from core import clock, ledger
from core.errors import DomainError, Invalid, field_error
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.sales.models import Sale


def _invalid(
    field: str, reason: str, refusal: type[DomainError] = Invalid, **extra: Any
) -> DomainError:
    """A refusal (``Invalid`` unless told) naming the field at fault."""
    return refusal(reason, errors=[field_error(field, reason)], **extra)


def _on_bill(bill: Sale, kind: LedgerKind, amount: Money, **details: Any) -> Any:
    """Record a money movement of ``bill`` in the ledger, under its client and appointment."""
    return ledger.record(
        kind, amount, client_id=bill.client_id, booking_id=bill.booking_id, **details
    )


def _lock(model: type, row_id: int) -> None:
    """Take the row's lock (the database's write lock on SQLite) until the transaction ends."""
    db.session.execute(
        update(model)
        .where(model.id == row_id)
        .values(updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )


def _fresh(model: type, row_id: int) -> Any:
    """Lock a row and read it again, so what we check is what the next writer will see."""
    db.session.flush()
    _lock(model, row_id)
    return db.session.scalar(
        select(model).where(model.id == row_id).execution_options(populate_existing=True)
    )
