"""Kōwhai Skin Clinic's policy: late cancellations and no-shows cost a share of the treatment.

The clinic's published words, which its tenants/ file quotes:

    "Please give us at least 24 hours' notice if you need to cancel. Cancellations
    with less notice are charged 50% of the treatment price, and appointments
    missed without notice are charged in full."

The platform's default policy charges fixed amounts; this clinic charges a
share of each treatment's price, so it needs a plugin. Everything else (its
deposit, refunds, store credit) stays with the default policy, which answers
whenever this plugin returns ``None``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marshmallow import Schema, fields, validate

from core.hooks import (
    CONTRACT_VERSION,
    BookingView,
    CancellationDecision,
    Clause,
    ClinicView,
    DepositOutcome,
    Money,
    NoShowDecision,
    hookimpl,
    settings_of,
    within_notice,
)

NAME = "kowhai_policy"

# Written against version 1 of the hook contract; a 2.x would change what hooks are shown.
if CONTRACT_VERSION[0] != 1:
    raise ImportError(f"{NAME} needs hook contract 1.x, not {CONTRACT_VERSION}")


class KowhaiSettings(Schema):
    """The numbers and words a clinic using this policy writes in its tenants/ file."""

    #: Where the words come from: shown with every decision, kept for disputes.
    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
    notice_hours = fields.Integer(load_default=24, validate=validate.Range(min=1, max=24 * 14))
    late_cancellation_percent = fields.Integer(
        load_default=50, validate=validate.Range(min=0, max=100)
    )
    no_show_percent = fields.Integer(load_default=100, validate=validate.Range(min=0, max=100))
    #: The clinic's own sentence for each rule.
    cancellation_clause = fields.String(required=True, validate=validate.Length(min=1))
    no_show_clause = fields.String(required=True, validate=validate.Length(min=1))


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, KowhaiSettings)


def share_of(price: Money, percent: int) -> Money:
    """Return ``percent`` of ``price``, rounded half up to the currency's smallest unit."""
    minor = (Decimal(price.minor) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return Money(int(minor), price.currency)


@hookimpl
def clinic_settings_schema() -> Schema:
    return KowhaiSettings()


@hookimpl
def clinic_cancellation_decision(
    clinic: ClinicView, booking: BookingView, at: datetime, by: str
) -> CancellationDecision | None:
    if by != "client":
        return None  # the clinic cancelled: the default policy refunds and charges nothing
    settings = _settings(clinic)
    late = within_notice(booking.starts_at, at, settings["notice_hours"])
    fee = share_of(booking.price, settings["late_cancellation_percent"]) if late else None
    paid = booking.deposit_paid is not None
    return CancellationDecision(
        clause=Clause(f"{NAME}.cancellation", settings["cancellation_clause"], settings["source"]),
        fee=fee or Money.zero(clinic.currency),
        deposit=(
            DepositOutcome.none
            if not paid
            else DepositOutcome.forfeited
            if late
            else DepositOutcome.refunded
        ),
        within_notice_window=late,
        counts_as_late_cancellation=late,
    )


@hookimpl
def clinic_no_show_decision(clinic: ClinicView, booking: BookingView) -> NoShowDecision:
    settings = _settings(clinic)
    return NoShowDecision(
        clause=Clause(f"{NAME}.no_show", settings["no_show_clause"], settings["source"]),
        fee=share_of(booking.price, settings["no_show_percent"]),
        deposit=(
            DepositOutcome.forfeited if booking.deposit_paid is not None else DepositOutcome.none
        ),
    )
