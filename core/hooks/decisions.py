"""The immutable answers plugins give: each names the clause of policy or law it applies."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from core.money import Money


@dataclass(frozen=True, slots=True)
class Clause:
    """A sentence of a clinic's policy, or of a law, that a decision applies.

    ``id`` is stable (``"bijoux.cancellation.48h"``, ``"hipaa.164.524(b)(2)"``)
    so decisions can be grouped and audited; ``text`` is the clinic's own
    words (or the rule's), shown to the client and kept for disputes;
    ``source`` says where the text comes from (a policy page, a CFR section).
    """

    id: str
    text: str
    source: str | None = None


# --- clinic policy decisions -------------------------------------------------


class Guarantee(enum.StrEnum):
    """What a client must leave to hold a reservation."""

    none = "none"
    card_on_file = "card_on_file"
    card_or_gift_certificate = "card_or_gift_certificate"


class DepositOutcome(enum.StrEnum):
    """What happens to a deposit already paid when a booking changes."""

    none = "none"  # there was no deposit
    kept = "kept"  # stays on the booking
    moved = "moved"  # applied to the new appointment
    refunded = "refunded"
    forfeited = "forfeited"
    credited = "credited"  # turned into store credit


@dataclass(frozen=True, slots=True)
class BookingRequirements:
    """What a booking needs before it is confirmed."""

    clauses: tuple[Clause, ...]
    guarantee: Guarantee = Guarantee.none
    deposit: Money | None = None
    prepayment: Money | None = None
    prepayment_refundable: bool = True
    parental_consent_required: bool = False
    refused: bool = False
    refusal_reason: str | None = None


def requirements_from_record(record: Mapping[str, Any]) -> BookingRequirements:
    """Read back the requirements a booking stored (their JSON record) as the typed decision."""

    def money(value: Any) -> Money | None:
        return Money(value["amount"], value["currency"]) if isinstance(value, Mapping) else None

    return BookingRequirements(
        clauses=tuple(
            Clause(c["id"], c["text"], c.get("source")) for c in record.get("clauses") or ()
        ),
        guarantee=Guarantee(record.get("guarantee") or Guarantee.none),
        deposit=money(record.get("deposit")),
        prepayment=money(record.get("prepayment")),
        prepayment_refundable=bool(record.get("prepayment_refundable", True)),
        parental_consent_required=bool(record.get("parental_consent_required", False)),
        refused=bool(record.get("refused", False)),
        refusal_reason=record.get("refusal_reason"),
    )


@dataclass(frozen=True, slots=True)
class CancellationDecision:
    """The outcome of a cancellation: fee, deposit fate, and the clause that says so."""

    clause: Clause
    fee: Money
    deposit: DepositOutcome
    within_notice_window: bool
    counts_as_late_cancellation: bool = False


@dataclass(frozen=True, slots=True)
class RescheduleDecision:
    """Whether and on what terms a booking may move to a new time."""

    clause: Clause
    allowed: bool
    fee: Money
    deposit: DepositOutcome
    counts_as_late_cancellation: bool = False
    refusal_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NoShowDecision:
    """The fee and deposit outcome when a client does not come."""

    clause: Clause
    fee: Money
    deposit: DepositOutcome
    counts_toward_prepayment: bool = True


class LateArrivalOption(enum.StrEnum):
    """What a clinic may offer a client who arrives late."""

    proceed = "proceed"  # full treatment, within tolerance
    shorten_full_price = "shorten_full_price"
    reschedule_with_fee = "reschedule_with_fee"
    reschedule_same_day_free = "reschedule_same_day_free"


@dataclass(frozen=True, slots=True)
class LateArrivalDecision:
    """The options for a late client and the fee that rescheduling carries."""

    clause: Clause
    minutes_late: int
    options: tuple[LateArrivalOption, ...]
    reschedule_fee: Money


class RefundOutcome(enum.StrEnum):
    """What a refund or return request gets."""

    refund = "refund"
    store_credit = "store_credit"
    exchange = "exchange"
    refused = "refused"


@dataclass(frozen=True, slots=True)
class RefundDecision:
    """The answer to a refund, return or exchange request."""

    clause: Clause
    outcome: RefundOutcome
    amount: Money
    requires_manager_approval: bool = False
    refusal_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StoreCreditTerms:
    """How long store credit lasts and what it may be spent on."""

    clause: Clause
    valid_for: timedelta | None  # None: does not expire
    valid_for_months: int | None = None
    services_of_equal_or_greater_value_only: bool = False


@dataclass(frozen=True, slots=True)
class PackageTerms:
    """Rules for treatment packages."""

    clause: Clause
    paid_in_full_before_first_treatment: bool
    unused_sessions: RefundOutcome
    refundable: bool = False


@dataclass(frozen=True, slots=True)
class GiftCardTerms:
    """Rules for gift cards and certificates."""

    clause: Clause
    refundable: bool = False
    redeemable_for_cash: bool = False
    combinable_with_promotions: bool = True
    replace_if_lost: bool = False


@dataclass(frozen=True, slots=True)
class GratuityDecision:
    """Whether a gratuity may be offered on a service, and why."""

    clause: Clause
    allowed: bool


# --- jurisdiction rules ------------------------------------------------------


class PrivacyRight(enum.StrEnum):
    """A right a client may exercise over their data."""

    access = "access"
    correct = "correct"
    delete = "delete"
    portability = "portability"
    opt_out_marketing = "opt_out_marketing"
    opt_out_sale_sharing = "opt_out_sale_sharing"
    restrict = "restrict"
    object = "object"
    withdraw_consent = "withdraw_consent"
    accounting_of_disclosures = "accounting_of_disclosures"
    amend = "amend"
    complain = "complain"
    non_discrimination = "non_discrimination"


@dataclass(frozen=True, slots=True)
class RightOffered:
    """A privacy right a clinic offers, and the rule or clause that grants it."""

    right: PrivacyRight
    clause: Clause


@dataclass(frozen=True, slots=True)
class RequestDeadline:
    """When a privacy request must be answered (and acknowledged), and by which rule."""

    clause: Clause
    due_at: datetime
    acknowledge_by: datetime | None = None
    #: How much longer the rule allows, once, with a notice to the requester.
    extension: timedelta | None = None
    extension_notice_by: datetime | None = None
    #: How far back an access request reaches; ``None``: everything held.
    lookback: timedelta | None = None
    #: Whether the requester's identity must be verified first (an opt-out of
    #: sale or sharing needs none under the CCPA).
    verify_identity: bool = True
    #: A fallback applies only when no other rule sets a deadline (the platform baseline).
    fallback: bool = False


class RecordKind(enum.StrEnum):
    """The groups of a client's records that retention rules speak about."""

    medical_record = "medical_record"  # intake, notes, products, reactions, clinical photos
    documentation = "documentation"  # consents, authorisations, parental permissions
    financial = "financial"  # bookings and what was owed and paid
    contact = "contact"  # contact details, preferences
    marketing = "marketing"  # marketing consents and marketing photos
    messages = "messages"  # the outbox: reminders and other messages
    privacy_request = "privacy_request"  # the record of a privacy request itself


@dataclass(frozen=True, slots=True)
class HeldRecords:
    """One group of a client's records, as a retention rule sees it.

    ``last_service_on`` is the client's last treatment; ``newest_on`` the date
    of the group's newest record (the group is kept as long as that record
    must be); ``date_of_birth`` the client's, for minors' rules.
    """

    kind: RecordKind
    last_service_on: date | None = None
    newest_on: date | None = None
    date_of_birth: date | None = None


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """How long a record must be kept (minimum) and may be kept (maximum)."""

    clause: Clause
    keep_until: date | None = None  # minimum: may not be deleted before
    delete_by: date | None = None  # maximum: must be gone by


@dataclass(frozen=True, slots=True)
class ConsentRequirement:
    """A consent a purpose needs, with the text to show and how it must be captured."""

    clause: Clause
    purpose: str
    required: bool
    method: str = "written"  # written, electronic, verbal_recorded


@dataclass(frozen=True, slots=True)
class AgeRule:
    """An age gate: below ``under`` the action needs ``requires`` (or is refused)."""

    clause: Clause
    under: int
    requires: str  # "parental_consent", "written_parental_permission", "refused"
    applies_to: str = (
        "treatment"  # treatment, data_collection, premises, sale_sharing, representative
    )


@dataclass(frozen=True, slots=True)
class MessageDecision:
    """Whether a message may go now; if not, why, and when it may."""

    clause: Clause
    allowed: bool
    reason: str | None = None
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class BreachNotification:
    """One notification a breach requires: to whom, by when, under which rule."""

    clause: Clause
    recipient: str  # individuals, regulator, media, attorney_general, commissioner
    due_at: datetime | None
    as_soon_as_practicable: bool = False


@dataclass(frozen=True, slots=True)
class DisclosureDecision:
    """Whether data may be disclosed to a recipient, and on what basis."""

    clause: Clause
    allowed: bool
    basis: str | None = None
    conditions: tuple[str, ...] = field(default_factory=tuple)
