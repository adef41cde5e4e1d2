"""The clinic's reports, read from its ledger and bookings alone: no second set of books.

Every money figure is a sum of ledger entries of named kinds, so the figures add
up to the ledger by construction; the fee outcomes that move no money (waived,
failed, recovered) and the booking counts are read from the bookings. Figures
are cut into the clinic's days, weeks or months and, when asked, by location or
provider: an entry belongs to the booking it names, and one that names no
booking (a gift certificate sold at the desk, a membership) is shown on a row of
its own ("not tied to a visit").

Rows are plain tuples summed in Python: a year of a busy clinic is tens of
thousands of rows, read in a handful of statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, String, and_, or_, select, type_coerce

from core.bookings.models import Booking, BookingCharge, BookingEvent, BookingStatus, ChargeStatus
from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind
from core.ledger.services import SIGN
from core.payments.models import Payment, PaymentStatus
from core.reports.periods import Grouping, Span
from core.schedules.models import Provider, TimeOff, WorkingHours
from core.tenancy.models import Clinic, Location

#: What the fees a booking may owe are called, as charge kinds.
FEE_KINDS = ("late_cancellation_fee", "no_show_fee", "late_arrival_fee")
#: Why money was refunded, as the ``purpose`` its ledger entry names.
REFUND_REASONS = ("deposit", "prepayment", *FEE_KINDS, "sale")


def _purpose_is(reason: str | None) -> Callable[[str | None], bool]:
    """Select refunds of one purpose, or (None) of any purpose not named in REFUND_REASONS."""
    if reason is None:
        return lambda purpose: purpose not in REFUND_REASONS
    return lambda purpose: purpose == reason


#: Each money figure: the ledger kinds it sums, with their signs, and which entries of them.
MONEY_FIGURES: dict[str, tuple[dict[LedgerKind, int], Callable[[str | None], bool] | None]] = {
    "deposits_taken": ({LedgerKind.deposit_received: 1}, None),
    "prepayments_taken": ({LedgerKind.prepayment_received: 1}, None),
    # Net of deposits taken back off a bill that was voided.
    "deposits_applied": ({LedgerKind.deposit_applied: 1, LedgerKind.deposit_unapplied: -1}, None),
    "deposits_moved": ({LedgerKind.deposit_moved: 1}, None),
    "deposits_forfeited": ({LedgerKind.deposit_forfeited: 1}, None),
    "fees_charged": ({LedgerKind.fee_charged: 1}, None),
    "card_payments": ({LedgerKind.card_payment: 1}, None),
    "external_tenders": ({LedgerKind.external_tender: 1}, None),
    "products_sold": ({LedgerKind.product_sold: 1}, None),
    "products_returned": ({LedgerKind.product_returned: 1}, None),
    "gratuities": ({LedgerKind.gratuity: 1}, None),
    "refunds": ({LedgerKind.refund: 1}, None),
    **{
        f"refunds_{reason}": ({LedgerKind.refund: 1}, _purpose_is(reason))
        for reason in REFUND_REASONS
    },
    "refunds_other": ({LedgerKind.refund: 1}, _purpose_is(None)),
    "store_credit_issued": ({LedgerKind.store_credit_issued: 1}, None),
    "store_credit_redeemed": ({LedgerKind.store_credit_used: 1}, None),
    "store_credit_expired": ({LedgerKind.store_credit_expired: 1}, None),
    "gift_certificates_sold": ({LedgerKind.gift_certificate_sold: 1}, None),
    "gift_certificates_redeemed": ({LedgerKind.gift_certificate_redeemed: 1}, None),
    "packages_sold": ({LedgerKind.package_sold: 1}, None),
    "package_sessions_used": ({LedgerKind.package_session_used: 1}, None),
    "packages_closed": ({LedgerKind.package_closed: 1}, None),
    "memberships_paid": ({LedgerKind.membership_payment: 1}, None),
    "disputes_opened": ({LedgerKind.dispute_opened: 1}, None),
    "disputes_won": ({LedgerKind.dispute_won: 1}, None),
    "disputes_lost": ({LedgerKind.dispute_lost: 1}, None),
    "platform_fees": ({LedgerKind.platform_fee: 1}, None),
}
#: Fee outcomes that move no money, read from the fees the bookings owe.
FEE_OUTCOMES = ("fees_owed", "fees_waived", "fees_failed", "fees_recovered")
MONEY_COLUMNS = (*MONEY_FIGURES, *FEE_OUTCOMES)

BOOKING_COUNTS = (
    "bookings",
    "bookings_online",
    "bookings_staff",
    "completed",
    "cancellations_inside_window",
    "cancellations_outside_window",
    "no_shows",
    "late_arrivals",
)
BOOKING_FEES = tuple(f"{kind}s" for kind in FEE_KINDS)
#: Each rate: the count over the bookings made.
BOOKING_RATES = {
    "cancellation_rate": ("cancellations_inside_window", "cancellations_outside_window"),
    "late_cancellation_rate": ("cancellations_inside_window",),
    "no_show_rate": ("no_shows",),
    "late_arrival_rate": ("late_arrivals",),
}
BOOKING_COLUMNS = (*BOOKING_COUNTS, *BOOKING_FEES, *BOOKING_RATES)

UTILISATION_COLUMNS = ("available_minutes", "booked_minutes", "utilisation")

#: The balances the clinic holds for its clients, by the prefix of their ledger account.
LIABILITIES = {
    "package_liability": "package:",
    "gift_certificate_liability": "gift_certificate:",
    "store_credit_liability": "store_credit:",
}
LIABILITY_COLUMNS = tuple(LIABILITIES)

#: Statuses whose time was booked, whether or not the client came.
BOOKED = (
    BookingStatus.confirmed,
    BookingStatus.checked_in,
    BookingStatus.completed,
    BookingStatus.no_show,
)
#: A late arrival is recorded as the option the clinic chose: seen late (``checked_in_<option>``)
#: or moved to a later time (a reschedule ``because`` of it).
LATE_ARRIVAL = or_(
    BookingEvent.action.like("checked\\_in\\_%", escape="\\"),
    and_(
        BookingEvent.action == "rescheduled",
        BookingEvent.details["because"].as_string() == "late_arrival",
    ),
)
#: Payment attempts that did not take the money.
UNSUCCESSFUL = (PaymentStatus.failed, PaymentStatus.requires_action, PaymentStatus.canceled)

NOT_A_VISIT = "not tied to a visit"


@dataclass
class Report:
    """One report: its rows (a period and a group each) and the totals over them."""

    name: str
    clinic: str
    currency: str
    timezone: str
    span: Span
    by: Grouping
    columns: tuple[str, ...]
    money_columns: frozenset[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "clinic": self.clinic,
            "currency": self.currency,
            "timezone": self.timezone,
            "from": self.span.first.isoformat(),
            "to": self.span.last.isoformat(),
            "interval": self.span.interval.value,
            "by": self.by.value,
            "columns": list(self.columns),
            "money_columns": sorted(self.money_columns),
            "rows": self.rows,
            "totals": self.totals,
        }


class _Groups:
    """The rows' groups: every location or provider of the clinic, and visits' absence."""

    def __init__(self, by: Grouping) -> None:
        self.by = by
        if by is Grouping.location:
            found = db.session.execute(select(Location.id, Location.name).order_by(Location.id))
        elif by is Grouping.provider:
            found = db.session.execute(
                select(Provider.id, Provider.display_name).order_by(Provider.id)
            )
        else:
            found = None
        self.names: dict[int | None, str] = (
            {row[0]: row[1] for row in found} if found is not None else {None: "clinic"}
        )

    def of(self, location_id: int | None, provider_id: int | None) -> int | None:
        if self.by is Grouping.location:
            return location_id
        if self.by is Grouping.provider:
            return provider_id
        return None

    def all(self, extra: Iterable[int | None]) -> list[int | None]:
        """The groups to show: all the clinic's, then any others the figures name."""
        shown = list(self.names)
        shown += [g for g in dict.fromkeys(extra) if g not in self.names]
        return shown

    def name(self, group: int | None) -> str:
        return self.names.get(group, NOT_A_VISIT if group is None else f"#{group}")


def _table(
    name: str,
    clinic: Clinic,
    span: Span,
    by: Grouping,
    columns: tuple[str, ...],
    money: Iterable[str],
    sums: dict[tuple[str, int | None], dict[str, int]],
    groups: _Groups,
    rates: Callable[[dict[str, Any]], None] | None = None,
) -> Report:
    """Lay summed figures out as rows for every period and group, with totals."""
    report = Report(
        name, clinic.slug, clinic.currency, clinic.timezone, span, by, columns, frozenset(money)
    )
    shown = groups.all(group for _, group in sums)
    totals: dict[str, Any] = dict.fromkeys(columns, 0)
    for period in span.periods():
        for group in shown:
            figures = sums.get((period, group), {})
            row: dict[str, Any] = {"period": period}
            if by is not Grouping.clinic:
                row[f"{by.value}_id"] = group
                row[f"{by.value}_name"] = groups.name(group)
            for column in columns:
                row[column] = figures.get(column, 0)
                totals[column] += row[column]
            if rates is not None:
                rates(row)
            report.rows.append(row)
    if rates is not None:
        rates(totals)
    report.totals = totals
    return report


def money(clinic: Clinic, span: Span, by: Grouping) -> Report:
    """Deposits, fees, refunds, store credit, gift certificates, packages, disputes: the money moved."""
    groups = _Groups(by)
    sums: dict[tuple[str, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_kind: dict[str, list[tuple[str, int, Callable[[str | None], bool] | None]]] = defaultdict(
        list
    )
    for column, (kinds, which) in MONEY_FIGURES.items():
        for kind, sign in kinds.items():
            by_kind[kind.value].append((column, sign, which))
    # The bare column types: a year's entries skip a Python conversion each (see _period_cache).
    entries: Iterable[Any] = db.session.execute(
        select(
            type_coerce(LedgerEntry.at, DateTime()),
            type_coerce(LedgerEntry.kind, String()),
            LedgerEntry.amount_minor,
            LedgerEntry.details["purpose"].as_string(),
            Booking.location_id,
            Booking.provider_id,
        )
        .outerjoin(Booking, Booking.id == LedgerEntry.booking_id)
        .where(
            LedgerEntry.at >= span.starts_at,
            LedgerEntry.at < span.ends_at,
            LedgerEntry.kind.in_([LedgerKind(kind) for kind in by_kind]),
        )
    )
    period_of = _period_cache(span)
    for at, entry_kind, amount, purpose, location_id, provider_id in entries:
        figures = sums[(period_of(at), groups.of(location_id, provider_id))]
        for column, sign, which in by_kind[entry_kind]:
            if which is None or which(purpose):
                figures[column] += sign * amount
    _fee_outcomes(span, groups, sums, period_of)
    return _table("money", clinic, span, by, MONEY_COLUMNS, MONEY_COLUMNS, sums, groups)


def _fee_outcomes(
    span: Span,
    groups: _Groups,
    sums: dict[tuple[str, int | None], dict[str, int]],
    period_of: Callable[[datetime], str],
) -> None:
    """Fees owed, waived, still failing, and recovered after a failed attempt, by when they arose."""
    # The fees with an unsuccessful attempt, read once: few fees ever fail.
    failed_before = set(
        db.session.scalars(
            select(Payment.booking_charge_id)
            .distinct()
            .where(Payment.status.in_(UNSUCCESSFUL), Payment.booking_charge_id.is_not(None))
        )
    )
    charges = db.session.execute(
        select(
            BookingCharge.created_at,
            BookingCharge.status,
            BookingCharge.amount_minor,
            BookingCharge.id,
            Booking.location_id,
            Booking.provider_id,
        )
        .join(Booking, Booking.id == BookingCharge.booking_id)
        .where(
            BookingCharge.kind.in_(FEE_KINDS),
            BookingCharge.created_at >= span.starts_at,
            BookingCharge.created_at < span.ends_at,
        )
    )
    for created_at, status, amount, charge_id, location_id, provider_id in charges:
        figures = sums[(period_of(created_at), groups.of(location_id, provider_id))]
        figures["fees_owed"] += amount
        if status == ChargeStatus.waived:
            figures["fees_waived"] += amount
        elif status in (ChargeStatus.declined, ChargeStatus.no_card):
            figures["fees_failed"] += amount
        elif status == ChargeStatus.paid and charge_id in failed_before:
            figures["fees_recovered"] += amount


def bookings(clinic: Clinic, span: Span, by: Grouping) -> Report:
    """Bookings made online and by staff, cancellations, no-shows and late arrivals, by visit date."""
    groups = _Groups(by)
    sums: dict[tuple[str, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    in_span = and_(
        Booking.starts_at >= span.starts_at,
        Booking.starts_at < span.ends_at,
        Booking.status.not_in([BookingStatus.held, BookingStatus.expired]),
    )
    period_of = _period_cache(span)
    found = db.session.execute(
        select(
            Booking.starts_at,
            Booking.status,
            Booking.source,
            Booking.policy_incident,
            Booking.location_id,
            Booking.provider_id,
        ).where(in_span)
    )
    for starts_at, status, source, incident, location_id, provider_id in found:
        figures = sums[(period_of(starts_at), groups.of(location_id, provider_id))]
        figures["bookings"] += 1
        figures["bookings_online" if source == "online" else "bookings_staff"] += 1
        if status == BookingStatus.completed:
            figures["completed"] += 1
        elif status == BookingStatus.cancelled:
            key = "cancellations_inside_window" if incident else "cancellations_outside_window"
            figures[key] += 1
        elif status == BookingStatus.no_show:
            figures["no_shows"] += 1
    # From the events to their bookings: a late arrival is rare, a booking's events are not.
    late = db.session.execute(
        select(Booking.id, Booking.starts_at, Booking.location_id, Booking.provider_id)
        .distinct()
        .select_from(BookingEvent)
        .join(Booking, Booking.id == BookingEvent.booking_id)
        .where(LATE_ARRIVAL, in_span)
    )
    for _, starts_at, location_id, provider_id in late:
        sums[(period_of(starts_at), groups.of(location_id, provider_id))]["late_arrivals"] += 1
    fees = db.session.execute(
        select(
            Booking.starts_at,
            Booking.location_id,
            Booking.provider_id,
            BookingCharge.kind,
            BookingCharge.amount_minor,
        )
        .join(BookingCharge, BookingCharge.booking_id == Booking.id)
        .where(in_span, BookingCharge.kind.in_(FEE_KINDS))
        .where(BookingCharge.status != ChargeStatus.waived)
    )
    for starts_at, location_id, provider_id, kind, amount in fees:
        sums[(period_of(starts_at), groups.of(location_id, provider_id))][f"{kind}s"] += amount
    return _table(
        "bookings",
        clinic,
        span,
        by,
        (*BOOKING_COUNTS, *BOOKING_FEES),
        BOOKING_FEES,
        sums,
        groups,
        _booking_rates,
    )


def _booking_rates(row: dict[str, Any]) -> None:
    made = row["bookings"]
    for rate, counts in BOOKING_RATES.items():
        row[rate] = round(sum(row[c] for c in counts) / made, 4) if made else None


def utilisation(clinic: Clinic, span: Span, by: Grouping) -> Report:
    """Booked minutes over the minutes providers were working (their hours less time off)."""
    groups = _Groups(by)
    sums: dict[tuple[str, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    period_of = _period_cache(span)
    zones = {
        loc_id: ZoneInfo(tz)
        for loc_id, tz in db.session.execute(select(Location.id, Location.timezone))
    }
    away: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for provider_id, starts_at, ends_at in db.session.execute(
        select(TimeOff.provider_id, TimeOff.starts_at, TimeOff.ends_at).where(
            TimeOff.ends_at > span.starts_at - timedelta(days=1),
            TimeOff.starts_at < span.ends_at + timedelta(days=1),
        )
    ):
        away[provider_id].append((starts_at, ends_at))
    # Overlapping time off (a holiday inside a leave) is one absence, subtracted once.
    away = defaultdict(list, {p: _merged(periods) for p, periods in away.items()})
    blocks = db.session.execute(
        select(
            WorkingHours.provider_id,
            WorkingHours.location_id,
            WorkingHours.weekday,
            WorkingHours.starts,
            WorkingHours.ends,
        ).join(Provider, Provider.id == WorkingHours.provider_id)
    ).all()
    for day in span.days():
        period = span.period_of_day(day)
        for provider_id, location_id, weekday, starts, ends in blocks:
            if weekday != day.weekday():
                continue
            zone = zones[location_id]
            begin = datetime.combine(day, starts, tzinfo=zone).astimezone(UTC)
            end = datetime.combine(day, ends, tzinfo=zone).astimezone(UTC)
            seconds = (end - begin).total_seconds()
            for off_start, off_end in away.get(provider_id, ()):
                overlap = (min(end, off_end) - max(begin, off_start)).total_seconds()
                seconds -= max(0.0, overlap)
            if seconds > 0:
                key = (period, groups.of(location_id, provider_id))
                sums[key]["available_minutes"] += int(seconds // 60)
    for starts_at, ends_at, location_id, provider_id in db.session.execute(
        select(Booking.starts_at, Booking.ends_at, Booking.location_id, Booking.provider_id).where(
            Booking.starts_at >= span.starts_at,
            Booking.starts_at < span.ends_at,
            Booking.status.in_(BOOKED),
        )
    ):
        key = (period_of(starts_at), groups.of(location_id, provider_id))
        sums[key]["booked_minutes"] += int((ends_at - starts_at).total_seconds() // 60)
    return _table(
        "utilisation",
        clinic,
        span,
        by,
        ("available_minutes", "booked_minutes"),
        (),
        sums,
        groups,
        _utilisation_rate,
    )


def _merged(periods: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(periods):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _utilisation_rate(row: dict[str, Any]) -> None:
    available = row["available_minutes"]
    row["utilisation"] = round(row["booked_minutes"] / available, 4) if available else None


def liabilities(clinic: Clinic, span: Span) -> Report:
    """What the clinic holds for clients at the end of each period: packages, certificates, credit."""
    prefixes = {prefix: column for column, prefix in LIABILITIES.items()}
    held: dict[str, int] = dict.fromkeys(LIABILITIES, 0)
    entries = db.session.execute(
        select(LedgerEntry.at, LedgerEntry.kind, LedgerEntry.amount_minor, LedgerEntry.account)
        .where(
            LedgerEntry.at < span.ends_at,
            or_(*(LedgerEntry.account.startswith(prefix) for prefix in prefixes)),
        )
        .order_by(LedgerEntry.at, LedgerEntry.id)
    ).all()
    report = Report(
        "liabilities",
        clinic.slug,
        clinic.currency,
        clinic.timezone,
        span,
        Grouping.clinic,
        LIABILITY_COLUMNS,
        frozenset(LIABILITY_COLUMNS),
    )
    position = 0
    for period, ends_at in span.period_ends():
        while position < len(entries) and entries[position][0] < ends_at:
            _, kind, amount, account = entries[position]
            column = next(c for p, c in prefixes.items() if (account or "").startswith(p))
            held[column] += SIGN.get(LedgerKind(kind), 0) * amount
            position += 1
        report.rows.append({"period": period, **held})
    # A balance is a position, not a flow: the total is where the span ends.
    report.totals = dict(report.rows[-1]) if report.rows else dict.fromkeys(LIABILITIES, 0)
    report.totals.pop("period", None)
    return report


def _period_cache(span: Span) -> Callable[[datetime], str]:
    """Name instants' periods, converting each quarter hour once (rows cluster in opening hours)."""
    known: dict[datetime, str] = {}

    def period_of(moment: datetime) -> str:
        # Every timezone's offset is a whole number of quarter hours, so a local day
        # starts on a UTC quarter hour: instants in one quarter share a local date.
        # Naive instants are UTC (SQLite keeps no offset).
        key = moment.replace(second=0, microsecond=0, minute=moment.minute // 15 * 15)
        found = known.get(key)
        if found is None:
            found = known[key] = span.period_of(key if key.tzinfo else key.replace(tzinfo=UTC))
        return found

    return period_of


REPORTS: dict[str, Callable[..., Report]] = {
    "money": money,
    "bookings": bookings,
    "utilisation": utilisation,
}
