"""What stands between a clinic and taking bookings, and the changes of state that depend on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, func, select

from core import clock
from core.bookings.models import OCCUPYING, Booking
from core.catalog.models import Service, ServiceLocation, ServiceProvider
from core.errors import NotFound, Refused
from core.extensions import db
from core.hooks import CORE_DEFAULTS
from core.schedules.models import Provider, WorkingHours
from core.tenancy import services as tenancy
from core.tenancy.models import Clinic, ClinicRevision, ClinicStatus, Location
from core.tenancy.scope import clinic_scope
from core.unit_of_work import transaction

#: Hooks that make a plugin a jurisdiction's: the law the clinic works under.
JURISDICTION_HOOKS = frozenset(
    {
        "clinic_privacy_rights",
        "clinic_request_deadline",
        "clinic_retention_rule",
        "clinic_breach_obligations",
    }
)


@dataclass(frozen=True)
class Missing:
    """One thing that stands between the clinic and taking bookings."""

    item: str
    detail: str


def latest_revision(clinic: Clinic) -> ClinicRevision | None:
    """Return the clinic's newest kept document, or None (a clinic from before revisions)."""
    with clinic_scope(clinic):
        return db.session.scalar(
            select(ClinicRevision).order_by(ClinicRevision.number.desc()).limit(1)
        )


def readiness(clinic: Clinic) -> list[Missing]:
    """Return what the clinic still lacks to take bookings; empty when it is ready."""
    missing = []
    if not clinic.stripe_account_id:
        missing.append(
            Missing("stripe", "Connect the clinic's Stripe account, so it can take deposits.")
        )
    elif not clinic.stripe_charges_enabled:
        missing.append(
            Missing("stripe", "Finish Stripe's onboarding: the account cannot take charges yet.")
        )
    host = tenancy.plugin_host()
    unavailable = host.unavailable(clinic)
    if unavailable is not None:
        missing.append(Missing("plugins", f"The clinic's rules cannot be applied: {unavailable}."))
    own = [name for name in clinic.enabled_plugins or () if name not in CORE_DEFAULTS]
    if not any(set(host.hooks_of(name)) & JURISDICTION_HOOKS for name in own):
        missing.append(
            Missing(
                "jurisdiction",
                "Enable the plugin of the law the clinic works under (hipaa_aligned, ccpa, "
                "nz_privacy, ...) in its document.",
            )
        )
    revision = latest_revision(clinic)
    if revision is None or revision.accepted_at is None:
        missing.append(
            Missing(
                "policy",
                "The clinic's owner must read and accept its policy as the document states it.",
            )
        )
    with clinic_scope(clinic):
        bookable = select(Service.id).where(
            Service.active.is_(True),
            Service.online_bookable.is_(True),
            exists().where(
                ServiceLocation.service_id == Service.id,
                ServiceLocation.location_id == Location.id,
                Location.active.is_(True),
            ),
        )
        if db.session.scalar(select(exists(bookable))) is not True:
            missing.append(
                Missing("services", "Offer at least one service that clients can book online.")
            )
        staffed = select(ServiceProvider.id).where(
            ServiceProvider.service_id.in_(bookable),
            ServiceProvider.provider_id == Provider.id,
            Provider.active.is_(True),
            exists().where(WorkingHours.provider_id == Provider.id),
        )
        if db.session.scalar(select(exists(staffed))) is not True:
            missing.append(
                Missing(
                    "providers",
                    "Give at least one active provider who performs a bookable service "
                    "their working hours.",
                )
            )
    return missing


def accept_policy(clinic: Clinic, user_id: int, number: int) -> ClinicRevision:
    """Record that the clinic's owner accepted revision ``number`` of its document (its policy).

    Only the newest revision can be accepted: one the owner read before the
    operator changed the document again is refused, so what is accepted is
    what the clinic runs under.
    """
    revision = latest_revision(clinic)
    if revision is None:
        raise Refused(
            "The clinic has no kept document to accept yet; the operator saves it first.",
            kind="no-document",
        )
    if revision.number != number:
        raise Refused(
            f"The clinic's document changed: revision {revision.number} is the current one. "
            "Read it, then accept that.",
            kind="revision-changed",
            current=revision.number,
        )
    if revision.accepted_at is None:
        revision.accepted_at = clock.now()
        revision.accepted_by_user_id = user_id
    return revision


def _joined_through_api(clinic: Clinic) -> bool:
    with clinic_scope(clinic):
        first = db.session.scalar(
            select(ClinicRevision.source).order_by(ClinicRevision.number).limit(1)
        )
    return first == "api"


def bookings_ahead(clinic: Clinic) -> int:
    """Return how many of the clinic's bookings are still to come (held, confirmed, checked in)."""
    with clinic_scope(clinic):
        return int(
            db.session.scalar(
                select(func.count())
                .select_from(Booking)
                .where(Booking.status.in_(OCCUPYING), Booking.starts_at > clock.now())
            )
            or 0
        )


def change_status(slug: str, status: ClinicStatus) -> Clinic:
    """Open, suspend, reactivate or retire the clinic ``slug``, where its state allows.

    A clinic onboarding opens only once nothing stands in its way. A clinic is
    retired only when no booking is still to come: the operator cancels or moves
    them first (each under the clinic's policy), so no client is left with a
    booking nobody will honour. A retired clinic stays retired; its records are
    kept for their retention periods.
    """
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        raise NotFound("No such clinic.")
    if clinic.status == status:
        return clinic
    if clinic.status == ClinicStatus.retired:
        raise Refused("A retired clinic stays retired.", kind="clinic-retired")
    if status == ClinicStatus.onboarding:
        raise Refused("A clinic cannot go back to onboarding.", kind="invalid-transition")
    if status == ClinicStatus.active and (
        clinic.status == ClinicStatus.onboarding or _joined_through_api(clinic)
    ):
        # A clinic that joined through the API opens, and reopens, only when ready.
        missing = readiness(clinic)
        if missing:
            raise Refused(
                "The clinic is not ready to open: " + "; ".join(m.detail for m in missing),
                kind="clinic-not-ready",
                missing=[m.item for m in missing],
            )
    if status == ClinicStatus.retired:
        ahead = bookings_ahead(clinic)
        if ahead:
            raise Refused(
                f"The clinic still has {ahead} booking(s) to come: cancel or move them first.",
                kind="bookings-ahead",
                bookings=ahead,
            )
    return tenancy.set_status(slug, status)


def revisions(clinic: Clinic) -> list[ClinicRevision]:
    """Return the clinic's kept documents, newest first."""
    with clinic_scope(clinic):
        return list(
            db.session.scalars(select(ClinicRevision).order_by(ClinicRevision.number.desc()))
        )


@transaction
def set_platform_fee(slug: str, basis_points: int) -> Clinic:
    """Set the platform's fee on each of the clinic's future charges (payments made keep theirs)."""
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        raise NotFound("No such clinic.")
    clinic.platform_fee_bps = basis_points
    return clinic
