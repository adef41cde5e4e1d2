"""The platform's default clinic policy: answers when a clinic's own policy plugin has no rule.

Every number is a setting under ``[plugins.settings.default_policy]`` in the
clinic's tenants/ file, so a clinic whose published policy says little about
money can tune it without code. With no settings it is lenient: no
guarantee, no deposit, free cancellation, refunds decided by a manager.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from core.clock import as_utc
from core.hooks.decisions import (
    AgeRule,
    BookingRequirements,
    CancellationDecision,
    Clause,
    DepositOutcome,
    GiftCardTerms,
    GratuityDecision,
    Guarantee,
    LateArrivalDecision,
    LateArrivalOption,
    NoShowDecision,
    PackageTerms,
    RefundDecision,
    RefundOutcome,
    RescheduleDecision,
    StoreCreditTerms,
)
from core.hooks.host import hookimpl
from core.hooks.settings import Amount, money, settings_of

NAME = "default_policy"
SOURCE = "platform default policy"


class AgeRuleSettings(Schema):
    """An age gate from the clinic's published policy, with the sentence it comes from."""

    under = fields.Integer(required=True, validate=validate.Range(min=1, max=25))
    requires = fields.String(
        required=True,
        validate=validate.OneOf(["parental_consent", "written_parental_permission", "refused"]),
    )
    applies_to = fields.String(
        load_default="treatment",
        validate=validate.OneOf(["treatment", "data_collection", "premises", "sale_sharing"]),
    )
    clause = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class DefaultPolicySettings(Schema):
    """The numbers and wording of the platform default policy, per clinic."""

    guarantee = fields.Enum(Guarantee, by_value=True, load_default=Guarantee.none)
    deposit = Amount(load_default=None, allow_none=True)
    cancellation_window_hours = fields.Integer(
        load_default=24, validate=validate.Range(min=0, max=24 * 30)
    )
    late_cancellation_fee = Amount(load_default="0.00")
    no_show_fee = Amount(load_default="0.00")
    late_arrival_grace_minutes = fields.Integer(
        load_default=15, validate=validate.Range(min=0, max=240)
    )
    store_credit_valid_months = fields.Integer(
        load_default=12, allow_none=True, validate=validate.Range(min=1, max=120)
    )
    # A deposit moves to the new time when rescheduled at least this long
    # ahead, and is forfeited when later; unset, it always moves.
    deposit_moves_with_notice_hours = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=24 * 30)
    )
    refunds_require_manager_approval = fields.Boolean(load_default=True)
    packages_paid_in_full_before_first_treatment = fields.Boolean(load_default=True)
    gratuity_allowed = fields.Boolean(load_default=True)
    cancellation_clause = fields.String(
        load_default=(
            "Please give at least {hours} hours' notice to cancel or reschedule; "
            "later cancellations and missed appointments may be charged {fee}."
        )
    )
    age_rules = fields.List(fields.Nested(AgeRuleSettings), load_default=list)
    # After this many late cancellations and no-shows, a client prepays at booking.
    prepay_after_incidents = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=20)
    )
    prepayment_clause = fields.String(
        load_default="Clients with {count} late cancellations or no-shows prepay at booking."
    )
    refund_clause = fields.String(
        load_default="Refunds are considered case by case and approved by management."
    )


def _settings(clinic: Any) -> dict[str, Any]:
    return settings_of(clinic, NAME, DefaultPolicySettings)


def _cancellation_clause(clinic: Any, settings: dict[str, Any]) -> Clause:
    fee = money(settings["late_cancellation_fee"], clinic.currency)
    text = settings["cancellation_clause"].format(
        hours=settings["cancellation_window_hours"], fee=fee.format()
    )
    return Clause(f"{NAME}.cancellation", text, SOURCE)


def _within_window(booking: Any, at: datetime, hours: int) -> bool:
    return as_utc(at) > as_utc(booking.starts_at) - timedelta(hours=hours)


def _deposit_of(booking: Any) -> Any:
    return getattr(booking, "deposit_paid", None)


@hookimpl(trylast=True)
def clinic_settings_schema() -> Schema:
    return DefaultPolicySettings()


@hookimpl(trylast=True)
def clinic_booking_requirements(
    clinic: Any, service: Any, client: Any, starts_at: datetime
) -> BookingRequirements:
    settings = _settings(clinic)
    deposit = money(settings["deposit"], clinic.currency) if settings["deposit"] else None
    clauses = [_cancellation_clause(clinic, settings)]
    threshold = settings["prepay_after_incidents"]
    prepay = threshold is not None and getattr(client, "policy_incidents", 0) >= threshold
    if prepay:
        text = settings["prepayment_clause"].format(count=threshold)
        clauses.append(Clause(f"{NAME}.prepayment", text, SOURCE))
    return BookingRequirements(
        clauses=tuple(clauses),
        guarantee=settings["guarantee"],
        deposit=deposit or None,
        prepayment=service.price if prepay else None,
        prepayment_refundable=False,
    )


@hookimpl(trylast=True)
def clinic_cancellation_decision(
    clinic: Any, booking: Any, at: datetime, by: str
) -> CancellationDecision:
    settings = _settings(clinic)
    late = by == "client" and _within_window(booking, at, settings["cancellation_window_hours"])
    fee = money(settings["late_cancellation_fee"], clinic.currency) if late else None
    deposit = _deposit_of(booking)
    if not deposit:
        outcome = DepositOutcome.none
    elif late and fee:
        outcome = DepositOutcome.forfeited
    else:
        outcome = DepositOutcome.refunded
    return CancellationDecision(
        clause=_cancellation_clause(clinic, settings),
        fee=fee or money(None, clinic.currency),
        deposit=outcome,
        within_notice_window=late,
        counts_as_late_cancellation=late,
    )


@hookimpl(trylast=True)
def clinic_reschedule_decision(
    clinic: Any, booking: Any, new_starts_at: datetime, at: datetime
) -> RescheduleDecision:
    settings = _settings(clinic)
    late = _within_window(booking, at, settings["cancellation_window_hours"])
    fee = money(settings["late_cancellation_fee"] if late else None, clinic.currency)
    notice = settings["deposit_moves_with_notice_hours"]
    if not _deposit_of(booking):
        deposit = DepositOutcome.none
    elif notice is not None and _within_window(booking, at, notice):
        deposit = DepositOutcome.forfeited
    else:
        deposit = DepositOutcome.moved
    return RescheduleDecision(
        clause=_cancellation_clause(clinic, settings),
        allowed=True,
        fee=fee,
        deposit=deposit,
        counts_as_late_cancellation=late and bool(fee),
    )


@hookimpl(trylast=True)
def clinic_no_show_decision(clinic: Any, booking: Any) -> NoShowDecision:
    settings = _settings(clinic)
    fee = money(settings["no_show_fee"], clinic.currency)
    deposit = _deposit_of(booking)
    return NoShowDecision(
        clause=_cancellation_clause(clinic, settings),
        fee=fee,
        deposit=DepositOutcome.forfeited if deposit else DepositOutcome.none,
    )


@hookimpl(trylast=True)
def clinic_late_arrival_decision(
    clinic: Any, booking: Any, arrived_at: datetime
) -> LateArrivalDecision:
    settings = _settings(clinic)
    late_by = as_utc(arrived_at) - as_utc(booking.starts_at)
    minutes = max(0, int(late_by.total_seconds() // 60))
    if minutes <= settings["late_arrival_grace_minutes"]:
        options: tuple[LateArrivalOption, ...] = (LateArrivalOption.proceed,)
    else:
        options = (LateArrivalOption.shorten_full_price, LateArrivalOption.reschedule_with_fee)
    return LateArrivalDecision(
        clause=_cancellation_clause(clinic, settings),
        minutes_late=minutes,
        options=options,
        reschedule_fee=money(settings["late_cancellation_fee"], clinic.currency),
    )


@hookimpl(trylast=True)
def clinic_refund_decision(clinic: Any, item: Any, reason: str, at: datetime) -> RefundDecision:
    settings = _settings(clinic)
    if item.kind == "gift_certificate":
        terms = clinic_gift_card_terms(clinic)
        if not terms.refundable:
            return RefundDecision(
                clause=terms.clause,
                outcome=RefundOutcome.refused,
                amount=money(None, clinic.currency),
                refusal_reason=terms.clause.text,
            )
    return RefundDecision(
        clause=Clause(f"{NAME}.refund", settings["refund_clause"], SOURCE),
        outcome=RefundOutcome.refund,
        amount=item.amount_paid,
        requires_manager_approval=settings["refunds_require_manager_approval"],
    )


@hookimpl(trylast=True)
def clinic_store_credit_terms(clinic: Any, reason: str) -> StoreCreditTerms:
    months = _settings(clinic)["store_credit_valid_months"]
    text = (
        f"Store credit is valid for {months} months from the date of issue."
        if months
        else "Store credit does not expire."
    )
    return StoreCreditTerms(
        clause=Clause(f"{NAME}.store_credit", text, SOURCE),
        valid_for=None,
        valid_for_months=months,
    )


@hookimpl(trylast=True)
def clinic_package_terms(clinic: Any, package: Any) -> PackageTerms:
    paid_first = _settings(clinic)["packages_paid_in_full_before_first_treatment"]
    text = (
        "Packages are paid in full before the first treatment; unused sessions become store credit."
        if paid_first
        else "Unused package sessions become store credit."
    )
    return PackageTerms(
        clause=Clause(f"{NAME}.packages", text, SOURCE),
        paid_in_full_before_first_treatment=paid_first,
        unused_sessions=RefundOutcome.store_credit,
    )


@hookimpl(trylast=True)
def clinic_gift_card_terms(clinic: Any) -> GiftCardTerms:
    return GiftCardTerms(
        clause=Clause(
            f"{NAME}.gift_cards",
            "Gift cards are not refundable and cannot be redeemed for cash.",
            SOURCE,
        )
    )


@hookimpl(trylast=True)
def clinic_age_rules(clinic: Any) -> list[AgeRule]:
    return [
        AgeRule(
            clause=Clause(
                f"{NAME}.age.{rule['applies_to']}.{rule['under']}", rule["clause"], SOURCE
            ),
            under=rule["under"],
            requires=rule["requires"],
            applies_to=rule["applies_to"],
        )
        for rule in _settings(clinic)["age_rules"]
    ]


@hookimpl(trylast=True)
def clinic_gratuity_allowed(clinic: Any, service: Any, provider: Any) -> GratuityDecision:
    allowed = _settings(clinic)["gratuity_allowed"]
    text = "Gratuities are optional." if allowed else "Gratuities are not accepted."
    return GratuityDecision(clause=Clause(f"{NAME}.gratuity", text, SOURCE), allowed=allowed)
