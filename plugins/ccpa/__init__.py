"""California privacy rules: the CCPA/CPRA, the CMIA and the Health & Safety Code's record rules.

Rules, numbers and sources are listed in ``docs/plugins/ccpa.md``; every
number is a setting under ``[plugins.settings.ccpa]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from marshmallow import Schema, fields, validate

from core import clock
from core.hooks.decisions import (
    AgeRule,
    BreachNotification,
    Clause,
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
from core.privacy.calendars import add_us_business_days, end_of_day, local_day

NAME = "ccpa"
SOURCE = "California"


def _number(default: int, maximum: int = 366) -> fields.Integer:
    return fields.Integer(load_default=default, validate=validate.Range(min=1, max=maximum))


class CcpaSettings(Schema):
    """The California numbers a clinic's counsel may want to change; defaults are the law's."""

    response_days = _number(45)
    extension_days = _number(45)
    acknowledge_business_days = _number(10, 60)
    opt_out_business_days = _number(15, 60)
    lookback_months = _number(12, 120)
    request_record_months = _number(24, 240)
    patient_copies_days = _number(15)
    medical_retention_years = _number(7, 50)
    minor_retention_until_age = _number(19, 30)
    breach_individual_days = _number(30)
    attorney_general_threshold = _number(500, 10_000_000)
    sale_sharing_opt_in_under = _number(16, 21)
    coppa_under = _number(13, 21)


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, CcpaSettings)


def _clause(key: str, text: str, source: str) -> Clause:
    return Clause(f"{NAME}.{key}", text, source)


_KNOW_DELETE_CORRECT = {
    PrivacyRight.access,
    PrivacyRight.portability,
    PrivacyRight.delete,
    PrivacyRight.correct,
}


@hookimpl
def clinic_settings_schema() -> Schema:
    return CcpaSettings()


@hookimpl
def clinic_privacy_rights(clinic: ClinicView) -> list[RightOffered]:
    clause = _clause(
        "rights",
        "California residents may know, delete and correct their personal information, opt "
        "out of its sale or sharing, and are not discriminated against for doing so.",
        "Civ. Code 1798.100-1798.125",
    )
    return [
        RightOffered(right, clause)
        for right in (
            PrivacyRight.access,
            PrivacyRight.portability,
            PrivacyRight.delete,
            PrivacyRight.correct,
            PrivacyRight.opt_out_sale_sharing,
            PrivacyRight.non_discrimination,
        )
    ]


@hookimpl
def clinic_request_deadline(
    clinic: ClinicView, request: PrivacyRequestView, received_at: datetime
) -> RequestDeadline | None:
    settings = _settings(clinic)
    kind = PrivacyRight(request.kind)
    received = local_day(received_at, clinic.timezone)
    if kind == PrivacyRight.opt_out_sale_sharing:
        days = settings["opt_out_business_days"]
        return RequestDeadline(
            clause=_clause(
                "deadline.opt_out",
                f"A request to opt out of sale or sharing is acted on within {days} business "
                "days, with no identity verification.",
                "11 CCR 7026(f)",
            ),
            due_at=end_of_day(add_us_business_days(received, days), clinic.timezone),
            verify_identity=False,
        )
    if kind not in _KNOW_DELETE_CORRECT:
        return None
    days, extra = settings["response_days"], settings["extension_days"]
    acknowledge = settings["acknowledge_business_days"]
    due = received + timedelta(days=days)
    clause = _clause(
        f"deadline.{kind.value}",
        f"Requests to know, delete or correct are acknowledged within {acknowledge} business "
        f"days and answered within {days} calendar days of receipt, extendable once by {extra} "
        "days with notice and the reason.",
        "11 CCR 7021; Civ. Code 1798.130(a)(2)",
    )
    lookback = None
    if kind in (PrivacyRight.access, PrivacyRight.portability):
        lookback = timedelta(days=round(settings["lookback_months"] * 365.25 / 12))
        copies = settings["patient_copies_days"]
        if received + timedelta(days=copies) < due:
            # A patient's own records: the state's shorter clock wins (H&S 123110).
            due = received + timedelta(days=copies)
            extra = 0
            clause = _clause(
                "deadline.patient_records",
                f"A patient is given copies of their records within {copies} days of a "
                "written request.",
                "Health & Safety Code 123110",
            )
            lookback = None  # patient records are given whole, not only the last 12 months
    due_at = end_of_day(due, clinic.timezone)
    return RequestDeadline(
        clause=clause,
        due_at=due_at,
        acknowledge_by=end_of_day(add_us_business_days(received, acknowledge), clinic.timezone),
        extension=timedelta(days=extra) if extra else None,
        extension_notice_by=due_at if extra else None,
        lookback=lookback,
    )


@hookimpl
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    settings = _settings(clinic)
    if record.kind == RecordKind.privacy_request:
        months = settings["request_record_months"]
        return RetentionRule(
            clause=_clause(
                "retention.requests",
                f"Records of consumer requests and how they were answered are kept {months} months.",
                "11 CCR 7101(a)",
            ),
            keep_until=(record.newest_on or clock.now().date()) + relativedelta(months=months),
        )
    if record.kind != RecordKind.medical_record or record.last_service_on is None:
        return None
    years = settings["medical_retention_years"]
    until = record.last_service_on + relativedelta(years=years)
    age = settings["minor_retention_until_age"]
    text = (
        f"Patient records are kept at least {years} years after the last treatment; a minor's "
        f"until the later of that and their {age}th birthday."
    )
    if record.date_of_birth is not None:
        until = max(until, record.date_of_birth + relativedelta(years=age))
    return RetentionRule(
        clause=_clause("retention.medical", text, "Health & Safety Code 123145"),
        keep_until=until,
    )


@hookimpl
def clinic_age_rules(clinic: ClinicView) -> list[AgeRule]:
    settings = _settings(clinic)
    return [
        AgeRule(
            clause=Clause(
                f"{NAME}.sale_sharing_minor",
                f"Personal information of a consumer under {settings['sale_sharing_opt_in_under']} "
                "is not sold or shared without their opt-in (a parent's, under 13).",
                "Civ. Code 1798.120(c)",
            ),
            under=settings["sale_sharing_opt_in_under"],
            requires="parental_consent",
            applies_to="sale_sharing",
        ),
        AgeRule(
            clause=Clause(
                f"{NAME}.coppa",
                f"Personal information is collected online from a child under "
                f"{settings['coppa_under']} only with verifiable parental consent.",
                "COPPA, 16 CFR 312.5",
            ),
            under=settings["coppa_under"],
            requires="parental_consent",
            applies_to="data_collection",
        ),
    ]


@hookimpl
def clinic_breach_obligations(
    clinic: ClinicView, incident: IncidentView
) -> list[BreachNotification]:
    if incident.encrypted:
        return []  # Civ. 1798.82 applies to unencrypted personal information
    settings = _settings(clinic)
    days = settings["breach_individual_days"]
    residents = (incident.affected_by_region or {}).get("CA", incident.affected_count)
    if not residents:
        return []
    notices = [
        BreachNotification(
            clause=_clause(
                "breach.individuals",
                f"Affected California residents are notified within {days} days of discovery.",
                "Civ. Code 1798.82(a) as amended",
            ),
            recipient="individuals",
            due_at=incident.discovered_at + timedelta(days=days),
        )
    ]
    threshold = settings["attorney_general_threshold"]
    if residents > threshold:
        notices.append(
            BreachNotification(
                clause=_clause(
                    "breach.attorney_general",
                    f"When more than {threshold} California residents are affected, a sample "
                    "notice goes to the Attorney General.",
                    "Civ. Code 1798.82(f)",
                ),
                recipient="attorney_general:CA",
                due_at=incident.discovered_at + timedelta(days=days),
            )
        )
    return notices
