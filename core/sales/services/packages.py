"""Packages of sessions: finding one, the sessions it has left, and closing it."""

from __future__ import annotations

from core import ledger
from core.catalog.models import Service
from core.errors import NotFound, Refused
from core.extensions import db
from core.hooks.decisions import RefundOutcome
from core.ledger import LedgerKind
from core.sales.models import ClientPackage, PackageStatus, StoreCredit
from core.sales.services.common import _fresh
from core.sales.services.store_credit import issue_store_credit
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for
from core.unit_of_work import transaction


def client_package(package_id: int) -> ClientPackage:
    """Return the client package with this id, or answer 404."""
    found = db.session.get(ClientPackage, package_id)
    if found is None:
        raise NotFound("No such package.")
    return found


def package_sessions_left(package: ClientPackage) -> int:
    return package.sessions - ledger.count(package.account, LedgerKind.package_session_used)


@transaction
def close_package(clinic: Clinic, package: ClientPackage) -> StoreCredit | None:
    """Close a package; its unused part becomes what the clinic's package terms say (store credit)."""
    package = _fresh(ClientPackage, package.id)
    if package.status != PackageStatus.active:
        raise Refused(f"This package is {package.status}.", kind="package-not-active")
    terms = hooks_for(clinic).clinic_package_terms(clinic=clinic, package=package)
    left = ledger.balance(package.account, package.currency)
    package.status = PackageStatus.closed
    if left.minor <= 0 or terms.unused_sessions != RefundOutcome.store_credit:
        return None
    ledger.record(
        LedgerKind.package_closed,
        left,
        client_id=package.client_id,
        account=package.account,
        clause=terms.clause.id,
        sessions_left=package_sessions_left(package),
    )
    service = db.session.get_one(Service, package.service_id)
    return issue_store_credit(
        clinic,
        package.client_id,
        left,
        reason="package_closed",
        clause=terms.clause,
        source=package.account,
        min_service_price=service.price,
    )
