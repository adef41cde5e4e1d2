"""Benchmark: the reports over a year of a busy clinic's history, against a bare endpoint in the same run.

Run:  python -m tests.benchmarks.reports [--db postgresql] [--per-day 6]

It builds a fresh database with a clinic of 20 providers at two locations and a
year of history (each provider sees ``--per-day`` clients a day; every visit
ends one way or another and leaves money in the ledger: deposits, fees,
refunds, gift certificates, packages), and a neighbour clinic with a tenth as
much. It then asks each report for the whole year through the full HTTP stack
(token, clinic scope, validation, JSON or CSV), by month and by provider, and
prints p50/p95 next to the clinic-profile endpoint, which does the same stack
work around one trivial query.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text

from core import create_app
from core.accounts.models import Role
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingCharge, BookingEvent
from core.clients.models import Client
from core.extensions import db
from core.ledger import LedgerEntry
from core.schedules.models import Provider
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.database import TEST_MASTER_KEYS, migrated_database
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff

FIRST_DAY = date(2025, 12, 1)
DAYS = 365
ENDINGS = ["completed"] * 7 + ["early", "late", "no_show", "late_arrival"]


def _seed(app, slug: str, providers: int, per_day: int, rng: random.Random) -> int:
    """A year of visits for ``slug``; return how many ledger entries it wrote."""
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        provider_ids = [
            make_provider(
                slug,
                f"p{n}@{slug}.example.com",
                location="main" if n % 2 == 0 else "second",
            )
            for n in range(providers)
        ]
        service_id = make_service(slug, "facial", provider_ids=provider_ids, duration=50)
        zone = ZoneInfo(clinic.timezone)
        with clinic_scope(clinic):
            locations = dict(db.session.execute(select(Location.slug, Location.id)).all())
            db.session.execute(
                insert(Client),
                [
                    {
                        "clinic_id": clinic.id,
                        "legal_first_name": f"Client{n}",
                        "legal_last_name": "Bench",
                        "email": f"c{n}@example.com",
                        "preferred_channel": "email",
                        "search_first": f"client{n}",
                        "search_last": "bench",
                    }
                    for n in range(2000)
                ],
            )
            client_ids = list(db.session.scalars(select(Client.id)))
            # One real booking gives the policy version every generated one refers to.
            real = bookings.book(
                clinic,
                client=client_ids[0],
                service_id=service_id,
                location_id=locations["main"],
                provider_id=provider_ids[0],
                starts_at=datetime.combine(
                    datetime.now(zone).date() + timedelta(days=3), datetime.min.time(), zone
                ).replace(hour=10),
                online=False,
            )
            policy_version_id = real.policy_version_id
            db.session.commit()
            # Ids of their own per clinic: row-level security hides the other clinic's.
            next_id = clinic.id * 10_000_000
            rows, events, charges, entries = [], [], [], []
            for offset in range(DAYS):
                day = FIRST_DAY + timedelta(days=offset)
                for index, provider_id in enumerate(provider_ids):
                    location_id = locations["main" if index % 2 == 0 else "second"]
                    for visit in range(per_day):
                        starts = datetime(
                            day.year, day.month, day.day, 9 + visit, tzinfo=zone
                        ).astimezone(UTC)
                        ending = rng.choice(ENDINGS)
                        status = {
                            "early": "cancelled",
                            "late": "cancelled",
                            "no_show": "no_show",
                        }.get(ending, "completed")
                        booking_id = next_id
                        next_id += 1
                        rows.append(
                            {
                                "id": booking_id,
                                "clinic_id": clinic.id,
                                "client_id": rng.choice(client_ids),
                                "service_id": service_id,
                                "provider_id": provider_id,
                                "location_id": location_id,
                                "starts_at": starts,
                                "ends_at": starts + timedelta(minutes=50),
                                "blocks_until": starts + timedelta(minutes=50),
                                "status": status,
                                "source": "online" if visit % 2 else "staff",
                                "price_minor": 15000,
                                "currency": clinic.currency,
                                "requirements": {},
                                "policy_version_id": policy_version_id,
                                "policy_accepted_at": starts - timedelta(days=7),
                                "policy_incident": ending in ("late", "no_show"),
                                "manage_nonce": f"n{booking_id}",
                                "created_at": starts - timedelta(days=7),
                                "updated_at": starts,
                            }
                        )
                        entries.append(
                            _entry(clinic, "deposit_received", 5000, booking_id, starts, "deposit")
                        )
                        if ending == "completed":
                            entries.append(
                                _entry(clinic, "deposit_applied", 5000, booking_id, starts, None)
                            )
                            entries.append(
                                _entry(clinic, "card_payment", 10000, booking_id, starts)
                            )
                        elif ending == "early":
                            entries.append(
                                _entry(clinic, "refund", 5000, booking_id, starts, "deposit")
                            )
                        else:
                            kind = "no_show_fee" if ending == "no_show" else "late_cancellation_fee"
                            if ending == "late_arrival":
                                kind = "late_arrival_fee"
                                events.append(
                                    {
                                        "clinic_id": clinic.id,
                                        "booking_id": booking_id,
                                        "from_status": "confirmed",
                                        "to_status": "checked_in",
                                        "action": "checked_in_shorten_full_price",
                                        "at": starts + timedelta(minutes=20),
                                        "actor": "staff",
                                        "policy_version_id": policy_version_id,
                                        "details": {},
                                    }
                                )
                            charges.append(
                                {
                                    "clinic_id": clinic.id,
                                    "booking_id": booking_id,
                                    "kind": kind,
                                    "reference": "",
                                    "amount_minor": 7500,
                                    "currency": clinic.currency,
                                    "status": rng.choice(["paid", "waived", "declined"]),
                                    "created_at": starts + timedelta(hours=1),
                                }
                            )
                            entries.append(
                                _entry(clinic, "fee_charged", 7500, booking_id, starts, kind)
                            )
                    if offset % 7 == 0:
                        entries.append(
                            _entry(
                                clinic,
                                "gift_certificate_sold",
                                20000,
                                None,
                                starts,
                                None,
                                account=f"gift_certificate:{offset}-{index}",
                            )
                        )
                        entries.append(
                            _entry(
                                clinic,
                                "package_sold",
                                60000,
                                None,
                                starts,
                                None,
                                account=f"package:{offset}-{index}",
                            )
                        )
            for table, batch in (
                (Booking, rows),
                (BookingEvent, events),
                (BookingCharge, charges),
                (LedgerEntry, entries),
            ):
                for start in range(0, len(batch), 5000):
                    db.session.execute(insert(table), batch[start : start + 5000])
            db.session.commit()
            return len(entries)


def _entry(
    clinic: Clinic,
    kind: str,
    amount: int,
    booking_id: int | None,
    at: datetime,
    purpose: str | None = None,
    *,
    account: str | None = None,
) -> dict:
    return {
        "clinic_id": clinic.id,
        "kind": kind,
        "amount_minor": amount,
        "currency": clinic.currency,
        "booking_id": booking_id,
        "account": account,
        "details": {"purpose": purpose} if purpose else {},
        "at": at,
    }


def _time(http, url: str, headers: dict, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = http.get(url, headers=headers)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--per-day", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    rng = random.Random(20261206)

    with tempfile.TemporaryDirectory() as tmp, migrated_database(args.db, Path(tmp)) as database:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database.app_url,
                "DATABASE_OWNER_URL": database.owner_url,
                "SECRET_KEY": "bench",
                "MASTER_KEYS": TEST_MASTER_KEYS,
                "JOBS_BACKEND": "none",
            },
            instance_path=str(Path(tmp) / "instance"),
        )
        with app.app_context():
            for slug in ("bench", "neighbour"):
                make_clinic(slug, locations=("main", "second"))
            make_staff("bench", "owner@bench.example.com", Role.owner)
        started = time.perf_counter()
        written = _seed(app, "bench", 20, args.per_day, rng)
        _seed(app, "neighbour", 2, args.per_day, rng)
        seeded = time.perf_counter() - started
        if database.is_postgres:
            with database.owner.begin() as conn:
                conn.execute(text("ANALYZE"))
        with app.app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "bench"))
            with clinic_scope(clinic):
                visits = db.session.scalar(select(func.count()).select_from(Booking))
                providers = db.session.scalar(select(func.count()).select_from(Provider))

        http = app.test_client()
        headers = {
            "Authorization": f"Bearer {issue_token(app, 'bench', 'owner@bench.example.com')}"
        }
        base = "/api/v1/clinics/bench"
        year = f"from={FIRST_DAY}&to={FIRST_DAY + timedelta(days=DAYS - 1)}"
        cases = [("bare: clinic profile", base)]
        for name in ("money", "bookings", "utilisation"):
            cases.append((f"{name}: year by month", f"{base}/reports/{name}?{year}"))
            cases.append(
                (f"{name}: year by month and provider", f"{base}/reports/{name}?{year}&by=provider")
            )
        cases.append(
            ("money: year by day, CSV", f"{base}/reports/money?{year}&interval=day&format=csv")
        )
        cases.append(
            ("liabilities: year by week", f"{base}/reports/liabilities?{year}&interval=week")
        )
        for _, url in cases:  # warm up caches and connections
            _time(http, url, headers, 1)
        print(
            f"\nreports on {args.db}: a year at a clinic of {providers} providers, "
            f"{visits:,} visits, {written:,} ledger entries (seeded in {seeded:.1f} s); "
            f"{args.repeat} requests each"
        )
        print(f"{'case':42} {'p50 ms':>9} {'max ms':>9} {'p50 / bare':>11}")
        bare = None
        for label, url in cases:
            timings = sorted(_time(http, url, headers, args.repeat))
            p50 = statistics.median(timings)
            bare = bare or p50
            print(f"{label:42} {p50:9.1f} {timings[-1]:9.1f} {p50 / bare:10.1f}x")
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


if __name__ == "__main__":
    main()
