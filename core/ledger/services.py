"""Writing the clinic's ledger, and the balances it derives for what the clinic holds for clients.

The only module that builds a :class:`LedgerEntry`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from core.extensions import db
from core.ledger.models import LedgerEntry, LedgerKind
from core.money import Money

#: How each kind of entry moves the balance of the account it names.
SIGN = {
    LedgerKind.store_credit_issued: 1,
    LedgerKind.store_credit_used: -1,
    LedgerKind.store_credit_expired: -1,
    LedgerKind.gift_certificate_sold: 1,
    LedgerKind.gift_certificate_redeemed: -1,
    LedgerKind.package_sold: 1,
    LedgerKind.package_session_used: -1,
    LedgerKind.package_closed: -1,
    LedgerKind.card_payment: 1,  # a sale's account: what has been paid toward it
    LedgerKind.external_tender: 1,
    LedgerKind.deposit_applied: 1,
    LedgerKind.deposit_unapplied: -1,
}


def record(
    kind: LedgerKind,
    amount: Money,
    *,
    booking_id: int | None = None,
    client_id: int | None = None,
    payment_id: int | None = None,
    account: str | None = None,
    reference: str | None = None,
    **details: Any,
) -> LedgerEntry:
    """Add one money movement to the clinic's ledger (in the caller's transaction)."""
    entry = LedgerEntry(
        kind=kind,
        amount_minor=amount.minor,
        currency=amount.currency,
        booking_id=booking_id,
        client_id=client_id,
        payment_id=payment_id,
        account=account,
        reference=reference,
        details=details,
    )
    db.session.add(entry)
    return entry


def balance(account: str, currency: str) -> Money:
    """Return what ``account`` holds, summed from its entries (flushes the session first)."""
    db.session.flush()
    rows = db.session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.account == account)
        .group_by(LedgerEntry.kind)
    )
    total = sum(SIGN.get(LedgerKind(kind), 0) * amount for kind, amount in rows)
    return Money(total, currency)


def balances(accounts: Mapping[str, str]) -> dict[str, Money]:
    """Return what each account holds, given as account to currency, summed in one query.

    The same sums as :func:`balance`, account by account, for a list of them (a
    client's store credits); flushes the session first unless there are none.
    """
    if not accounts:
        return {}
    db.session.flush()
    rows = db.session.execute(
        select(LedgerEntry.account, LedgerEntry.kind, func.sum(LedgerEntry.amount_minor))
        .where(LedgerEntry.account.in_(list(accounts)))
        .group_by(LedgerEntry.account, LedgerEntry.kind)
    )
    totals = dict.fromkeys(accounts, 0)
    for account, kind, amount in rows:
        if account is not None:  # always: only the accounts asked for are summed
            totals[account] += SIGN.get(LedgerKind(kind), 0) * amount
    return {account: Money(total, accounts[account]) for account, total in totals.items()}


def count(account: str, kind: LedgerKind) -> int:
    """Return how many entries of ``kind`` the account has (package sessions used)."""
    db.session.flush()
    found = db.session.scalar(
        select(func.count())
        .select_from(LedgerEntry)
        .where(LedgerEntry.account == account, LedgerEntry.kind == kind)
    )
    return int(found or 0)
