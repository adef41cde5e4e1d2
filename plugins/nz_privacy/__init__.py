"""New Zealand privacy rules: the Privacy Act 2020 and the Health Information Privacy Code 2020.

Rules, numbers and sources are listed in ``docs/plugins/nz_privacy.md``;
every number is a setting under ``[plugins.settings.nz_privacy]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dateutil.relativedelta import relativedelta
from marshmallow import Schema, fields, validate

from core.hooks.decisions import (
    AgeRule,
    BreachNotification,
    Clause,
    DisclosureDecision,
    HeldRecords,
    PrivacyRight,
    RecordKind,
    RequestDeadline,
    RetentionRule,
    RightOffered,
)
from core.hooks.host import hookimpl
from core.hooks.settings import settings_of
from core.hooks.views import (
    ClientView,
    ClinicView,
    IncidentView,
    PrivacyRequestView,
    RecipientView,
)
from core.privacy.calendars import add_nz_working_days, end_of_day, local_day

NAME = "nz_privacy"

#: The grounds on which IPP 12 allows disclosure to an overseas recipient.
OVERSEAS_BASES = (
    "authorised",  # the person authorised it, told the recipient may not protect it comparably
    "comparable_law",  # the recipient is subject to comparable safeguards
    "model_clauses",  # the recipient agreed to protect it comparably (model contract clauses)
    "nz_law_applies",  # the recipient carries on business in New Zealand
)


class NzPrivacySettings(Schema):
    """The New Zealand numbers a clinic's counsel may want to change; defaults are the law's."""

    response_working_days = fields.Integer(load_default=20, validate=validate.Range(min=1, max=60))
    transfer_working_days = fields.Integer(load_default=10, validate=validate.Range(min=1, max=60))
    health_retention_years = fields.Integer(load_default=10, validate=validate.Range(min=1, max=50))
    commissioner_hours = fields.Integer(load_default=72, validate=validate.Range(min=1, max=720))
    representative_under = fields.Integer(load_default=16, validate=validate.Range(min=1, max=21))


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, NzPrivacySettings)


def _clause(key: str, text: str, source: str) -> Clause:
    return Clause(f"{NAME}.{key}", text, source)


@hookimpl
def clinic_settings_schema() -> Schema:
    return NzPrivacySettings()


@hookimpl
def clinic_privacy_rights(clinic: ClinicView) -> list[RightOffered]:
    return [
        RightOffered(
            PrivacyRight.access,
            _clause(
                "right.access",
                "Everyone may ask for the personal information held about them.",
                "IPP 6",
            ),
        ),
        RightOffered(
            PrivacyRight.correct,
            _clause(
                "right.correct",
                "Everyone may ask for it to be corrected, or for a statement of the correction "
                "sought to be attached.",
                "IPP 7",
            ),
        ),
        RightOffered(
            PrivacyRight.complain,
            _clause(
                "right.complain",
                "A complaint goes to the clinic first, then to the Privacy Commissioner.",
                "Privacy Act 2020 s 74",
            ),
        ),
    ]


@hookimpl
def clinic_request_deadline(
    clinic: ClinicView, request: PrivacyRequestView, received_at: datetime
) -> RequestDeadline | None:
    if PrivacyRight(request.kind) not in (
        PrivacyRight.access,
        PrivacyRight.portability,
        PrivacyRight.correct,
    ):
        return None
    days = _settings(clinic)["response_working_days"]
    received = local_day(received_at, clinic.timezone)
    due_at = end_of_day(add_nz_working_days(received, days), clinic.timezone)
    return RequestDeadline(
        clause=_clause(
            "deadline",
            f"A request for access or correction is decided within {days} working days of "
            "receipt; an extension is notified within those days, with its reason and length.",
            "Privacy Act 2020 ss 44, 48; Health Information Privacy Code 2020 rules 6 and 7",
        ),
        due_at=due_at,
        # The Act sets no fixed length ("reasonable"): the clinic names it in the notice.
        extension=timedelta(days=30),
        extension_notice_by=due_at,
    )


@hookimpl
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    if record.kind != RecordKind.medical_record or record.last_service_on is None:
        return None
    years = _settings(clinic)["health_retention_years"]
    return RetentionRule(
        clause=_clause(
            "retention.health",
            f"Health information is kept at least {years} years from the day after the last "
            "service provided to the person.",
            "Health (Retention of Health Information) Regulations 1996, reg 6; IPP 9",
        ),
        keep_until=record.last_service_on + relativedelta(years=years) + timedelta(days=1),
    )


@hookimpl
def clinic_age_rules(clinic: ClinicView) -> list[AgeRule]:
    under = _settings(clinic)["representative_under"]
    return [
        AgeRule(
            clause=_clause(
                "representative",
                f"A parent or guardian may request the health information of a child under {under}; "
                "the request may be refused if releasing it would be against the child's interests.",
                "Health Information Privacy Code 2020 rule 11(4)",
            ),
            under=under,
            requires="parental_consent",
            applies_to="representative",
        )
    ]


@hookimpl
def clinic_breach_obligations(
    clinic: ClinicView, incident: IncidentView
) -> list[BreachNotification]:
    if not incident.serious_harm_likely:
        return []
    hours = _settings(clinic)["commissioner_hours"]
    return [
        BreachNotification(
            clause=_clause(
                "breach.commissioner",
                "A notifiable privacy breach is reported to the Privacy Commissioner as soon as "
                f"practicable (the Commissioner expects about {hours} hours).",
                "Privacy Act 2020 ss 114, 118",
            ),
            recipient="privacy_commissioner:NZ",
            due_at=incident.discovered_at + timedelta(hours=hours),
            as_soon_as_practicable=True,
        ),
        BreachNotification(
            clause=_clause(
                "breach.individuals",
                "The people affected are told as soon as practicable.",
                "Privacy Act 2020 s 115",
            ),
            recipient="individuals",
            due_at=None,
            as_soon_as_practicable=True,
        ),
    ]


@hookimpl
def clinic_disclosure_allowed(
    clinic: ClinicView, disclosure: RecipientView
) -> DisclosureDecision | None:
    clause = _clause(
        "overseas",
        "Personal information is disclosed to a recipient outside New Zealand only if the person "
        "authorised it, or the recipient is subject to comparable safeguards, agreed to them, or "
        "is subject to New Zealand law; storing or processing it for the clinic is not a disclosure.",
        "Privacy Act 2020 IPP 12, s 11",
    )
    if (disclosure.country or "NZ").upper() == "NZ":
        return None
    if disclosure.role == "processor":
        # s 11: an agent that only stores or processes for the clinic receives no disclosure.
        return DisclosureDecision(clause=clause, allowed=True, basis="processor (s 11)")
    if disclosure.basis in OVERSEAS_BASES:
        return DisclosureDecision(clause=clause, allowed=True, basis=disclosure.basis)
    return DisclosureDecision(clause=clause, allowed=False)
