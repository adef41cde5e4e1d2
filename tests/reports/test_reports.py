"""Reports reconcile to the ledger and the bookings, stay within their clinic, and answer as JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from core.accounts.models import Role
from core.bookings.models import Booking, BookingCharge, BookingEvent, BookingStatus
from core.extensions import db
from core.ledger import LedgerEntry, LedgerKind, balance
from core.payments.models import Payment, PaymentStatus
from core.reports import services as reports
from core.reports.periods import Grouping, Interval, Span
from core.schedules import services as schedules
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.helpers import (
    assert_problem,
    issue_token,
    make_clinic,
    make_provider,
    make_staff,
    set_clinic_settings,
)
from tests.reports.busy_month import generate

#: The purposes a refund is reported by; any other is "other".
NAMED_PURPOSES = {
    "deposit",
    "prepayment",
    "no_show_fee",
    "late_cancellation_fee",
    "late_arrival_fee",
    "sale",
}

#: The report's money columns, written out here from the ledger's kinds and not taken
#: from the report's own table: (kind, the purpose its entry names or None for any, sign).
LEDGER_COLUMNS: dict[str, list[tuple[str, Any, int]]] = {
    "deposits_taken": [("deposit_received", None, 1)],
    "prepayments_taken": [("prepayment_received", None, 1)],
    "deposits_applied": [("deposit_applied", None, 1), ("deposit_unapplied", None, -1)],
    "deposits_moved": [("deposit_moved", None, 1)],
    "deposits_forfeited": [("deposit_forfeited", None, 1)],
    "fees_charged": [("fee_charged", None, 1)],
    "card_payments": [("card_payment", None, 1)],
    "external_tenders": [("external_tender", None, 1)],
    "products_sold": [("product_sold", None, 1)],
    "products_returned": [("product_returned", None, 1)],
    "gratuities": [("gratuity", None, 1)],
    "refunds": [("refund", None, 1)],
    "refunds_deposit": [("refund", "deposit", 1)],
    "refunds_prepayment": [("refund", "prepayment", 1)],
    "refunds_no_show_fee": [("refund", "no_show_fee", 1)],
    "refunds_late_cancellation_fee": [("refund", "late_cancellation_fee", 1)],
    "refunds_sale": [("refund", "sale", 1)],
    "refunds_late_arrival_fee": [("refund", "late_arrival_fee", 1)],
    "refunds_other": [("refund", "other", 1)],
    "store_credit_issued": [("store_credit_issued", None, 1)],
    "store_credit_redeemed": [("store_credit_used", None, 1)],
    "store_credit_expired": [("store_credit_expired", None, 1)],
    "gift_certificates_sold": [("gift_certificate_sold", None, 1)],
    "gift_certificates_redeemed": [("gift_certificate_redeemed", None, 1)],
    "packages_sold": [("package_sold", None, 1)],
    "package_sessions_used": [("package_session_used", None, 1)],
    "packages_closed": [("package_closed", None, 1)],
    "memberships_paid": [("membership_payment", None, 1)],
    "disputes_opened": [("dispute_opened", None, 1)],
    "disputes_won": [("dispute_won", None, 1)],
    "disputes_lost": [("dispute_lost", None, 1)],
    "platform_fees": [("platform_fee", None, 1)],
}


def _clinic(slug: str, timezone: str, currency: str, country: str) -> dict[str, Any]:
    from core.catalog import services as catalog
    from core.tenancy.models import Location

    make_clinic(
        slug,
        locations=("main", "harbourside"),
        timezone=timezone,
        currency=currency,
        country=country,
    )
    make_staff(slug, f"owner@{slug}.example.com", Role.owner)
    make_staff(slug, f"desk@{slug}.example.com", Role.front_desk)
    # Ana works at the main location, Ben at the other: rows by location differ from the clinic's.
    providers = [
        make_provider(slug, f"ana@{slug}.example.com"),
        make_provider(slug, f"ben@{slug}.example.com", location="harbourside"),
    ]
    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
    with clinic_scope(clinic):
        service = catalog.save_service(
            None,
            {
                "slug": "facial",
                "name": "Facial",
                "category": "esthetician",
                "duration_minutes": 60,
                "buffer_minutes": 0,
                "price": "100.00",
                "location_ids": list(db.session.scalars(select(Location.id))),
                "provider_ids": providers,
            },
            clinic.currency,
        ).id
        db.session.commit()
    # Fees for a late cancellation and a no-show, so the month has fees to report.
    set_clinic_settings(slug, policy={"late_cancellation_fee": "40.00", "no_show_fee": "75.00"})
    return {"slug": slug, "providers": providers, "service": service, "tz": timezone}


@pytest.fixture
def busy(app):
    """Two clinics, Auckland and Los Angeles, each with a busy March 2026 (both change clocks)."""
    with app.app_context():
        with time_machine.travel(datetime(2026, 2, 1, tzinfo=UTC), tick=False):
            harbour = _clinic("harbour", "Pacific/Auckland", "NZD", "NZ")
            sunset = _clinic("sunset", "America/Los_Angeles", "USD", "US")
        harbour["month"] = generate(
            "harbour",
            year=2026,
            month=3,
            service_id=harbour["service"],
            provider_ids=harbour["providers"],
            seed=11,
        )
        sunset["month"] = generate(
            "sunset",
            year=2026,
            month=3,
            service_id=sunset["service"],
            provider_ids=sunset["providers"],
            seed=29,
        )
    return {"app": app, "harbour": harbour, "sunset": sunset}


def _march(clinic: Clinic, interval: Interval) -> Span:
    return Span(date(2026, 3, 1), date(2026, 3, 31), interval, clinic.timezone)


def _matches(purpose: str | None, wanted: str | None) -> bool:
    if wanted == "other":
        return purpose not in NAMED_PURPOSES
    return wanted is None or purpose == wanted


def _expected_money(
    clinic: Clinic, by: str = "provider"
) -> dict[tuple[str, int | None], dict[str, int]]:
    """Sum the clinic's March ledger by week and provider (or location), straight from its entries."""
    zone = ZoneInfo(clinic.timezone)
    column = Booking.provider_id if by == "provider" else Booking.location_id
    providers = {b: p for b, p in db.session.execute(select(Booking.id, column))}
    sums: dict[tuple[str, int | None], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    start = datetime(2026, 3, 1, tzinfo=zone)
    end = datetime(2026, 4, 1, tzinfo=zone)
    for entry in db.session.scalars(select(LedgerEntry)):
        at = entry.at.replace(tzinfo=UTC) if entry.at.tzinfo is None else entry.at
        if not start <= at < end:
            continue
        local_day = at.astimezone(zone).date()
        monday = local_day - timedelta(days=local_day.weekday())
        key = (monday.isoformat(), providers.get(entry.booking_id))
        for column, parts in LEDGER_COLUMNS.items():
            for kind, purpose, sign in parts:
                if entry.kind.value == kind and _matches(entry.details.get("purpose"), purpose):
                    sums[key][column] += sign * entry.amount_minor
    return sums


def test_every_money_figure_reconciles_to_the_ledger_at_each_clinic(busy):
    app = busy["app"]
    with app.app_context():
        both_totals = {}
        for slug in ("harbour", "sunset"):
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
            with clinic_scope(clinic):
                span = _march(clinic, Interval.week)
                for by in (Grouping.provider, Grouping.location):
                    report = reports.money(clinic, span, by)
                    expected = _expected_money(clinic, by.value)
                    assert expected, "the generated month wrote money"
                    shown = {(row["period"], row[f"{by.value}_id"]): row for row in report.rows}
                    for key, figures in expected.items():
                        for column, amount in figures.items():
                            assert shown[key][column] == amount, (slug, key, column)
                    for key, row in shown.items():
                        for column in LEDGER_COLUMNS:
                            expect = expected.get(key, {}).get(column, 0)
                            assert row[column] == expect, (slug, by, key, column)
                report = reports.money(clinic, span, Grouping.provider)
                # The providers are this clinic's own, plus the desk's row.
                assert {row["provider_id"] for row in report.rows} == {
                    *busy[slug]["providers"],
                    None,
                }
                # Entries a second outside March are not in it; the month's edges are.
                in_span = [
                    e
                    for e in db.session.scalars(select(LedgerEntry))
                    if span.starts_at <= e.at.replace(tzinfo=UTC) < span.ends_at
                ]
                assert len(in_span) == busy[slug]["month"].entries - 2
                whole = reports.money(clinic, _march(clinic, Interval.month), Grouping.clinic)
                assert len(whole.rows) == 1
                assert whole.totals["refunds"] == sum(
                    e.amount_minor for e in in_span if e.kind == LedgerKind.refund
                )
                assert whole.totals["refunds"] == sum(
                    whole.totals[f"refunds_{r}"] for r in (*reports.REFUND_REASONS, "other")
                )
                assert whole.currency == clinic.currency
                both_totals[slug] = whole.totals
        # Neither clinic's figures appear in the other's report.
        assert both_totals["harbour"]["deposits_taken"] != both_totals["sunset"]["deposits_taken"]
        # Every figure was exercised: a column summing nothing would prove nothing.
        for column in LEDGER_COLUMNS:
            assert both_totals["harbour"][column] or both_totals["sunset"][column], column


def test_fee_outcomes_are_read_from_the_fees_owed(busy):
    app = busy["app"]
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "harbour"))
        with clinic_scope(clinic):
            report = reports.money(clinic, _march(clinic, Interval.month), Grouping.clinic)
            span = _march(clinic, Interval.month)
            charges = [
                c
                for c in db.session.scalars(select(BookingCharge))
                if c.kind.endswith("_fee")
                and span.starts_at <= c.created_at.replace(tzinfo=UTC) < span.ends_at
            ]
            failed = {
                p.booking_charge_id
                for p in db.session.scalars(select(Payment))
                if p.status == PaymentStatus.failed
            }
            expect = {
                "fees_owed": sum(c.amount_minor for c in charges),
                "fees_waived": sum(c.amount_minor for c in charges if c.status == "waived"),
                "fees_failed": sum(
                    c.amount_minor for c in charges if c.status in ("declined", "no_card")
                ),
                "fees_recovered": sum(
                    c.amount_minor for c in charges if c.status == "paid" and c.id in failed
                ),
            }
            assert expect["fees_owed"] > 0 and expect["fees_recovered"] > 0
            for column, amount in expect.items():
                assert report.totals[column] == amount, column


@pytest.mark.parametrize("slug", ["harbour", "sunset"])
def test_booking_figures_count_each_booking_by_its_visit_date(busy, slug):
    app = busy["app"]
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            span = _march(clinic, Interval.day)
            report = reports.bookings(clinic, span, Grouping.provider)
            zone = ZoneInfo(clinic.timezone)
            late = {
                e.booking_id
                for e in db.session.scalars(select(BookingEvent))
                if e.action.startswith("checked_in_")
                or (e.action == "rescheduled" and e.details.get("because") == "late_arrival")
            }
            expected: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for b in db.session.scalars(select(Booking)):
                key = (b.starts_at.astimezone(zone).date().isoformat(), b.provider_id)
                row = expected[key]
                row["bookings"] += 1
                row["bookings_online" if b.source == "online" else "bookings_staff"] += 1
                row["completed"] += b.status == BookingStatus.completed
                row["no_shows"] += b.status == BookingStatus.no_show
                cancelled = b.status == BookingStatus.cancelled
                row["cancellations_inside_window"] += cancelled and b.policy_incident
                row["cancellations_outside_window"] += cancelled and not b.policy_incident
                row["late_arrivals"] += b.id in late
                for charge in b.charges:
                    if charge.kind.endswith("_fee") and charge.status != "waived":
                        row[f"{charge.kind}s"] += charge.amount_minor
            shown = {(row["period"], row["provider_id"]): row for row in report.rows}
            for key, figures in expected.items():
                for column, value in figures.items():
                    assert shown[key][column] == value, (key, column)
                row = shown[key]
                assert row["no_show_rate"] == round(row["no_shows"] / row["bookings"], 4)
            totals = report.totals
            outcomes = busy[slug]["month"].outcomes
            # Every ending occurred, so every count is tested against a real case.
            assert totals["no_shows"] == outcomes["no_show"] > 0
            assert totals["cancellations_inside_window"] == outcomes["late"] > 0
            assert totals["cancellations_outside_window"] == outcomes["early"] > 0
            assert outcomes["late_arrival"] > 0 and outcomes["late_moved"] > 0
            assert totals["late_arrivals"] == outcomes["late_arrival"] + outcomes["late_moved"]
            assert totals["bookings_online"] > 0 and totals["bookings_staff"] > 0
            assert totals["no_show_fees"] > 0
            assert totals["cancellation_rate"] == round(
                (outcomes["late"] + outcomes["early"]) / totals["bookings"], 4
            )


def test_liabilities_at_each_period_end_are_the_ledger_balances(busy):
    app = busy["app"]
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "harbour"))
        with clinic_scope(clinic):
            # The span runs past every entry, so its last position is today's balances.
            span = Span(date(2026, 3, 1), date(2026, 4, 30), Interval.month, clinic.timezone)
            report = reports.liabilities(clinic, span)
            assert [row["period"] for row in report.rows] == ["2026-03", "2026-04"]
            accounts = {
                e.account for e in db.session.scalars(select(LedgerEntry)) if e.account is not None
            }
            for column, prefix in reports.LIABILITIES.items():
                held = sum(
                    balance(a, clinic.currency).minor for a in accounts if a.startswith(prefix)
                )
                assert report.totals[column] == held, column
            assert any(report.totals.values())
            # At the end of March: only what was written before April began in Auckland.
            april = datetime(2026, 4, 1, tzinfo=ZoneInfo(clinic.timezone))
            signs = {"package_sold": 1, "package_session_used": -1, "package_closed": -1}
            march_packages = sum(
                signs.get(e.kind.value, 0) * e.amount_minor
                for e in db.session.scalars(select(LedgerEntry))
                if (e.account or "").startswith("package:") and e.at.replace(tzinfo=UTC) < april
            )
            assert report.rows[0]["package_liability"] == march_packages


def test_utilisation_is_booked_over_working_minutes_less_time_off(app):
    with app.app_context():
        with time_machine.travel(datetime(2026, 5, 1, tzinfo=UTC), tick=False):
            c = _clinic("quiet", "America/Los_Angeles", "USD", "US")
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "quiet"))
            generate(
                "quiet",
                year=2026,
                month=6,
                service_id=c["service"],
                provider_ids=c["providers"][:1],
                seed=5,
                visits_per_day=1,
            )
        with clinic_scope(clinic):
            ana = schedules.provider(c["providers"][0])
            # A day off on 10 June, midnight to midnight in Los Angeles.
            schedules.add_time_off(
                ana,
                datetime(2026, 6, 10, 7, tzinfo=UTC),
                datetime(2026, 6, 11, 7, tzinfo=UTC),
                "holiday",
            )
            # A training morning inside the holiday takes nothing more.
            schedules.add_time_off(
                ana,
                datetime(2026, 6, 10, 16, tzinfo=UTC),
                datetime(2026, 6, 10, 20, tzinfo=UTC),
                "training",
            )
            db.session.commit()
            span = Span(date(2026, 6, 1), date(2026, 6, 30), Interval.month, clinic.timezone)
            report = reports.utilisation(clinic, span, Grouping.provider)
            row = next(r for r in report.rows if r["provider_id"] == ana.id)
            assert row["available_minutes"] == 30 * 8 * 60 - 8 * 60
            booked = [
                b
                for b in db.session.scalars(select(Booking).where(Booking.provider_id == ana.id))
                if b.status
                in (
                    BookingStatus.confirmed,
                    BookingStatus.checked_in,
                    BookingStatus.completed,
                    BookingStatus.no_show,
                )
            ]
            minutes = sum(int((b.ends_at - b.starts_at).total_seconds() // 60) for b in booked)
            assert minutes > 0
            assert row["booked_minutes"] == minutes
            assert row["utilisation"] == round(minutes / row["available_minutes"], 4)
            ben = next(r for r in report.rows if r["provider_id"] == c["providers"][1])
            assert ben["booked_minutes"] == 0 and ben["utilisation"] == 0


@pytest.fixture
def small(app):
    with app.app_context():
        with time_machine.travel(datetime(2026, 2, 1, tzinfo=UTC), tick=False):
            _clinic("harbour", "Pacific/Auckland", "NZD", "NZ")
            _clinic("sunset", "America/Los_Angeles", "USD", "US")
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "harbour"))
        with clinic_scope(clinic):
            from core import ledger
            from core.money import Money

            entry = ledger.record(LedgerKind.deposit_received, Money(5000, "NZD"), reference="a")
            # 11:30 on 1 March in UTC is 00:30 on 2 March in Auckland.
            entry.at = datetime(2026, 3, 1, 11, 30, tzinfo=UTC)
            db.session.commit()
    return {
        "owner": {
            "Authorization": f"Bearer {issue_token(app, 'harbour', 'owner@harbour.example.com')}"
        },
        "desk": {
            "Authorization": f"Bearer {issue_token(app, 'harbour', 'desk@harbour.example.com')}"
        },
        "other": {
            "Authorization": f"Bearer {issue_token(app, 'sunset', 'owner@sunset.example.com')}"
        },
    }


API = "/api/v1/clinics/harbour/reports"


def test_a_report_is_json_or_csv_on_the_clinics_own_calendar(client, small):
    answer = client.get(
        f"{API}/money?from=2026-03-01&to=2026-03-03&interval=day", headers=small["owner"]
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["currency"] == "NZD" and body["timezone"] == "Pacific/Auckland"
    by_day = {row["period"]: row["deposits_taken"] for row in body["rows"]}
    assert by_day == {"2026-03-01": 0, "2026-03-02": 5000, "2026-03-03": 0}
    assert "deposits_taken" in body["money_columns"]
    as_csv = client.get(
        f"{API}/money?from=2026-03-01&to=2026-03-03&interval=day&format=csv",
        headers=small["owner"],
    )
    assert as_csv.status_code == 200
    assert as_csv.mimetype == "text/csv"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [line["period"] for line in lines] == ["2026-03-01", "2026-03-02", "2026-03-03", "total"]
    assert lines[1]["deposits_taken"] == "50.00"
    assert lines[-1]["deposits_taken"] == "50.00"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-03-05&to=2026-03-01", "to"),
        ("from=2025-01-01&to=2026-03-01", "to"),
        ("from=2026-03-01&to=2026-03-05&interval=fortnight", "interval"),
        ("from=2026-03-01&to=2026-03-05&by=room", "by"),
        ("from=yesterday&to=2026-03-05", "from"),
        ("to=2026-03-05", "from"),
        ("from=9999-12-30&to=9999-12-31", "from"),
        ("from=0001-01-01&to=0001-01-02", "to"),
    ],
)
def test_a_report_asked_badly_names_the_field(client, small, query, field):
    body = assert_problem(client.get(f"{API}/money?{query}", headers=small["owner"]), 422)
    assert field in {error["field"] for error in body["errors"]}, body


def test_reports_are_for_owners_and_managers_of_their_own_clinic(client, small):
    query = "from=2026-03-01&to=2026-03-03"
    assert_problem(client.get(f"{API}/money?{query}", headers=small["desk"]), 403)
    refused = client.get(f"{API}/money?{query}", headers=small["other"])
    assert refused.status_code == 401  # a token is good at its own clinic only
    assert "5000" not in refused.get_data(as_text=True)
    assert_problem(client.get(f"{API}/takings?{query}", headers=small["owner"]), 404)


def _statements(app, fetch) -> int:
    from sqlalchemy import event

    seen = []
    with app.app_context():
        engines = list(db.engines.values())

    def count(*_: Any) -> None:
        seen.append(1)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        answer = fetch()
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return len(seen)


@pytest.mark.parametrize("name", ["money", "bookings", "utilisation", "liabilities"])
def test_a_report_reads_a_fixed_number_of_statements_however_busy_the_clinic(
    app, client, small, name
):
    from core import ledger
    from core.money import Money

    url = f"{API}/{name}?from=2026-03-01&to=2026-03-31&interval=day&by=provider"
    client.get(url, headers=small["owner"])  # the token's first use is recorded once
    before = _statements(app, lambda: client.get(url, headers=small["owner"]))
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "harbour"))
        with clinic_scope(clinic):
            for day in range(1, 29):
                for kind in (LedgerKind.gift_certificate_sold, LedgerKind.refund):
                    entry = ledger.record(
                        kind, Money(1000, "NZD"), account=f"gift_certificate:{day}", purpose="sale"
                    )
                    entry.at = datetime(2026, 3, day, 1, tzinfo=UTC)
            db.session.commit()
    after = _statements(app, lambda: client.get(url, headers=small["owner"]))
    assert after == before
