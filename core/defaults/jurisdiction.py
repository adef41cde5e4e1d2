"""The platform's baseline privacy rules, which every clinic gets under its jurisdiction plugins.

Jurisdiction plugins (``hipaa_aligned``, ``ccpa``, ``nz_privacy``) add to
these; the core combines every answer, taking the earliest deadline and the
strictest gate, so this baseline can only ever be tightened.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from dateutil.relativedelta import relativedelta
from marshmallow import Schema, fields, validate
from phonenumbers import timezone as phone_timezones

from core.clock import as_utc
from core.hooks.decisions import (
    Clause,
    ConsentRequirement,
    HeldRecords,
    MessageDecision,
    PrivacyRight,
    RecordKind,
    RequestDeadline,
    RetentionRule,
    RightOffered,
)
from core.hooks.host import hookimpl
from core.hooks.settings import settings_of
from core.hooks.views import ClientView, ClinicView, MessageView, PrivacyRequestView

#: Opt-outs need no proof of identity: anyone may stop messages to a number or an address.
OPT_OUTS = (PrivacyRight.opt_out_marketing.value, PrivacyRight.opt_out_sale_sharing.value)

NAME = "default_jurisdiction"
SOURCE = "platform baseline"

#: Purposes that always need the client's own opt-in, whatever the jurisdiction.
MARKETING_PURPOSES = frozenset({"marketing_email", "marketing_sms", "marketing_photos"})


class PromisedRight(Schema):
    """A right the clinic's own privacy policy promises, beyond what its jurisdiction grants."""

    right = fields.String(required=True, validate=validate.OneOf([r.value for r in PrivacyRight]))
    clause = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class BaselineSettings(Schema):
    """The baseline's numbers: request deadline, quiet hours, record keeping, promised rights."""

    request_deadline_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=90))
    # Alert the clinic this many days before a privacy request falls due.
    deadline_alert_days = fields.Integer(load_default=5, validate=validate.Range(min=1, max=30))
    # No marketing text or email before this hour or from this hour on, in the client's time.
    quiet_hours_end = fields.Integer(load_default=8, validate=validate.Range(min=0, max=23))
    quiet_hours_start = fields.Integer(load_default=21, validate=validate.Range(min=1, max=24))
    # Bookings and what was paid are kept this long for tax and accounting.
    financial_retention_years = fields.Integer(
        load_default=7, validate=validate.Range(min=1, max=30)
    )
    promised_rights = fields.List(fields.Nested(PromisedRight), load_default=list)


def baseline_settings(clinic: ClinicView) -> dict[str, Any]:
    """Return the clinic's baseline settings (deadline alerts, quiet hours, ...), defaults filled in."""
    return settings_of(clinic, NAME, BaselineSettings)


@hookimpl(trylast=True)
def clinic_settings_schema() -> Schema:
    return BaselineSettings()


@hookimpl(trylast=True)
def clinic_privacy_rights(clinic: ClinicView) -> list[RightOffered]:
    clause = Clause(
        f"{NAME}.rights",
        "Every client may see the information the clinic holds about them, have it "
        "corrected, and opt out of marketing at any time.",
        SOURCE,
    )
    promised = [
        RightOffered(
            PrivacyRight(item["right"]),
            Clause(
                f"{NAME}.promised.{item['right']}", item["clause"], "the clinic's privacy policy"
            ),
        )
        for item in baseline_settings(clinic)["promised_rights"]
    ]
    return [
        RightOffered(PrivacyRight.access, clause),
        RightOffered(PrivacyRight.correct, clause),
        RightOffered(PrivacyRight.opt_out_marketing, clause),
        *promised,
    ]


@hookimpl(trylast=True)
def clinic_request_deadline(
    clinic: ClinicView, request: PrivacyRequestView, received_at: datetime
) -> RequestDeadline:
    days = baseline_settings(clinic)["request_deadline_days"]
    return RequestDeadline(
        clause=Clause(
            f"{NAME}.request_deadline",
            f"Privacy requests are answered within {days} days of receipt.",
            SOURCE,
        ),
        due_at=as_utc(received_at) + timedelta(days=days),
        verify_identity=request.kind not in OPT_OUTS,
        fallback=True,
    )


@hookimpl(trylast=True)
def clinic_consent_requirements(clinic: ClinicView, purpose: str) -> ConsentRequirement | None:
    if purpose not in MARKETING_PURPOSES:
        return None
    return ConsentRequirement(
        clause=Clause(
            f"{NAME}.marketing_consent",
            "Marketing is sent only to clients who opted in to it, for that channel.",
            SOURCE,
        ),
        purpose=purpose,
        required=True,
        method="electronic",
    )


@hookimpl(trylast=True)
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    if record.kind != RecordKind.financial or record.newest_on is None:
        return None
    years = baseline_settings(clinic)["financial_retention_years"]
    return RetentionRule(
        clause=Clause(
            f"{NAME}.retention.financial",
            f"Bookings and payment records are kept {years} years for tax and accounting.",
            SOURCE,
        ),
        keep_until=record.newest_on + relativedelta(years=years),
    )


def _candidate_zones(clinic: ClinicView, client: ClientView) -> list[str]:
    """Return the zones the client may be in: theirs if known, else every zone of their number."""
    if client.timezone:
        return [client.timezone]
    zones = set()
    if client.phone:
        try:
            number = phonenumbers.parse(client.phone, clinic.country)
            zones = {
                zone
                for zone in phone_timezones.time_zones_for_number(number)
                if zone != phone_timezones.UNKNOWN_TIMEZONE
            }
        except phonenumbers.NumberParseException:
            zones = set()
    return sorted(zones) or [clinic.timezone]


def _quiet(moment: datetime, zone: str, start: int, end: int) -> bool:
    hour = moment.astimezone(ZoneInfo(zone)).hour
    return hour >= start or hour < end


@hookimpl(trylast=True)
def clinic_message_allowed(
    clinic: ClinicView, message: MessageView, client: ClientView, now: datetime
) -> MessageDecision | None:
    if message.kind != "marketing":
        return None
    settings = baseline_settings(clinic)
    start, end = settings["quiet_hours_start"], settings["quiet_hours_end"]
    zones = _candidate_zones(clinic, client)
    if not any(_quiet(now, zone, start, end) for zone in zones):
        return None
    # The strictest reading: wait until it is daytime in every zone the client may be in.
    later = now.replace(second=0, microsecond=0)
    for _ in range(4 * 48):
        later += timedelta(minutes=15)
        if not any(_quiet(later, zone, start, end) for zone in zones):
            break
    return MessageDecision(
        clause=Clause(
            f"{NAME}.quiet_hours",
            f"Marketing is never sent before {end}:00 or after {start}:00 in the client's "
            "local time (their timezone if known, else every zone their number may be in).",
            "47 CFR 64.1200(c)(1)",
        ),
        allowed=False,
        reason="quiet hours where the client is",
        not_before=later,
    )
