"""Clinic profiles and the plugins each clinic runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from core.errors import Invalid, NotFound, Refused
from core.extensions import db
from core.hooks.host import CORE_DEFAULTS, ClinicHooks, PluginHost
from core.tenancy.models import Clinic, ClinicStatus, Location
from core.tenancy.scope import clinic_scope
from core.unit_of_work import transaction

PLUGIN_HOST_KEY = "clinic_saas.plugins"


def plugin_host() -> PluginHost:
    """Return the app's plugin host."""
    return current_app.extensions[PLUGIN_HOST_KEY]


def hooks_for(clinic: Clinic) -> ClinicHooks:
    """Return the hook caller that reaches only ``clinic``'s plugins and the core defaults."""
    return plugin_host().for_clinic(clinic)


def clinic_by_slug(slug: str) -> Clinic | None:
    """Return the clinic with ``slug``, or None."""
    return db.session.scalar(select(Clinic).where(Clinic.slug == slug))


def all_clinics() -> list[Clinic]:
    """Return every clinic on the platform, by slug (for the operator)."""
    return list(db.session.scalars(select(Clinic).order_by(Clinic.slug)))


def clinics_page(
    *, status: ClinicStatus | None, q: str | None, limit: int, after: str | None = None
) -> tuple[list[Clinic], int]:
    """Return clinics by slug after ``after``, ``limit`` at most, filtered by status and by
    part of slug or name; and how many match in all."""
    statement = select(Clinic)
    if status is not None:
        statement = statement.where(Clinic.status == status)
    if q:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        statement = statement.where(
            func.lower(Clinic.slug).like(pattern, escape="\\")
            | func.lower(Clinic.name).like(pattern, escape="\\")
        )
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    if after is not None:
        statement = statement.where(Clinic.slug > after)
    page = db.session.scalars(statement.order_by(Clinic.slug).limit(limit))
    return list(page), total


def each_clinic() -> Iterator[Clinic]:
    """Yield every clinic, each inside its own scope (for jobs, which have no request).

    Whatever its state: a clinic not open to clients (onboarding, suspended,
    retired) still has duties that jobs carry out: its staff's invitations,
    refunds of deposits it owes, messages about cancellations, holds that
    lapse, privacy deadlines and the end of retention holds.
    Commit inside the loop body: what is left uncommitted when the next
    clinic begins is rolled back with the scope.
    """
    clinic_ids = list(db.session.scalars(select(Clinic.id).order_by(Clinic.id)))
    db.session.remove()
    for clinic_id in clinic_ids:
        clinic = db.session.get(Clinic, clinic_id)
        if clinic is None:
            continue  # removed since it was listed
        with clinic_scope(clinic):
            yield clinic


def locations() -> list[Location]:
    """Return the current clinic's locations, active first."""
    return list(db.session.scalars(select(Location).order_by(Location.active.desc(), Location.id)))


@transaction
def update_profile(clinic: Clinic, changes: dict[str, Any]) -> Clinic:
    """Apply validated profile ``changes`` to ``clinic``.

    Fields the clinic's tenants/ file also declares are overwritten when the
    operator reloads that file; the file stays the source of truth.
    """
    for key, value in changes.items():
        setattr(clinic, key, value)
    db.session.flush()
    return clinic


@transaction
def connect_stripe(slug: str, account: str) -> Clinic:
    """Connect the clinic ``slug`` to its own Stripe account (``acct_...``): it can then take payments."""
    if not account.startswith("acct_"):
        raise Invalid("A Stripe connected account id starts with acct_.", kind="invalid-account")
    clinic = clinic_by_slug(slug)
    if clinic is None:
        raise NotFound(f"No clinic {slug!r}.")
    taken = db.session.scalar(
        select(Clinic).where(Clinic.stripe_account_id == account, Clinic.slug != slug)
    )
    if taken is not None:
        raise Refused(f"{account} is already the account of {taken.slug}.", kind="taken")
    clinic.stripe_account_id = account
    return clinic


@transaction
def set_status(slug: str, status: ClinicStatus) -> Clinic:
    """Suspend or reactivate the clinic ``slug`` (operator only)."""
    clinic = clinic_by_slug(slug)
    if clinic is None:
        raise NotFound("No such clinic.")
    clinic.status = status
    return clinic


def plugin_health() -> dict[str, Any]:
    """Return the plugins refused at start and the clinics whose rules they make unavailable."""
    host = plugin_host()
    unavailable = {}
    for slug, enabled in db.session.execute(select(Clinic.slug, Clinic.enabled_plugins)):
        reason = host.unavailable(_Enabled(enabled))
        if reason is not None:
            unavailable[slug] = reason
    return {"refused": dict(sorted(host.refused.items())), "clinics_unavailable": unavailable}


class _Enabled:
    """Just what the host reads of a clinic to say whether its plugins can answer."""

    def __init__(self, enabled: list[str] | None) -> None:
        self.enabled_plugins = enabled or []


def plugins_of(clinic: Clinic) -> list[dict[str, Any]]:
    """Describe the plugins ``clinic``'s hook calls reach, its own first, then the core defaults."""
    host = plugin_host()
    names = list(clinic.enabled_plugins or []) + sorted(CORE_DEFAULTS)
    return [
        {
            "name": name,
            "core_default": name in CORE_DEFAULTS,
            "installed": host.has_plugin(name),
            "refused": host.refused.get(name),
            "hooks": host.hooks_of(name),
            "settings": clinic.settings_for(name),
        }
        for name in names
    ]
