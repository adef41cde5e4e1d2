"""Age and minors: a client's age where the clinic is, and the clinic's age rules and gates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from core import clock
from core.clients.models import Client, Consent, ConsentKind, ConsentMethod
from core.clients.services.consent import active_consent
from core.extensions import db
from core.hooks.decisions import AgeRule
from core.tenancy.models import Clinic
from core.tenancy.services import hooks_for


def age_on(date_of_birth: date, day: date) -> int:
    """Return a person's age in whole years on ``day``."""
    return relativedelta(day, date_of_birth).years


def today_at(clinic: Clinic) -> date:
    """Return today's date where the clinic is."""
    return clock.now().astimezone(ZoneInfo(clinic.timezone)).date()


def age_rules_for(clinic: Clinic, record: Client, applies_to: str | None = None) -> list[AgeRule]:
    """Return the clinic's age rules that apply to ``record`` today (none if no birth date).

    The thresholds come from the clinic's plugins (``clinic_age_rules``), so
    under 18 at one clinic and under 13 at another is a setting, not code.
    """
    if record.date_of_birth is None:
        return []
    age = age_on(record.date_of_birth, today_at(clinic))
    rules = hooks_for(clinic).answers("clinic_age_rules", clinic=clinic)
    return [
        rule
        for rule in rules
        if age < rule.under
        # "representative" rules say who may act for the client, not what they may do.
        and (rule.applies_to == applies_to if applies_to else rule.applies_to != "representative")
    ]


def has_parental_consent(record: Client) -> bool:
    """Return whether a standing parental consent is on file for ``record``."""
    return active_consent(record.id, ConsentKind.parental) is not None


@dataclass(frozen=True)
class AgeGate:
    """An age rule that applies to a client today, and whether what it asks is on file."""

    rule: AgeRule
    satisfied: bool

    @property
    def under(self) -> int:
        return self.rule.under

    @property
    def requires(self) -> str:
        return self.rule.requires

    @property
    def applies_to(self) -> str:
        return self.rule.applies_to

    @property
    def clause(self) -> Any:
        return self.rule.clause


def age_gates(clinic: Clinic, record: Client, applies_to: str | None = None) -> list[AgeGate]:
    """Return each age rule that applies to ``record`` today and whether it is met.

    ``parental_consent`` is met by a standing parental consent from a
    guardian on file; ``written_parental_permission`` only by one given in
    writing; ``refused`` never. Bookings check these before a minor is booked.
    """
    rules = age_rules_for(clinic, record, applies_to)
    if not rules:
        return []
    standing = list(
        db.session.scalars(
            select(Consent).where(
                Consent.client_id == record.id,
                Consent.kind == ConsentKind.parental,
                Consent.revoked_at.is_(None),
            )
        )
    )
    gates = []
    for rule in rules:
        if rule.requires == "refused":
            met = False
        elif rule.requires == "written_parental_permission":
            met = any(c.method == ConsentMethod.written for c in standing)
        else:
            met = bool(standing)
        gates.append(AgeGate(rule, met))
    return gates
