"""Store credit: issued under the clinic's terms, what each credit has left, and its expiry."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from core import clock, ledger
from core.extensions import db
from core.hooks.decisions import Clause
from core.ledger import LedgerKind
from core.money import Money
from core.sales.models import StoreCredit
from core.sales.services.common import _fresh
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import unit_of_work


def issue_store_credit(
    clinic: Clinic,
    client_id: int,
    amount: Money,
    *,
    reason: str,
    clause: Clause,
    source: str,
    min_service_price: Money | None = None,
) -> StoreCredit:
    """Give a client store credit a policy decided, under the clinic's store credit terms."""
    terms = hooks_for(clinic).clinic_store_credit_terms(clinic=clinic, reason=reason)
    today = clock.now().astimezone(ZoneInfo(clinic.timezone)).date()
    expires_on = None
    if terms.valid_for_months:
        expires_on = today + relativedelta(months=terms.valid_for_months)
    elif terms.valid_for is not None:
        expires_on = today + terms.valid_for
    credit = StoreCredit(
        client_id=client_id,
        amount_minor=amount.minor,
        currency=amount.currency,
        reason=reason,
        clause_id=clause.id,
        clause_text=clause.text,
        terms_clause_id=terms.clause.id,
        terms_clause_text=terms.clause.text,
        expires_on=expires_on,
        services_only=terms.services_of_equal_or_greater_value_only,
        min_service_price_minor=(
            min_service_price.minor
            if terms.services_of_equal_or_greater_value_only and min_service_price
            else None
        ),
        source=source,
    )
    db.session.add(credit)
    db.session.flush()
    ledger.record(
        LedgerKind.store_credit_issued,
        amount,
        client_id=client_id,
        account=credit.account,
        reason=reason,
        clause=clause.id,
        expires_on=expires_on.isoformat() if expires_on else None,
    )
    return credit


def store_credit_balance(credit: StoreCredit) -> Money:
    return ledger.balance(credit.account, credit.currency)


def client_store_credit(client_id: int) -> list[tuple[StoreCredit, Money]]:
    """Return the client's store credits with what each has left, soonest to expire first."""
    credits = list(
        db.session.scalars(
            select(StoreCredit).where(StoreCredit.client_id == client_id).order_by(StoreCredit.id)
        )
    )
    # One query for every credit's balance, not one per credit.
    left = ledger.balances({c.account: c.currency for c in credits})
    found = [(c, left[c.account]) for c in credits]
    return sorted(found, key=lambda pair: (pair[0].expires_on or date.max, pair[0].id))


def expire_store_credit(clinic: Clinic) -> int:
    """Record the expiry of what is left on credits past their date, once each; call in scope."""
    today = clock.now().astimezone(ZoneInfo(clinic.timezone)).date()
    expired = 0
    for credit_id in db.session.scalars(
        select(StoreCredit.id).where(StoreCredit.expires_on < today)
    ).all():
        with unit_of_work():  # one credit at a time: its lock is held only while it expires
            credit = _fresh(StoreCredit, credit_id)
            left = store_credit_balance(credit)
            if left.minor > 0:
                ledger.record(
                    LedgerKind.store_credit_expired,
                    left,
                    client_id=credit.client_id,
                    account=credit.account,
                    expired_on=credit.expires_on.isoformat(),
                    clause=credit.terms_clause_id,
                )
                expired += 1
    return expired
