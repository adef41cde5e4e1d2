"""HIPAA-aligned privacy rules (45 CFR Part 164) for US clinics that hold protected health information.

Rules, numbers and sources are listed in ``docs/plugins/hipaa_aligned.md``;
every number is a setting under ``[plugins.settings.hipaa_aligned]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from marshmallow import Schema, fields, validate

from core import clock
from core.hooks.decisions import (
    BreachNotification,
    Clause,
    ConsentRequirement,
    HeldRecords,
    PrivacyRight,
    RecordKind,
    RequestDeadline,
    RetentionRule,
    RightOffered,
)
from core.hooks.host import hookimpl
from core.hooks.settings import settings_of
from core.hooks.views import ClientView, ClinicView, IncidentView, PrivacyRequestView
from core.privacy.calendars import end_of_day, local_day

NAME = "hipaa_aligned"
SOURCE = "45 CFR Part 164"


def _days(default: int) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=366))


class HipaaSettings(Schema):
    """The HIPAA numbers a clinic's counsel may want to change; defaults are the rule's."""

    access_days = _days(30)
    access_extension_days = _days(30)
    amendment_days = _days(60)
    amendment_extension_days = _days(30)
    accounting_days = _days(60)
    accounting_extension_days = _days(30)
    accounting_lookback_years = fields.Integer(
        load_default=6, validate=validate.Range(min=1, max=20)
    )
    documentation_retention_years = fields.Integer(
        load_default=6, validate=validate.Range(min=1, max=30)
    )
    breach_individual_days = _days(60)
    breach_large_threshold = fields.Integer(load_default=500, validate=validate.Range(min=1))


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, HipaaSettings)


def _clause(key: str, text: str, source: str) -> Clause:
    return Clause(f"{NAME}.{key}", text, f"{SOURCE}, {source}")


@hookimpl
def clinic_settings_schema() -> Schema:
    return HipaaSettings()


@hookimpl
def clinic_privacy_rights(clinic: ClinicView) -> list[RightOffered]:
    offered = {
        PrivacyRight.access: ("access", "164.524"),
        PrivacyRight.portability: ("access", "164.524(c)(2)"),
        PrivacyRight.amend: ("amendment", "164.526"),
        PrivacyRight.correct: ("amendment", "164.526"),
        PrivacyRight.accounting_of_disclosures: ("accounting", "164.528"),
    }
    return [
        RightOffered(right, _clause(f"right.{key}", f"Patients may request {right.value}.", source))
        for right, (key, source) in offered.items()
    ]


@hookimpl
def clinic_request_deadline(
    clinic: ClinicView, request: PrivacyRequestView, received_at: datetime
) -> RequestDeadline | None:
    settings = _settings(clinic)
    kind = PrivacyRight(request.kind)
    if kind in (PrivacyRight.access, PrivacyRight.portability):
        days, extra, source = (
            settings["access_days"],
            settings["access_extension_days"],
            "164.524(b)(2)",
        )
        text = (
            f"Access to protected health information is given within {days} days of the request, "
            f"extendable once by {extra} days with a written reason given within the first {days}."
        )
        lookback = None
    elif kind in (PrivacyRight.amend, PrivacyRight.correct):
        days, extra, source = (
            settings["amendment_days"],
            settings["amendment_extension_days"],
            "164.526(b)(2)",
        )
        text = (
            f"A request to amend is acted on within {days} days, extendable once by {extra} days "
            "with a written reason; the record is amended by appending, never overwritten."
        )
        lookback = None
    elif kind == PrivacyRight.accounting_of_disclosures:
        days, extra, source = (
            settings["accounting_days"],
            settings["accounting_extension_days"],
            "164.528(c)",
        )
        years = settings["accounting_lookback_years"]
        text = (
            f"An accounting of disclosures covering the past {years} years is given within "
            f"{days} days, extendable once by {extra} days."
        )
        lookback = timedelta(days=365 * years + years // 4)
    else:
        return None
    received = local_day(received_at, clinic.timezone)
    due = end_of_day(received + timedelta(days=days), clinic.timezone)
    return RequestDeadline(
        clause=_clause(f"deadline.{kind.value}", text, source),
        due_at=due,
        extension=timedelta(days=extra),
        extension_notice_by=due,
        lookback=lookback,
    )


@hookimpl
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    if record.kind not in (RecordKind.documentation, RecordKind.privacy_request):
        return None
    years = _settings(clinic)["documentation_retention_years"]
    start = record.newest_on or clock.now().date()
    return RetentionRule(
        clause=_clause(
            "retention.documentation",
            f"Policies, consents, authorisations and request records are kept {years} years "
            "from their creation or last effective date.",
            "164.316(b)(2), 164.530(j)",
        ),
        keep_until=start + relativedelta(years=years),
    )


@hookimpl
def clinic_consent_requirements(clinic: ClinicView, purpose: str) -> ConsentRequirement | None:
    if not purpose.startswith("marketing"):
        return None
    return ConsentRequirement(
        clause=_clause(
            "marketing",
            "Health information is used for marketing only with the patient's written authorisation.",
            "164.508(a)(3)",
        ),
        purpose=purpose,
        required=True,
        method="written",
    )


@hookimpl
def clinic_breach_obligations(
    clinic: ClinicView, incident: IncidentView
) -> list[BreachNotification]:
    if not incident.health_data or incident.encrypted:
        # Encrypted data lost is not "unsecured PHI" (164.402): nothing to notify here.
        return []
    settings = _settings(clinic)
    days = settings["breach_individual_days"]
    threshold = settings["breach_large_threshold"]
    discovered = incident.discovered_at
    notices = [
        BreachNotification(
            clause=_clause(
                "breach.individuals",
                f"Each affected individual is notified without unreasonable delay and within "
                f"{days} days of discovery.",
                "164.404(b)",
            ),
            recipient="individuals",
            due_at=discovered + timedelta(days=days),
        )
    ]
    if incident.affected_count >= threshold:
        notices.append(
            BreachNotification(
                clause=_clause(
                    "breach.hhs_large",
                    f"A breach affecting {threshold} or more individuals is reported to the "
                    f"Secretary of HHS at the same time as the individuals, within {days} days.",
                    "164.408(b)",
                ),
                recipient="hhs",
                due_at=discovered + timedelta(days=days),
            )
        )
    else:
        year_end = datetime(discovered.year, 12, 31, 23, 59, 59, tzinfo=discovered.tzinfo)
        notices.append(
            BreachNotification(
                clause=_clause(
                    "breach.hhs_log",
                    f"Breaches affecting fewer than {threshold} individuals are logged and "
                    "reported to HHS within 60 days of the end of the calendar year.",
                    "164.408(c)",
                ),
                recipient="hhs",
                due_at=year_end + timedelta(days=60),
            )
        )
    for state, count in sorted((incident.affected_by_region or {}).items()):
        if count > threshold:
            notices.append(
                BreachNotification(
                    clause=_clause(
                        "breach.media",
                        f"Prominent media in a state where more than {threshold} residents are "
                        f"affected are notified within {days} days of discovery.",
                        "164.406",
                    ),
                    recipient=f"media:{state}",
                    due_at=discovered + timedelta(days=days),
                )
            )
    return notices
