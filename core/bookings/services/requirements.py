"""What a booking needs: the client's age and history here, and the clinic's requirements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from core.bookings.models import Booking, BookingStatus
from core.catalog.models import Service
from core.clients import services as clients
from core.clients.models import Client
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import BookingRequirements, Guarantee
from core.hooks.views import ClientHistory, provide_client_history
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for


def client_history(client_id: int) -> ClientHistory:
    """Return the client's no-shows and late cancellations here, counted apart."""
    no_show = Booking.status == BookingStatus.no_show
    row = db.session.execute(
        select(
            func.count().filter(no_show),
            func.count().filter(~no_show),
        ).where(Booking.client_id == client_id, Booking.policy_incident.is_(True))
    ).one()
    return ClientHistory(no_shows=row[0] or 0, late_cancellations=row[1] or 0)


# Plugins read a client's history through their view of the client, counted only when read.
provide_client_history(client_history)


def guest_client(data: dict[str, Any]) -> Client:
    """Return the client booking online as a guest: the one on file with this email and birth date, or a new one."""
    existing = db.session.scalar(
        select(Client)
        .where(Client.email == data["email"], Client.date_of_birth == data["date_of_birth"])
        .order_by(Client.id)
        .limit(1)
    )
    if existing is not None:
        return existing
    return clients.create_client(data)


def _check_age(clinic: Clinic, client: Client) -> None:
    for gate in clients.age_gates(clinic, client):
        if gate.applies_to not in ("treatment", "premises") or gate.satisfied:
            continue
        if gate.requires == "refused":
            raise Refused(
                gate.clause.text,
                kind="age-refused",
                title="Not available at this age",
                clause=gate.clause.id,
            )
        raise Refused(
            f"A client under {gate.under} needs {gate.requires.replace('_', ' ')} on file before booking: {gate.clause.text}",
            kind="parental-consent-required",
            title="Parental consent required",
            clause=gate.clause.id,
        )


def requirements_for(
    clinic: Clinic, service: Service, client: Client, starts_at: datetime
) -> BookingRequirements:
    """Ask the clinic's policy what a booking of ``service`` by ``client`` needs."""
    return hooks_for(clinic).clinic_booking_requirements(
        clinic=clinic, service=service, client=client, starts_at=starts_at
    )


def _needs_guarantee(requirements: BookingRequirements) -> bool:
    return bool(
        requirements.deposit or requirements.prepayment or requirements.guarantee != Guarantee.none
    )
