"""The platform's clinic policy: the shapes published policies share, in each clinic's own words.

Every clinic gets it, registered ``trylast`` so that a policy plugin a clinic
enables answers first. It holds the shapes only: a guarantee and a deposit; a
notice window with a fee table by service category and duration; money paid
ahead that is refunded, credited, kept or moved with notice; prepayment after
repeated late cancellations and no-shows; a late-arrival grace; clients turned
away and rescheduled; product returns by rule; services refunded, refused or
reviewed by management; store credit, packages, gift cards, promotions and
gratuity. Every number and every clause's words are settings under
``[plugins.settings.default_policy]`` in the clinic's tenants/ file, checked
when the file loads.

A clause the clinic has not worded falls back to another of its own clauses
(the deposit to the cancellation clause, for instance) or else to the
platform's plain wording below, never to another clinic's. With no settings
the policy is lenient: no guarantee, no deposit, free cancellation, refunds
decided by a manager. ``docs/plugins/default_policy.md`` lists every setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

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
from core.hooks.settings import Amount, FeeRow, fee_for, money, settings_of, within_notice
from core.hooks.views import (
    BookingView,
    ClientView,
    ClinicView,
    PackageView,
    ProviderView,
    RefundItem,
    ServiceView,
)
from core.money import Money

NAME = "default_policy"
#: The source of a clause in the platform's own words; a clinic's words carry its ``source``.
PLATFORM_SOURCE = "platform default policy"

#: What a clause may say about the clinic's numbers; each is filled in when the clause is quoted.
PLACEHOLDERS = {"hours": 48, "fee": "$50.00", "count": 3, "minutes": 15, "months": 12}

#: The platform's plain wording, quoted only where a clinic has not worded the clause.
PLATFORM_WORDS = {
    "cancellation": "Please give at least {hours} hours' notice to cancel or reschedule; "
    "later cancellations and missed appointments may be charged {fee}.",
    # With a fee table, the fee depends on the service, so no one amount is named.
    "cancellation_by_service": "Please give at least {hours} hours' notice to cancel or "
    "reschedule; later cancellations and missed appointments may be charged the fee for the "
    "service booked.",
    "prepayment": "Clients with {count} late cancellations or no-shows prepay at booking.",
    "refund": "Refunds are considered case by case and approved by management.",
    "gift_cards": "Gift cards are not refundable and cannot be redeemed for cash.",
    "promotions": "Promotions cannot be combined with other offers.",
}

#: A clause a clinic has not worded quotes this other clause of the clinic's instead.
FALLBACK = {
    "deposit": "cancellation",
    "late_arrival": "cancellation",
    "services": "refund",
    "service_review": "services",
    "products": "refund",
}

#: Every clause of the policy, by the name its id and its setting (``<name>_clause``) carry.
CLAUSES = (
    "reservation",
    "cancellation",
    "deposit",
    "prepayment",
    "late_arrival",
    "turned_away",
    "refund",
    "services",
    "products",
    "packages",
    "store_credit",
    "gift_cards",
    "promotions",
    "gratuity",
)

#: The clause a store credit's terms quote, by why it was issued, when the clinic has
#: no store credit clause of its own: the rule the credit comes from.
CREDIT_ORIGIN = {
    "package_closed": "packages",
    "product_return": "products",
    "service_return": "services",
    "prepayment_credited": "prepayment",
    "deposit_credited": "deposit",
}

#: What a product-return rule can match: the product, its condition, or why it comes back.
RETURN_WHEN = (
    "any",
    "prescription",
    "unopened",
    "opened",
    "defective",
    "allergic_reaction",
    "changed_mind",
    "dissatisfied",
)
#: What a note must document, for a rule that needs one, in the refusal that asks for it.
NOTE_SUBJECT = {"allergic_reaction": "allergic reaction", "defective": "defect"}
REFUND_REASONS = ("changed_mind", "dissatisfied", "allergic_reaction", "defective", "other")


class ClauseText(fields.String):
    """A clause in the clinic's own words; it may name the numbers it states.

    ``{hours}`` (the notice window), ``{fee}`` (the late cancellation fee),
    ``{count}`` (incidents before prepayment), ``{minutes}`` (the late-arrival
    grace) and ``{months}`` (store credit validity) are filled in from the
    same settings, so words and numbers cannot disagree.
    """

    default_error_messages = {
        # Braces doubled: marshmallow formats the message before it is shown.
        "placeholder": "Unknown placeholder or stray brace: the text may name {{hours}}, "
        "{{fee}}, {{count}}, {{minutes}} or {{months}}; write {{{{ and }}}} for a literal brace."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(min=1, max=2000), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.format(**PLACEHOLDERS)
        except (KeyError, IndexError, ValueError, AttributeError):
            raise self.make_error("placeholder") from None
        return text


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


class ProductReturnRule(Schema):
    """One sentence of a clinic's product-return policy: which returns, on what terms, for what.

    Rules are tried in order and the first that matches decides; a return no
    rule matches is refused with ``products_clause``.
    """

    when = fields.String(required=True, validate=validate.OneOf(RETURN_WHEN))
    outcome = fields.Enum(RefundOutcome, by_value=True, required=True)
    within_days = fields.Integer(load_default=None, validate=validate.Range(min=0, max=3650))
    needs_receipt = fields.Boolean(load_default=False)
    needs_note = fields.Boolean(load_default=False)
    requires_manager_approval = fields.Boolean(load_default=False)
    clause = ClauseText(load_default=None)


class ServiceReview(Schema):
    """The case management may still grant when services are not refundable."""

    outcome = fields.Enum(
        RefundOutcome,
        by_value=True,
        required=True,
        validate=validate.OneOf([RefundOutcome.refund, RefundOutcome.store_credit]),
    )
    within_days = fields.Integer(load_default=None, validate=validate.Range(min=0, max=3650))
    needs_provider_assessment = fields.Boolean(load_default=False)
    not_for_reasons = fields.List(
        fields.String(validate=validate.OneOf(REFUND_REASONS)), load_default=list
    )
    clause = ClauseText(load_default=None)


def _deposit_outcome(*allowed: DepositOutcome) -> fields.Enum:
    return fields.Enum(
        DepositOutcome,
        by_value=True,
        load_default=allowed[0],
        validate=validate.OneOf(allowed),
    )


def _hours(default: int | None) -> fields.Integer:
    return fields.Integer(
        load_default=default,
        allow_none=default is None,
        validate=validate.Range(min=0, max=24 * 30),
    )


class DefaultPolicySettings(Schema):
    """The numbers and words of a clinic's policy, from its tenants/ file."""

    # Where the clinic's words come from (its policy page); platform words name the platform.
    source = fields.String(load_default=None, validate=validate.Length(min=1, max=200))

    # Booking.
    guarantee = fields.Enum(Guarantee, by_value=True, load_default=Guarantee.none)
    deposit = Amount(load_default=None, allow_none=True)
    # The clauses a client is shown when booking, in order: names from CLAUSES or ``notices``.
    booking_clauses = fields.List(
        fields.String(validate=validate.Length(min=1, max=63)),
        load_default=lambda: ["cancellation"],
    )
    # Sentences quoted at booking that decide nothing (a reminder disclaimer, say).
    notices = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,62}$")),
        values=ClauseText(),
        load_default=None,
        allow_none=True,
    )
    reservation_clause = ClauseText(load_default=None)

    # Cancellation, reschedule and no-show.
    cancellation_window_hours = _hours(24)
    fees = fields.List(fields.Nested(FeeRow), load_default=list)
    late_cancellation_fee = Amount(load_default="0.00")
    no_show_fee = Amount(load_default=None, allow_none=True)
    paid_ahead_replaces_fee = fields.Boolean(load_default=False)
    deposit_on_cancellation = _deposit_outcome(
        DepositOutcome.refunded, DepositOutcome.credited, DepositOutcome.forfeited
    )
    deposit_moves_with_notice_hours = _hours(None)
    cancellation_clause = ClauseText(load_default=None)
    deposit_clause = ClauseText(load_default=None)

    # Prepayment after repeated late cancellations and no-shows.
    prepay_after_incidents = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=20)
    )
    prepayment_clause = ClauseText(load_default=None)

    # Late arrival, and clients turned away as they came.
    late_arrival_grace_minutes = fields.Integer(
        load_default=15, validate=validate.Range(min=0, max=240)
    )
    late_arrival_same_day_free = fields.Boolean(load_default=False)
    late_arrival_clause = ClauseText(load_default=None)
    turned_away_clause = ClauseText(load_default=None)

    # Refunds, returns and exchanges.
    refunds_require_manager_approval = fields.Boolean(load_default=True)
    refund_clause = ClauseText(load_default=None)
    services_refundable = fields.Boolean(load_default=True)
    services_clause = ClauseText(load_default=None)
    service_review = fields.Nested(ServiceReview, load_default=None, allow_none=True)
    product_returns = fields.List(fields.Nested(ProductReturnRule), load_default=list)
    products_clause = ClauseText(load_default=None)

    # Packages, store credit, gift cards and promotions.
    package_refunds = fields.Enum(
        RefundOutcome,
        by_value=True,
        load_default=RefundOutcome.refund,
        validate=validate.OneOf([RefundOutcome.refund, RefundOutcome.store_credit]),
    )
    packages_paid_in_full_before_first_treatment = fields.Boolean(load_default=True)
    package_credit_services_of_equal_or_greater_value_only = fields.Boolean(load_default=False)
    packages_clause = ClauseText(load_default=None)
    # 0: store credit never expires.
    store_credit_valid_months = fields.Integer(
        load_default=12, allow_none=True, validate=validate.Range(min=0, max=120)
    )
    store_credit_clause = ClauseText(load_default=None)
    gift_cards_clause = ClauseText(load_default=None)
    promotional_items_refundable = fields.Boolean(load_default=True)
    promotions_combine = fields.Boolean(load_default=True)
    promotions_clause = ClauseText(load_default=None)

    # Gratuity.
    gratuity_allowed = fields.Boolean(load_default=True)
    # Categories on which a gratuity is always optional, whoever performs the service.
    gratuity_categories = fields.List(fields.String(), load_default=list)
    # Credentials (matched without regard to case) whose services take no gratuity.
    no_gratuity_credentials = fields.List(fields.String(), load_default=list)
    gratuity_clause = ClauseText(load_default=None)

    age_rules = fields.List(fields.Nested(AgeRuleSettings), load_default=list)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        notices = data.get("notices") or {}
        for name in data.get("booking_clauses") or []:
            if name in notices:
                continue
            if name not in CLAUSES:
                known = ", ".join([*CLAUSES, *notices])
                errors.setdefault("booking_clauses", []).append(
                    f"{name!r} is neither a clause of this policy nor a notice (known: {known})"
                )
            elif not _worded(data, name) and name in ("reservation", "turned_away"):
                errors.setdefault("booking_clauses", []).append(
                    f"{name!r} has no words: set {name}_clause"
                )
        clashes = sorted(set(notices) & set(CLAUSES))
        if clashes:
            errors["notices"] = [f"{', '.join(clashes)}: already a clause of this policy"]
        whens = [rule["when"] for rule in data.get("product_returns") or []]
        repeated = sorted({w for w in whens if whens.count(w) > 1})
        if repeated:
            errors["product_returns"] = [f"one rule per 'when': {', '.join(repeated)} repeats"]
        if errors:
            raise ValidationError(errors)


def _worded(settings: dict[str, Any], name: str) -> bool:
    """Return whether the clinic wrote this clause's words itself."""
    return settings.get(f"{name}_clause") is not None


@dataclass(frozen=True)
class _Policy:
    """One clinic's settings, and the clauses and fees they make."""

    clinic: ClinicView
    settings: dict[str, Any]

    def zero(self) -> Money:
        return Money.zero(self.clinic.currency)

    def words(self, text: str) -> str:
        """Fill in the numbers a clause names, from the same settings."""
        if "{" not in text:
            return text
        settings = self.settings
        return text.format(
            hours=settings["cancellation_window_hours"],
            fee=money(settings["late_cancellation_fee"], self.clinic.currency).format(),
            count=settings["prepay_after_incidents"],
            minutes=settings["late_arrival_grace_minutes"],
            months=settings["store_credit_valid_months"],
        )

    def own(self, clause_id: str, text: str) -> Clause:
        """A clause in the clinic's words."""
        return Clause(f"{NAME}.{clause_id}", self.words(text), self.settings["source"])

    def platform(self, name: str, text: str) -> Clause:
        """A clause in the platform's words, for a clinic that has not worded it."""
        return Clause(f"{NAME}.{name}", self.words(text), PLATFORM_SOURCE)

    def clause(self, name: str, platform_text: str | None = None) -> Clause:
        """The clause ``name`` in the clinic's words, or its fallback, or the platform's words."""
        found = self.clause_if_any(name, platform_text)
        if found is None:
            raise LookupError(f"no words for the clause {name!r}, the clinic's or the platform's")
        return found

    def clause_if_any(self, name: str, platform_text: str | None = None) -> Clause | None:
        """The clause ``name`` as :meth:`clause` finds it, or None where nothing words it."""
        if _worded(self.settings, name):
            return self.own(name, self.settings[f"{name}_clause"])
        if name in FALLBACK:
            return self.clause_if_any(FALLBACK[name])
        by_service = name == "cancellation" and self.settings["fees"]
        text = platform_text or PLATFORM_WORDS.get(
            "cancellation_by_service" if by_service else name
        )
        return self.platform(name, text) if text is not None else None

    def quoted(self, name: str) -> Clause | None:
        """A clause named in ``booking_clauses``: one of the policy's, or a notice."""
        notices = self.settings["notices"] or {}
        if name in notices:
            return self.own(f"notices.{name}", notices[name])
        return self.clause_if_any(name)

    def late_fee(self, booking: BookingView) -> Money:
        """The fee for a late cancellation of ``booking``: its table row, else the flat fee."""
        service = getattr(booking, "service", None)
        if service is not None and self.settings["fees"]:
            found = fee_for(self.settings["fees"], service, self.clinic.currency)
            if found is not None:
                return found
        return money(self.settings["late_cancellation_fee"], self.clinic.currency)

    def no_show_fee(self, booking: BookingView) -> Money:
        flat = self.settings["no_show_fee"]
        return self.late_fee(booking) if flat is None else money(flat, self.clinic.currency)

    def within(self, booking: BookingView, at: datetime, hours: int | None = None) -> bool:
        window = self.settings["cancellation_window_hours"] if hours is None else hours
        return within_notice(booking.starts_at, at, window)


def _policy(clinic: ClinicView) -> _Policy:
    return _Policy(clinic, settings_of(clinic, NAME, DefaultPolicySettings))


def _paid(booking: BookingView) -> bool:
    return booking.deposit_paid is not None


def _prepaid(booking: BookingView) -> bool:
    """Whether the money paid ahead is a prepayment (the whole price) rather than a deposit."""
    return booking.prepaid


def _refused(clause: Clause, currency: str, why: str | None = None) -> RefundDecision:
    return RefundDecision(
        clause, RefundOutcome.refused, Money.zero(currency), refusal_reason=why or clause.text
    )


def _age(item: RefundItem, at: datetime) -> timedelta:
    sold_at = getattr(item, "sold_at", None)
    return as_utc(at) - as_utc(sold_at) if sold_at is not None else timedelta(0)


@hookimpl(trylast=True)
def clinic_settings_schema() -> Schema:
    return DefaultPolicySettings()


@hookimpl(trylast=True)
def clinic_booking_requirements(
    clinic: ClinicView, service: ServiceView, client: ClientView, starts_at: datetime
) -> BookingRequirements:
    policy = _policy(clinic)
    settings = policy.settings
    clauses = [policy.quoted(name) for name in settings["booking_clauses"]]
    threshold = settings["prepay_after_incidents"]
    prepay = threshold is not None and client.policy_incidents >= threshold
    if prepay:
        clauses.append(policy.clause("prepayment"))
    unique = {c.id: c for c in clauses if c is not None}
    deposit = money(settings["deposit"], clinic.currency) if settings["deposit"] else None
    return BookingRequirements(
        clauses=tuple(unique.values()),
        guarantee=settings["guarantee"],
        deposit=deposit or None,
        prepayment=service.price if prepay else None,
        prepayment_refundable=False,
    )


@hookimpl(trylast=True)
def clinic_cancellation_decision(
    clinic: ClinicView, booking: BookingView, at: datetime, by: str
) -> CancellationDecision:
    policy = _policy(clinic)
    settings = policy.settings
    late = by == "client" and policy.within(booking, at)
    owed = policy.late_fee(booking) if late else policy.zero()
    paid = _paid(booking)
    if not paid:
        deposit = DepositOutcome.none
    elif by != "client":
        deposit = DepositOutcome.refunded  # the clinic cancelled: the client keeps their money
    elif late and owed:
        deposit = DepositOutcome.forfeited
    else:
        # With notice, or late where lateness costs nothing: as the clinic's policy says.
        deposit = settings["deposit_on_cancellation"]
    covered = paid and settings["paid_ahead_replaces_fee"]
    return CancellationDecision(
        clause=policy.clause("cancellation"),
        fee=policy.zero() if covered else owed,
        deposit=deposit,
        within_notice_window=late,
        counts_as_late_cancellation=late,
    )


@hookimpl(trylast=True)
def clinic_reschedule_decision(
    clinic: ClinicView, booking: BookingView, new_starts_at: datetime, at: datetime
) -> RescheduleDecision:
    policy = _policy(clinic)
    settings = policy.settings
    late = policy.within(booking, at)
    owed = policy.late_fee(booking) if late else policy.zero()
    paid = _paid(booking)
    notice = settings["deposit_moves_with_notice_hours"]
    if not paid:
        deposit = DepositOutcome.none
    elif notice is not None and policy.within(booking, at, notice):
        deposit = DepositOutcome.forfeited
    else:
        deposit = DepositOutcome.moved
    if not paid:
        clause = policy.clause("cancellation")
    else:
        clause = policy.clause("prepayment" if _prepaid(booking) else "deposit")
    covered = paid and settings["paid_ahead_replaces_fee"]
    return RescheduleDecision(
        clause=clause,
        allowed=True,
        fee=policy.zero() if covered else owed,
        deposit=deposit,
        counts_as_late_cancellation=late and bool(owed),
    )


@hookimpl(trylast=True)
def clinic_no_show_decision(clinic: ClinicView, booking: BookingView) -> NoShowDecision:
    policy = _policy(clinic)
    paid = _paid(booking)
    covered = paid and policy.settings["paid_ahead_replaces_fee"]
    return NoShowDecision(
        clause=policy.clause("cancellation"),
        fee=policy.zero() if covered else policy.no_show_fee(booking),
        deposit=DepositOutcome.forfeited if paid else DepositOutcome.none,
    )


@hookimpl(trylast=True)
def clinic_late_arrival_decision(
    clinic: ClinicView, booking: BookingView, arrived_at: datetime
) -> LateArrivalDecision:
    policy = _policy(clinic)
    settings = policy.settings
    late_by = as_utc(arrived_at) - as_utc(booking.starts_at)
    minutes = max(0, int(late_by.total_seconds() // 60))
    if minutes <= settings["late_arrival_grace_minutes"]:
        options: tuple[LateArrivalOption, ...] = (LateArrivalOption.proceed,)
    else:
        options = (LateArrivalOption.shorten_full_price, LateArrivalOption.reschedule_with_fee)
        if settings["late_arrival_same_day_free"]:
            options += (LateArrivalOption.reschedule_same_day_free,)
    return LateArrivalDecision(
        clause=policy.clause("late_arrival"),
        minutes_late=minutes,
        options=options,
        reschedule_fee=policy.late_fee(booking),
    )


@hookimpl(trylast=True)
def clinic_turned_away_decision(
    clinic: ClinicView, booking: BookingView, reason: str
) -> RescheduleDecision | None:
    policy = _policy(clinic)
    clause = policy.clause_if_any("turned_away")
    if clause is None:
        return None  # the clinic's policy turns no visits away
    return RescheduleDecision(
        clause=clause,
        allowed=True,
        fee=policy.late_fee(booking),
        deposit=DepositOutcome.moved if _paid(booking) else DepositOutcome.none,
    )


def _product_return(policy: _Policy, item: RefundItem, reason: str, at: datetime) -> RefundDecision:
    currency = policy.clinic.currency
    condition = getattr(item, "condition", None)
    for rule in policy.settings["product_returns"]:
        when = rule["when"]
        if when == "prescription":
            matches = bool(getattr(item, "prescription", False))
        elif when in ("unopened", "opened"):
            matches = condition == when
        elif when in ("defective", "allergic_reaction"):
            matches = when in (reason, condition)
        else:
            matches = when in ("any", reason)
        if not matches:
            continue
        clause = (
            policy.own(f"products.{when}", rule["clause"])
            if rule["clause"] is not None
            else policy.clause("products")
        )
        if rule["outcome"] == RefundOutcome.refused:
            return _refused(clause, currency)
        if rule["needs_receipt"] and not getattr(item, "has_receipt", True):
            return _refused(clause, currency, "A return needs the receipt.")
        days = rule["within_days"]
        if days is not None and _age(item, at) > timedelta(days=days):
            return _refused(
                clause, currency, f"Returns are accepted within {days} days of purchase."
            )
        if rule["needs_note"] and not (getattr(item, "note", None) or "").strip():
            subject = NOTE_SUBJECT.get(when, "reason for the return")
            return _refused(clause, currency, f"The {subject} must be documented in the note.")
        return RefundDecision(
            clause,
            rule["outcome"],
            item.amount_paid,
            requires_manager_approval=rule["requires_manager_approval"],
        )
    return _refused(policy.clause("products"), currency)


def _service_refund(policy: _Policy, item: RefundItem, reason: str, at: datetime) -> RefundDecision:
    currency = policy.clinic.currency
    refused = policy.clause("services")
    review = policy.settings["service_review"]
    if review is None or reason in review["not_for_reasons"]:
        return _refused(refused, currency)
    days = review["within_days"]
    if days is not None and _age(item, at) > timedelta(days=days):
        return _refused(refused, currency)
    clause = (
        policy.own("service_review", review["clause"])
        if review["clause"] is not None
        else policy.clause("service_review")
    )
    if review["needs_provider_assessment"] and not getattr(item, "assessed_by_provider", False):
        return _refused(clause, currency, "A provider must assess the case first.")
    # A case under review always waits for a manager.
    return RefundDecision(
        clause, review["outcome"], item.amount_paid, requires_manager_approval=True
    )


@hookimpl(trylast=True)
def clinic_refund_decision(
    clinic: ClinicView, item: RefundItem, reason: str, at: datetime
) -> RefundDecision:
    policy = _policy(clinic)
    settings = policy.settings
    kind = item.kind
    promotional = bool(getattr(item, "promotional", False))
    if kind == "gift_certificate" or (promotional and not settings["promotional_items_refundable"]):
        return _refused(policy.clause("gift_cards"), clinic.currency)
    if kind == "package" and settings["package_refunds"] == RefundOutcome.store_credit:
        return RefundDecision(
            policy.clause("packages", _packages_words(settings)),
            RefundOutcome.store_credit,
            item.amount_paid,
        )
    if kind == "product" and settings["product_returns"]:
        return _product_return(policy, item, reason, at)
    if kind == "service" and not settings["services_refundable"]:
        return _service_refund(policy, item, reason, at)
    clause = policy.clause({"product": "products", "service": "services"}.get(kind, "refund"))
    return RefundDecision(
        clause=clause,
        outcome=RefundOutcome.refund,
        amount=item.amount_paid,
        requires_manager_approval=settings["refunds_require_manager_approval"],
    )


def _store_credit_words(months: int | None) -> str:
    if months:
        return "Store credit is valid for {months} months from the date of issue."
    return "Store credit does not expire."


def _packages_words(settings: dict[str, Any]) -> str:
    if settings["packages_paid_in_full_before_first_treatment"]:
        return (
            "Packages are paid in full before the first treatment; "
            "unused sessions become store credit."
        )
    return "Unused package sessions become store credit."


@hookimpl(trylast=True)
def clinic_store_credit_terms(clinic: ClinicView, reason: str) -> StoreCreditTerms:
    policy = _policy(clinic)
    settings = policy.settings
    months = settings["store_credit_valid_months"] or None
    origin = CREDIT_ORIGIN.get(reason)
    if _worded(settings, "store_credit"):
        clause = policy.clause("store_credit")
    elif origin is not None and _worded(settings, origin):
        # No words of the clinic's own on store credit: quote the rule the credit comes from.
        clause = policy.clause(origin)
    else:
        clause = policy.platform("store_credit", _store_credit_words(months))
    return StoreCreditTerms(
        clause=clause,
        valid_for=None,
        valid_for_months=months,
        services_of_equal_or_greater_value_only=reason == "package_closed"
        and settings["package_credit_services_of_equal_or_greater_value_only"],
    )


@hookimpl(trylast=True)
def clinic_package_terms(clinic: ClinicView, package: PackageView) -> PackageTerms:
    policy = _policy(clinic)
    settings = policy.settings
    paid_first = settings["packages_paid_in_full_before_first_treatment"]
    if getattr(package, "promotional", False) and not settings["promotional_items_refundable"]:
        return PackageTerms(
            clause=policy.clause("gift_cards"),
            paid_in_full_before_first_treatment=paid_first,
            unused_sessions=RefundOutcome.refused,
        )
    return PackageTerms(
        clause=policy.clause("packages", _packages_words(settings)),
        paid_in_full_before_first_treatment=paid_first,
        unused_sessions=RefundOutcome.store_credit,
    )


@hookimpl(trylast=True)
def clinic_gift_card_terms(clinic: ClinicView) -> GiftCardTerms:
    policy = _policy(clinic)
    combine = policy.settings["promotions_combine"]
    return GiftCardTerms(
        clause=policy.clause("gift_cards" if combine else "promotions"),
        refundable=False,
        redeemable_for_cash=False,
        combinable_with_promotions=combine,
    )


@hookimpl(trylast=True)
def clinic_age_rules(clinic: ClinicView) -> list[AgeRule]:
    policy = _policy(clinic)
    return [
        AgeRule(
            clause=Clause(
                f"{NAME}.age.{rule['applies_to']}.{rule['under']}",
                rule["clause"],
                policy.settings["source"] or PLATFORM_SOURCE,
            ),
            under=rule["under"],
            requires=rule["requires"],
            applies_to=rule["applies_to"],
        )
        for rule in policy.settings["age_rules"]
    ]


@hookimpl(trylast=True)
def clinic_gratuity_allowed(
    clinic: ClinicView, service: ServiceView, provider: ProviderView
) -> GratuityDecision:
    policy = _policy(clinic)
    settings = policy.settings
    if getattr(service, "category", None) in settings["gratuity_categories"]:
        allowed = True
    else:
        credential = (getattr(provider, "credential", None) or "").strip().lower()
        barred = {c.strip().lower() for c in settings["no_gratuity_credentials"]}
        allowed = settings["gratuity_allowed"] and credential not in barred
    words = "Gratuities are optional." if allowed else "Gratuities are not accepted."
    return GratuityDecision(clause=policy.clause("gratuity", words), allowed=allowed)
