"""Florida privacy rules: medical record retention and the breach notice law (FIPA).

Rules, numbers and sources are listed in ``docs/plugins/florida.md``; every
number is a setting under ``[plugins.settings.florida]``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from marshmallow import Schema, fields, validate

from core.hooks.decisions import (
    AgeRule,
    BreachNotification,
    Clause,
    HeldRecords,
    RecordKind,
    RetentionRule,
)
from core.hooks.host import hookimpl
from core.hooks.settings import settings_of
from core.hooks.views import ClientView, ClinicView, IncidentView

NAME = "florida"


class FloridaSettings(Schema):
    """The Florida numbers a clinic's counsel may want to change; defaults are the law's."""

    medical_retention_years = fields.Integer(load_default=5, validate=validate.Range(min=1, max=50))
    breach_individual_days = fields.Integer(
        load_default=30, validate=validate.Range(min=1, max=366)
    )
    attorney_general_threshold = fields.Integer(load_default=500, validate=validate.Range(min=1))
    coppa_under = fields.Integer(load_default=13, validate=validate.Range(min=1, max=21))


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, FloridaSettings)


@hookimpl
def clinic_settings_schema() -> Schema:
    return FloridaSettings()


@hookimpl
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    if record.kind != RecordKind.medical_record or record.last_service_on is None:
        return None
    years = _settings(clinic)["medical_retention_years"]
    return RetentionRule(
        clause=Clause(
            f"{NAME}.retention.medical",
            f"Physicians keep patient records at least {years} years from the last patient contact.",
            "Fla. Admin. Code 64B8-10.002",
        ),
        keep_until=record.last_service_on + relativedelta(years=years),
    )


@hookimpl
def clinic_age_rules(clinic: ClinicView) -> list[AgeRule]:
    under = _settings(clinic)["coppa_under"]
    return [
        AgeRule(
            clause=Clause(
                f"{NAME}.coppa",
                f"Personal information is collected online from a child under {under} only "
                "with verifiable parental consent.",
                "COPPA, 16 CFR 312.5",
            ),
            under=under,
            requires="parental_consent",
            applies_to="data_collection",
        )
    ]


@hookimpl
def clinic_breach_obligations(
    clinic: ClinicView, incident: IncidentView
) -> list[BreachNotification]:
    if incident.encrypted:
        return []  # s 501.171 covers unencrypted personal information
    settings = _settings(clinic)
    days = settings["breach_individual_days"]
    residents = (incident.affected_by_region or {}).get("FL", incident.affected_count)
    if not residents:
        return []
    notices = [
        BreachNotification(
            clause=Clause(
                f"{NAME}.breach.individuals",
                f"Affected Florida residents are notified no later than {days} days after the "
                "breach is determined.",
                "Fla. Stat. 501.171(4)",
            ),
            recipient="individuals",
            due_at=incident.discovered_at + timedelta(days=days),
        )
    ]
    threshold = settings["attorney_general_threshold"]
    if residents >= threshold:
        notices.append(
            BreachNotification(
                clause=Clause(
                    f"{NAME}.breach.attorney_general",
                    f"A breach affecting {threshold} or more Florida residents is reported to "
                    f"the Department of Legal Affairs within {days} days.",
                    "Fla. Stat. 501.171(3)",
                ),
                recipient="attorney_general:FL",
                due_at=incident.discovered_at + timedelta(days=days),
            )
        )
    return notices
