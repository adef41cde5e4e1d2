"""A client's acceptance of the policy a booking shows, kept with the booking as evidence.

The clauses accepted are those of the policy version the booking stored when it
was made (the notice window, the fee, the deposit's fate that apply to it), so a
disputed fee can be answered with what the client saw, when, and from where.
An acceptance is written once and never changed; a later one is a new row.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from core import clock
from core.bookings.models import Booking, PolicyAcceptance, PolicyVersion
from core.errors import Invalid, field_error
from core.extensions import db
from core.unit_of_work import transaction

#: How much of an address and a browser's User-Agent is kept (the columns' lengths).
IP_ADDRESS_LENGTH = 45  # the longest textual IPv6 address (with an embedded IPv4)
USER_AGENT_LENGTH = 400

#: Where an acceptance was given.
CHANNELS = ("online", "self_service", "staff")


def _refuse(detail: str) -> Invalid:
    return Invalid(
        detail, kind="policy-not-accepted", errors=[field_error("accept_policy", detail)]
    )


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


@transaction
def accept_policy(
    booking: Booking,
    *,
    clause_ids: Iterable[str],
    ip_address: str | None,
    user_agent: str | None,
    channel: str,
) -> PolicyAcceptance:
    """Record that the client accepted ``clause_ids`` of the booking's stored policy version.

    Refused (nothing stored) when no clause is named, or a clause is not in that
    version: an acceptance is evidence only of clauses the client was shown.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown acceptance channel {channel!r}")
    accepted = list(dict.fromkeys(clause_ids))  # in the order given, once each
    if not accepted:
        raise _refuse("Name the clauses of the clinic's policy that are accepted.")
    version = db.session.get(PolicyVersion, booking.policy_version_id)
    offered = {str(c.get("id")) for c in (version.clauses if version else [])}
    unknown = [c for c in accepted if c not in offered]
    if unknown:
        raise _refuse(
            "Not a clause of this booking's policy: " + ", ".join(sorted(map(str, unknown))) + "."
        )
    acceptance = PolicyAcceptance(
        booking_id=booking.id,
        policy_version_id=booking.policy_version_id,
        clause_ids=accepted,
        accepted_at=clock.now(),
        ip_address=_clip(ip_address, IP_ADDRESS_LENGTH),
        user_agent=_clip(user_agent, USER_AGENT_LENGTH),
        channel=channel,
    )
    db.session.add(acceptance)
    db.session.flush()
    db.session.expire(booking, ["policy_acceptances"])  # read again when next asked
    return acceptance


def policy_clause_ids(booking: Booking) -> list[str]:
    """Return the ids of every clause of the booking's stored policy version, in its order."""
    version = db.session.get(PolicyVersion, booking.policy_version_id)
    return [str(c["id"]) for c in (version.clauses if version else []) if c.get("id")]


def accept_whole_policy(
    booking: Booking, *, ip_address: str | None, user_agent: str | None, channel: str
) -> PolicyAcceptance | None:
    """Record that the client accepted every clause of the booking's policy, as they were shown it.

    A policy with no clauses to show has nothing to accept, and nothing is recorded.
    """
    clause_ids = policy_clause_ids(booking)
    if not clause_ids:
        return None
    return accept_policy(
        booking,
        clause_ids=clause_ids,
        ip_address=ip_address,
        user_agent=user_agent,
        channel=channel,
    )


def acceptances(booking: Booking) -> list[PolicyAcceptance]:
    """Return the acceptances recorded for ``booking``, oldest first."""
    return list(
        db.session.scalars(
            select(PolicyAcceptance)
            .where(PolicyAcceptance.booking_id == booking.id)
            .order_by(PolicyAcceptance.id)
        )
    )
