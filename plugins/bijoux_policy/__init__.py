"""Bijoux Med Spa's Policies & Etiquette Guide: guarantee, cancellation fees, late arrival,
prepayment after repeated no-shows, refunds, product returns, gift certificates and gratuity.

Clauses are quoted from the guide; the numbers (hours, fees, counts, days)
are settings under ``[plugins.settings.bijoux_policy]`` in the clinic's
tenants/ file. ``docs/plugins/bijoux_policy.md`` lists each clause, its
setting and what the guide leaves open.
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
from core.hooks.settings import Amount, FeeRow, fee_for, money, settings_of, within_notice

NAME = "bijoux_policy"
SOURCE = "Bijoux Med Spa, Policies & Etiquette Guide"

RESERVATION = Clause(
    f"{NAME}.reservation",
    "All services require a valid credit card or gift certificate to guarantee the reservation, "
    "so please have your credit card and/or gift certificate ready when booking.",
    SOURCE,
)
CANCELLATION = Clause(
    f"{NAME}.cancellation",
    "We kindly ask that if you need to cancel or reschedule your appointment, please do so with "
    "at least 48 hours notice. Any cancellations or no-shows within this timeframe will incur a "
    "fee automatically charged to the card on file.",
    SOURCE,
)
REMINDERS = Clause(
    f"{NAME}.reminders",
    "Should the appointment reminder system fail for any reason and you do not receive an "
    "appointment reminder, it is still your responsibility to manage your appointment and adhere "
    "to the cancellation policy.",
    SOURCE,
)
PREPAYMENT = Clause(
    f"{NAME}.prepayment",
    "Additionally, if a client has three instances of no-show or late cancellation, they will be "
    "required to prepay for future services at the time of booking. This prepayment is "
    "nonrefundable if the policy is violated. However, if you reschedule your appointment prior "
    "to 24 hours of the appointment time, the prepaid amount will be credited for future "
    "services at Bijoux.",
    SOURCE,
)
LATE_ARRIVAL = Clause(
    f"{NAME}.late_arrival",
    "Our company policy offers two options: 1) You may opt to shorten your treatment to within "
    "the remainder of your appointment time. [...] Abbreviated treatments are charged at full "
    "value, so please plan accordingly. 2) You may prefer to reschedule your appointment at a "
    "more convenient time, however, a cancellation charge will be incurred. If possible, a "
    "missed appointment may be rescheduled within the same day to avoid a charge, if an opening "
    "is available.",
    SOURCE,
)
PROCEDURES = Clause(
    f"{NAME}.procedures",
    "We do not offer refunds on any services appropriately rendered. [...] In such cases, a "
    "refund will be considered on a case-by-case basis. Each case must be assessed by one of our "
    "providers and approved by upper management.",
    SOURCE,
)
PRODUCTS = Clause(
    f"{NAME}.products",
    "We do not offer cash refunds on purchased products. Products may be returned for in-store "
    "credit within 14 days from the date of purchase with a receipt when there is a documented "
    "allergic reaction to the product.",
    SOURCE,
)
DEFECTIVE = Clause(
    f"{NAME}.products.defective",
    "Defective products (e.g. a broken cap) may be exchanged within 14 days of purchase for the "
    "same product only, with a receipt.",
    SOURCE,
)
PRESCRIPTION = Clause(
    f"{NAME}.products.prescription",
    "In accordance with federal law, we do not offer refunds or exchanges on prescription "
    "products for any reason.",
    SOURCE,
)
PACKAGES = Clause(
    f"{NAME}.payments.packages",
    "All packages must be paid in full prior to the time of first treatment.",
    SOURCE,
)
GIFT_CERTIFICATES = Clause(
    f"{NAME}.gift_certificates",
    "Unfortunately, we are unable to process any returns or reimburse any payment transactions "
    "on gift certificates even if lost, misplaced, or stolen. Gift Certificates are not "
    "redeemable for cash.",
    SOURCE,
)
GRATUITY = Clause(
    f"{NAME}.gratuity",
    "Gratuity is not customary for medical services performed by physicians or nurses. "
    "Gratuities for spa services are optional.",
    SOURCE,
)


CHILDREN_AND_PETS = Clause(
    f"{NAME}.children_pets",
    "Patients arriving with children or pets will be rescheduled and charged the late "
    "rescheduling fee.",
    SOURCE,
)


class BijouxPolicySettings(Schema):
    """The numbers of Bijoux's guide; the tenants/ file writes them, this checks them at load."""

    notice_hours = fields.Integer(load_default=48, validate=validate.Range(min=0, max=24 * 14))
    fees = fields.List(fields.Nested(FeeRow), required=True, validate=validate.Length(min=1))
    # The guide names no fee for a category it does not list; this one applies then.
    other_fee = Amount(load_default="50.00")
    late_arrival_grace_minutes = fields.Integer(
        load_default=15, validate=validate.Range(min=0, max=120)
    )
    prepay_after_incidents = fields.Integer(load_default=3, validate=validate.Range(min=1))
    prepayment_credit_notice_hours = fields.Integer(
        load_default=24, validate=validate.Range(min=0, max=24 * 14)
    )
    product_return_days = fields.Integer(load_default=14, validate=validate.Range(min=0))
    # "Gratuities for spa services are optional": the service categories that are spa services.
    spa_categories = fields.List(fields.String(), load_default=lambda: ["esthetician"])
    # "not customary for medical services performed by physicians or nurses"; matched
    # without regard to case.
    no_gratuity_credentials = fields.List(
        fields.String(),
        load_default=lambda: ["physician", "nurse", "md", "do", "rn", "np", "lpn", "lvn"],
    )


def _settings(clinic: Any) -> dict[str, Any]:
    return settings_of(clinic, NAME, BijouxPolicySettings)


def _fee(clinic: Any, service: Any) -> Any:
    settings = _settings(clinic)
    found = fee_for(settings["fees"], service, clinic.currency)
    return found if found is not None else money(settings["other_fee"], clinic.currency)


def _paid(booking: Any) -> bool:
    return bool(getattr(booking, "deposit_paid", None))


@hookimpl
def clinic_settings_schema() -> Schema:
    return BijouxPolicySettings()


@hookimpl
def clinic_booking_requirements(
    clinic: Any, service: Any, client: Any, starts_at: datetime
) -> BookingRequirements:
    threshold = _settings(clinic)["prepay_after_incidents"]
    if getattr(client, "policy_incidents", 0) >= threshold:
        return BookingRequirements(
            clauses=(RESERVATION, CANCELLATION, PREPAYMENT),
            guarantee=Guarantee.card_or_gift_certificate,
            prepayment=service.price,
            prepayment_refundable=False,
        )
    return BookingRequirements(
        clauses=(RESERVATION, CANCELLATION, REMINDERS),
        guarantee=Guarantee.card_or_gift_certificate,
    )


@hookimpl
def clinic_cancellation_decision(
    clinic: Any, booking: Any, at: datetime, by: str
) -> CancellationDecision:
    late = by == "client" and within_notice(
        booking.starts_at, at, _settings(clinic)["notice_hours"]
    )
    if not _paid(booking):
        deposit = DepositOutcome.none
    elif by != "client":
        deposit = DepositOutcome.refunded  # the clinic cancelled: the client keeps their money
    else:
        # Prepaid after three incidents: kept if the policy is broken again, otherwise credited.
        deposit = DepositOutcome.forfeited if late else DepositOutcome.credited
    return CancellationDecision(
        clause=CANCELLATION,
        fee=_fee(clinic, booking.service)
        if late and not _paid(booking)
        else money(None, clinic.currency),
        deposit=deposit,
        within_notice_window=late,
        counts_as_late_cancellation=late,
    )


@hookimpl
def clinic_reschedule_decision(
    clinic: Any, booking: Any, new_starts_at: datetime, at: datetime
) -> RescheduleDecision:
    settings = _settings(clinic)
    late = within_notice(booking.starts_at, at, settings["notice_hours"])
    if not _paid(booking):
        deposit = DepositOutcome.none
    elif within_notice(booking.starts_at, at, settings["prepayment_credit_notice_hours"]):
        deposit = DepositOutcome.forfeited
    else:
        deposit = DepositOutcome.moved
    return RescheduleDecision(
        clause=PREPAYMENT if _paid(booking) else CANCELLATION,
        allowed=True,
        fee=_fee(clinic, booking.service)
        if late and not _paid(booking)
        else money(None, clinic.currency),
        deposit=deposit,
        counts_as_late_cancellation=late,
    )


@hookimpl
def clinic_no_show_decision(clinic: Any, booking: Any) -> NoShowDecision:
    paid = _paid(booking)
    return NoShowDecision(
        clause=CANCELLATION,
        fee=money(None, clinic.currency) if paid else _fee(clinic, booking.service),
        deposit=DepositOutcome.forfeited if paid else DepositOutcome.none,
    )


@hookimpl
def clinic_late_arrival_decision(
    clinic: Any, booking: Any, arrived_at: datetime
) -> LateArrivalDecision:
    minutes = max(0, int((as_utc(arrived_at) - as_utc(booking.starts_at)).total_seconds() // 60))
    if minutes <= _settings(clinic)["late_arrival_grace_minutes"]:
        options: tuple[LateArrivalOption, ...] = (LateArrivalOption.proceed,)
    else:
        options = (
            LateArrivalOption.shorten_full_price,
            LateArrivalOption.reschedule_with_fee,
            LateArrivalOption.reschedule_same_day_free,
        )
    return LateArrivalDecision(
        clause=LATE_ARRIVAL,
        minutes_late=minutes,
        options=options,
        reschedule_fee=_fee(clinic, booking.service),
    )


@hookimpl
def clinic_turned_away_decision(clinic: Any, booking: Any, reason: str) -> RescheduleDecision:
    return RescheduleDecision(
        clause=CHILDREN_AND_PETS,
        allowed=True,
        fee=_fee(clinic, booking.service),
        deposit=DepositOutcome.moved if _paid(booking) else DepositOutcome.none,
    )


@hookimpl
def clinic_refund_decision(clinic: Any, item: Any, reason: str, at: datetime) -> RefundDecision:
    none = money(None, clinic.currency)

    def refused(clause: Clause, why: str | None = None) -> RefundDecision:
        return RefundDecision(
            clause, RefundOutcome.refused, none, refusal_reason=why or clause.text
        )

    if item.kind == "gift_certificate":
        return refused(GIFT_CERTIFICATES)
    if item.kind == "product":
        if item.prescription:
            return refused(PRESCRIPTION)
        in_time = as_utc(at) - as_utc(item.sold_at) <= timedelta(
            days=_settings(clinic)["product_return_days"]
        )
        if not item.has_receipt:
            return refused(PRODUCTS, "A return needs the receipt.")
        if reason == "allergic_reaction" and in_time:
            if not getattr(item, "note", None):
                return refused(PRODUCTS, "The allergic reaction must be documented in the note.")
            return RefundDecision(PRODUCTS, RefundOutcome.store_credit, item.amount_paid)
        if reason == "defective" and in_time:
            return RefundDecision(DEFECTIVE, RefundOutcome.exchange, item.amount_paid)
        return refused(PRODUCTS)
    if item.kind == "package":
        # The guide is silent on unused sessions: they become store credit, as by default.
        return RefundDecision(PACKAGES, RefundOutcome.store_credit, item.amount_paid)
    # Services: only a corrective case, assessed by a provider, approved by management.
    if not getattr(item, "assessed_by_provider", False):
        return refused(PROCEDURES, "Each case must be assessed by one of our providers first.")
    return RefundDecision(
        PROCEDURES, RefundOutcome.refund, item.amount_paid, requires_manager_approval=True
    )


#: The clause each kind of store credit comes from.
CREDIT_CLAUSE = {"product_return": PRODUCTS, "prepayment_credited": PREPAYMENT}


@hookimpl
def clinic_store_credit_terms(clinic: Any, reason: str) -> StoreCreditTerms:
    # The guide gives store credit no expiry; it does not expire.
    clause = CREDIT_CLAUSE.get(reason, PACKAGES if reason == "package_closed" else PRODUCTS)
    return StoreCreditTerms(clause=clause, valid_for=None, valid_for_months=None)


@hookimpl
def clinic_package_terms(clinic: Any, package: Any) -> PackageTerms:
    return PackageTerms(
        clause=PACKAGES,
        paid_in_full_before_first_treatment=True,
        unused_sessions=RefundOutcome.store_credit,
    )


@hookimpl
def clinic_gift_card_terms(clinic: Any) -> GiftCardTerms:
    return GiftCardTerms(clause=GIFT_CERTIFICATES, refundable=False, redeemable_for_cash=False)


@hookimpl
def clinic_gratuity_allowed(clinic: Any, service: Any, provider: Any) -> GratuityDecision:
    settings = _settings(clinic)
    if service.category in settings["spa_categories"]:
        return GratuityDecision(clause=GRATUITY, allowed=True)
    credential = (getattr(provider, "credential", None) or "").strip().lower()
    medical = credential in {c.lower() for c in settings["no_gratuity_credentials"]}
    return GratuityDecision(clause=GRATUITY, allowed=not medical)
