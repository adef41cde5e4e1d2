"""The platform's baseline privacy rules, which every clinic gets under its jurisdiction plugins.

Jurisdiction plugins (``hipaa_aligned``, ``ccpa``, ``nz_privacy``) add to
these; the core combines every answer, taking the earliest deadline and the
strictest gate, so this baseline can only ever be tightened.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from core.clock import as_utc
from core.hooks.decisions import (
    Clause,
    ConsentRequirement,
    PrivacyRight,
    RequestDeadline,
    RightOffered,
)
from core.hooks.host import hookimpl

NAME = "default_jurisdiction"
SOURCE = "platform baseline"

#: Purposes that always need the client's own opt-in, whatever the jurisdiction.
MARKETING_PURPOSES = frozenset({"marketing_email", "marketing_sms", "marketing_photos"})


class BaselineSettings(Schema):
    """The baseline's one number: how long a clinic takes to answer a privacy request."""

    request_deadline_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=90))


def _settings(clinic: Any) -> dict[str, Any]:
    return _load(json.dumps(clinic.settings_for(NAME), sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _load(stored: str) -> dict[str, Any]:
    # Settings were validated when the tenants/ file was loaded; this only
    # fills defaults, once per distinct settings text.
    return BaselineSettings().load(json.loads(stored))


@hookimpl(trylast=True)
def clinic_settings_schema() -> Schema:
    return BaselineSettings()


@hookimpl(trylast=True)
def clinic_privacy_rights(clinic: Any) -> list[RightOffered]:
    clause = Clause(
        f"{NAME}.rights",
        "Every client may see the information the clinic holds about them, have it "
        "corrected, and opt out of marketing at any time.",
        SOURCE,
    )
    return [
        RightOffered(PrivacyRight.access, clause),
        RightOffered(PrivacyRight.correct, clause),
        RightOffered(PrivacyRight.opt_out_marketing, clause),
    ]


@hookimpl(trylast=True)
def clinic_request_deadline(clinic: Any, request: Any, received_at: datetime) -> RequestDeadline:
    days = _settings(clinic)["request_deadline_days"]
    return RequestDeadline(
        clause=Clause(
            f"{NAME}.request_deadline",
            f"Privacy requests are answered within {days} days of receipt.",
            SOURCE,
        ),
        due_at=as_utc(received_at) + timedelta(days=days),
    )


@hookimpl(trylast=True)
def clinic_consent_requirements(clinic: Any, purpose: str) -> ConsentRequirement | None:
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
