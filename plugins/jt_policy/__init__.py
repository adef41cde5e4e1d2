"""JT Aesthetic & Co.'s Refund & Store Credit Policy: services, packages, products, gift cards
and promotions, appointment deposits, and concerns about a service.

Clauses are quoted from the policy; the numbers (hours, days, months, the
deposit) are settings under ``[plugins.settings.jt_policy]`` in the
clinic's tenants/ file. ``docs/plugins/jt_policy.md`` lists each clause, its
setting and what the policy leaves open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, fields, validate

from core.clock import as_utc
from core.hooks.decisions import (
    BookingRequirements,
    CancellationDecision,
    Clause,
    DepositOutcome,
    GiftCardTerms,
    Guarantee,
    NoShowDecision,
    PackageTerms,
    RefundDecision,
    RefundOutcome,
    RescheduleDecision,
    StoreCreditTerms,
)
from core.hooks.host import hookimpl
from core.hooks.settings import Amount, money, settings_of, within_notice

NAME = "jt_policy"
SOURCE = "JT Aesthetic & Co., Refund & Store Credit Policy"

SERVICES = Clause(f"{NAME}.services", "All services rendered are non-refundable.", SOURCE)
PACKAGES = Clause(
    f"{NAME}.packages",
    "If you are unable to complete a treatment package you have purchased, the unused portion "
    "may be applied as store credit toward other services of equal or greater value.",
    SOURCE,
)
STORE_CREDIT = Clause(
    f"{NAME}.store_credit", "Store credit is valid for 12 months from the date of issue.", SOURCE
)
PRODUCTS = Clause(
    f"{NAME}.products",
    "Unopened retail products in their original packaging may be returned within 14 days of "
    "purchase for store credit only.",
    SOURCE,
)
OPENED = Clause(
    f"{NAME}.products.opened",
    "Opened or used products cannot be returned due to health and safety regulations.",
    SOURCE,
)
GIFT_CARDS = Clause(
    f"{NAME}.gift_cards",
    "Gift cards, vouchers, and promotional packages are non-refundable and may not be redeemed "
    "for cash.",
    SOURCE,
)
PROMOTIONS = Clause(
    f"{NAME}.promotions",
    "Promotional pricing cannot be combined with other offers unless specifically stated.",
    SOURCE,
)
DEPOSITS = Clause(
    f"{NAME}.deposits",
    "Deposits made to secure appointments are non-refundable. If you need to reschedule, "
    "deposits may be applied toward future appointments with at least 48 hours' notice.",
    SOURCE,
)
CONCERNS = Clause(
    f"{NAME}.concerns",
    "If you have concerns about a service, please reach out to our management team within 7 "
    "days so we may work with you toward a resolution.",
    SOURCE,
)


class JtPolicySettings(Schema):
    """The numbers of JT's policy; the tenants/ file writes them, this checks them at load."""

    # The policy takes deposits but does not publish the amount: the clinic sets it.
    deposit = Amount(required=True)
    deposit_notice_hours = fields.Integer(
        load_default=48, validate=validate.Range(min=0, max=24 * 14)
    )
    store_credit_valid_months = fields.Integer(
        load_default=12, validate=validate.Range(min=1, max=120)
    )
    product_return_days = fields.Integer(load_default=14, validate=validate.Range(min=0))
    concern_days = fields.Integer(load_default=7, validate=validate.Range(min=0))
    promotions_combine = fields.Boolean(load_default=False)


def _settings(clinic: Any) -> dict[str, Any]:
    return settings_of(clinic, NAME, JtPolicySettings)


def _paid(booking: Any) -> bool:
    return bool(getattr(booking, "deposit_paid", None))


@hookimpl
def clinic_settings_schema() -> Schema:
    return JtPolicySettings()


@hookimpl
def clinic_booking_requirements(
    clinic: Any, service: Any, client: Any, starts_at: datetime
) -> BookingRequirements:
    return BookingRequirements(
        clauses=(DEPOSITS, SERVICES),
        guarantee=Guarantee.card_on_file,
        deposit=money(_settings(clinic)["deposit"], clinic.currency) or None,
    )


@hookimpl
def clinic_cancellation_decision(
    clinic: Any, booking: Any, at: datetime, by: str
) -> CancellationDecision:
    late = within_notice(booking.starts_at, at, _settings(clinic)["deposit_notice_hours"])
    if not _paid(booking):
        deposit = DepositOutcome.none
    elif by != "client":
        deposit = DepositOutcome.refunded  # the clinic cancelled: the deposit goes back
    else:
        deposit = DepositOutcome.forfeited  # "Deposits ... are non-refundable."
    return CancellationDecision(
        clause=DEPOSITS,
        fee=money(None, clinic.currency),
        deposit=deposit,
        within_notice_window=late,
        counts_as_late_cancellation=False,
    )


@hookimpl
def clinic_reschedule_decision(
    clinic: Any, booking: Any, new_starts_at: datetime, at: datetime
) -> RescheduleDecision:
    late = within_notice(booking.starts_at, at, _settings(clinic)["deposit_notice_hours"])
    if not _paid(booking):
        deposit = DepositOutcome.none
    else:
        deposit = DepositOutcome.forfeited if late else DepositOutcome.moved
    return RescheduleDecision(
        clause=DEPOSITS, allowed=True, fee=money(None, clinic.currency), deposit=deposit
    )


@hookimpl
def clinic_no_show_decision(clinic: Any, booking: Any) -> NoShowDecision:
    return NoShowDecision(
        clause=DEPOSITS,
        fee=money(None, clinic.currency),
        deposit=DepositOutcome.forfeited if _paid(booking) else DepositOutcome.none,
        counts_toward_prepayment=False,
    )


@hookimpl
def clinic_refund_decision(clinic: Any, item: Any, reason: str, at: datetime) -> RefundDecision:
    settings = _settings(clinic)
    none = money(None, clinic.currency)
    age = as_utc(at) - as_utc(item.sold_at)
    if item.kind == "gift_certificate" or getattr(item, "promotional", False):
        return RefundDecision(
            GIFT_CARDS, RefundOutcome.refused, none, refusal_reason=GIFT_CARDS.text
        )
    if item.kind == "package":
        # The unused part only (the core offers no more), as credit for services.
        return RefundDecision(PACKAGES, RefundOutcome.store_credit, item.amount_paid)
    if item.kind == "product":
        if item.condition != "unopened":
            return RefundDecision(OPENED, RefundOutcome.refused, none, refusal_reason=OPENED.text)
        if age > timedelta(days=settings["product_return_days"]):
            return RefundDecision(
                PRODUCTS,
                RefundOutcome.refused,
                none,
                refusal_reason=f"Returns are accepted within {settings['product_return_days']} "
                "days of purchase.",
            )
        return RefundDecision(PRODUCTS, RefundOutcome.store_credit, item.amount_paid)
    # A service: never refunded. A concern raised in time, whatever it is about, goes to
    # management, whose resolution the policy leaves open; the platform offers store credit
    # for them to approve.
    if reason != "changed_mind" and age <= timedelta(days=settings["concern_days"]):
        return RefundDecision(
            CONCERNS, RefundOutcome.store_credit, item.amount_paid, requires_manager_approval=True
        )
    return RefundDecision(SERVICES, RefundOutcome.refused, none, refusal_reason=SERVICES.text)


@hookimpl
def clinic_store_credit_terms(clinic: Any, reason: str) -> StoreCreditTerms:
    months = _settings(clinic)["store_credit_valid_months"]
    return StoreCreditTerms(
        clause=STORE_CREDIT,
        valid_for=None,
        valid_for_months=months,
        # Only credit from an unfinished package is tied to services of equal or greater value.
        services_of_equal_or_greater_value_only=reason == "package_closed",
    )


@hookimpl
def clinic_package_terms(clinic: Any, package: Any) -> PackageTerms:
    if getattr(package, "promotional", False):
        return PackageTerms(
            clause=GIFT_CARDS,
            paid_in_full_before_first_treatment=True,
            unused_sessions=RefundOutcome.refused,
        )
    return PackageTerms(
        clause=PACKAGES,
        paid_in_full_before_first_treatment=True,
        unused_sessions=RefundOutcome.store_credit,
    )


@hookimpl
def clinic_gift_card_terms(clinic: Any) -> GiftCardTerms:
    return GiftCardTerms(
        clause=PROMOTIONS if not _settings(clinic)["promotions_combine"] else GIFT_CARDS,
        refundable=False,
        redeemable_for_cash=False,
        combinable_with_promotions=_settings(clinic)["promotions_combine"],
    )
