"""Benchmark: availability with 10,000 and with 1,000,000 bookings of history, and booking throughput.

Run:  python -m tests.benchmarks.bookings [--db postgresql] [--history 10000 1000000]

Two clinics with 20 providers and 2 locations each, among 1,000 clinics: one
with 10,000 bookings of history, one with 1,000,000 (the history is the
clinic's own past bookings, spread over its providers). Availability for one
service over 14 days is timed through the full HTTP stack, the two clinics
asked in turn, so a slow moment of the machine falls on both sizes alike.
Booking creation through the API is timed next to a bare endpoint on the
same stack (token auth, clinic scope, one ORM insert, commit), also in turns,
and printed as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path

from sqlalchemy import insert, select, text

from core import create_app
from core.accounts.access import Permission, requires
from core.accounts.models import Role
from core.accounts.services import add_staff
from core.bookings.models import PolicyVersion
from core.catalog import services as catalog
from core.clients import services as clients
from core.extensions import db
from core.idempotency import IdempotencyRecord
from core.schedules import services as schedules
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.database import TEST_MASTER_KEYS, migrated_database
from tests.helpers import issue_token, make_clinic, make_staff

PROVIDERS = 20
OTHER_CLINICS = 998


def _setup(app, slug: str) -> dict:
    with app.app_context():
        make_clinic(slug, locations=("downtown", "uptown"))
        make_staff(slug, f"owner@{slug}.example.com", Role.owner)
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            locations = list(db.session.scalars(select(Location).order_by(Location.id)))
            provider_ids = []
            for n in range(PROVIDERS):
                membership = add_staff(
                    f"p{n}@{slug}.example.com",
                    f"Provider {n}",
                    Role.provider,
                    "benchmark password 1",
                )
                provider = schedules.add_provider(membership.id, f"Provider {n}", "esthetician")
                schedules.set_hours(
                    provider,
                    [
                        {
                            "location_id": locations[n % 2].id,
                            "weekday": day,
                            "starts": clock_time(9),
                            "ends": clock_time(17),
                        }
                        for day in range(7)
                    ],
                )
                provider_ids.append(provider.id)
            service = catalog.save_service(
                None,
                {
                    "slug": "facial",
                    "name": "Facial",
                    "category": "esthetician",
                    "duration_minutes": 60,
                    "buffer_minutes": 15,
                    "price": "100.00",
                    "location_ids": [loc.id for loc in locations],
                    "provider_ids": provider_ids,
                },
                clinic.currency,
            )
            client = clients.create_client(
                {"legal_first_name": "History", "legal_last_name": "Client"}
            )
            version = PolicyVersion(digest="0" * 64, clauses=[])
            db.session.add(version)
            db.session.commit()
            return {
                "slug": slug,
                "clinic": clinic.id,
                "locations": [loc.id for loc in locations],
                "providers": provider_ids,
                "service": service.id,
                "client": client.id,
                "policy_version": version.id,
            }


def _other_clinics(database) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "slug": f"other-{n}",
            "name": f"Other {n}",
            "timezone": "America/New_York",
            "currency": "USD",
            "country": "US",
            "status": "active",
            "idle_timeout_minutes": 15,
            "enabled_plugins": [],
            "plugin_settings": {},
            "booking_settings": {},
            "created_at": now,
            "updated_at": now,
        }
        for n in range(OTHER_CLINICS)
    ]
    with database.owner.begin() as conn:
        conn.execute(insert(Clinic.__table__), rows)


#: This benchmark's history ends here; the clock is moved to just after it.
HISTORY_END = datetime(2026, 11, 1, tzinfo=UTC)


def _load_history(database, ids: dict, first: int, last: int, base: datetime = HISTORY_END) -> None:
    """Insert past bookings first..last (completed), spread over the providers, as the owner.

    They run back an hour at a time from ``base``, one per provider each hour.
    """
    params = {
        **{k: ids[k] for k in ("clinic", "client", "service", "policy_version")},
        "start": first,
        "end": last,
        "loc1": ids["locations"][0],
        "loc2": ids["locations"][1],
    }
    providers = ",".join(str(p) for p in ids["providers"])
    columns = (
        "clinic_id, client_id, service_id, provider_id, location_id, starts_at, ends_at, blocks_until, status, "
        "source, price_minor, currency, requirements, policy_version_id, policy_accepted_at, manage_nonce, "
        "policy_incident, created_at, updated_at"
    )
    with database.owner.begin() as conn:
        if database.is_postgres:
            conn.execute(
                text(f"""
                INSERT INTO booking ({columns})
                SELECT :clinic, :client, :service, (ARRAY[{providers}])[1 + g % {PROVIDERS}],
                       CASE WHEN (g % {PROVIDERS}) % 2 = 0 THEN :loc1 ELSE :loc2 END,
                       t, t + interval '60 minutes', t + interval '75 minutes', 'completed', 'staff', 10000, 'USD',
                       '{{}}', :policy_version, t, 'history', false, t, t
                FROM generate_series(CAST(:start AS integer), CAST(:end AS integer)) AS g,
                     LATERAL (SELECT TIMESTAMPTZ '{base.isoformat()}' - ((g / {PROVIDERS}) + 1) * interval '1 hour') AS s(t)
            """),
                params,
            )
            conn.execute(text("ANALYZE booking"))
        else:
            conn.execute(
                text(f"""
                WITH RECURSIVE series(g) AS (SELECT :start UNION ALL SELECT g + 1 FROM series WHERE g < :end)
                INSERT INTO booking ({columns})
                SELECT :clinic, :client, :service,
                       CAST(json_extract('[{providers}]', '$[' || (g % {PROVIDERS}) || ']') AS INTEGER),
                       CASE WHEN (g % {PROVIDERS}) % 2 = 0 THEN :loc1 ELSE :loc2 END,
                       strftime('%Y-%m-%d %H:%M:%S.000000', '{base.strftime("%Y-%m-%d %H:%M:%S")}', '-' || ((g / {PROVIDERS}) + 1) || ' hours'),
                       strftime('%Y-%m-%d %H:%M:%S.000000', '{base.strftime("%Y-%m-%d %H:%M:%S")}', '-' || ((g / {PROVIDERS}) + 1) || ' hours', '+60 minutes'),
                       strftime('%Y-%m-%d %H:%M:%S.000000', '{base.strftime("%Y-%m-%d %H:%M:%S")}', '-' || ((g / {PROVIDERS}) + 1) || ' hours', '+75 minutes'),
                       'completed', 'staff', 10000, 'USD', '{{}}', :policy_version,
                       '2026-01-01 00:00:00.000000', 'history', 0, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000'
                FROM series
            """),
                params,
            )
            conn.execute(text("ANALYZE"))


def _percentiles(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def _availability(http, clinics: list[dict], repeat: int) -> list[tuple[float, float, int]]:
    """Time availability at each clinic, asking them in turn; return (p50, p95, slots) each."""

    def ask(ids: dict) -> tuple[float, int]:
        # Worked out each time, not kept: the history's weight is what is measured here
        # (a kept answer costs the same at any history; the served benchmark shows it).
        http.application.extensions.pop("clinic_saas.availability_answers", None)
        started = time.perf_counter()
        response = http.get(
            f"/api/v1/clinics/{ids['slug']}/availability",
            query_string={"service_id": ids["service"], "from": "2026-11-24", "to": "2026-12-07"},
        )
        took = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.get_data(as_text=True)
        return took, response.get_json()["count"]

    for ids in clinics:
        for _ in range(3):
            ask(ids)
    timings: list[list[float]] = [[] for _ in clinics]
    counts = [0 for _ in clinics]
    for _ in range(repeat):
        for n, ids in enumerate(clinics):
            took, counts[n] = ask(ids)
            timings[n].append(took)
    return [(*_percentiles(t), c) for t, c in zip(timings, counts, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--history", type=int, nargs=2, default=[10_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--bookings", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, migrated_database(args.db, Path(tmp)) as database:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database.app_url,
                "DATABASE_OWNER_URL": database.owner_url,
                "SECRET_KEY": "bench",
                "MASTER_KEYS": TEST_MASTER_KEYS,
                "JOBS_BACKEND": "none",
                "ARGON2_COST": (1, 1024, 1),
            },
            instance_path=str(Path(tmp) / "instance"),
        )

        @app.route("/api/v1/clinics/<clinic_slug>/bench/bare", methods=["POST"])
        @requires(Permission.manage_bookings)
        def bare(clinic_slug: str):
            # The baseline: same auth, scope and session, one ORM insert and a commit.
            db.session.add(
                IdempotencyRecord(
                    scope="bench", key=str(time.perf_counter_ns()), request_digest="0" * 64
                )
            )
            db.session.commit()
            return {"ok": True}, 201

        small_size, large_size = args.history
        small = _setup(app, "small")
        large = _setup(app, "bench")
        _other_clinics(database)
        token = issue_token(app, "bench", "owner@bench.example.com")
        headers = {"Authorization": f"Bearer {token}"}
        http = app.test_client()
        import time_machine

        print(
            f"\nbookings benchmark on {args.db}: clinics with {PROVIDERS} providers and 2 locations, "
            f"{OTHER_CLINICS + 2:,} clinics in all; availability for 14 days, {args.repeat} requests each"
        )
        loads = []
        for ids, size in ((small, small_size), (large, large_size)):
            started = time.perf_counter()
            _load_history(database, ids, 0, size - 1)
            loads.append(time.perf_counter() - started)
        with time_machine.travel(datetime(2026, 11, 23, 17, 0, tzinfo=UTC), tick=True):
            measured = _availability(http, [small, large], args.repeat)
            for size, took, (p50, p95, count) in zip(args.history, loads, measured, strict=True):
                print(
                    f"  history {size:>9,} bookings (loaded in {took:5.1f} s): availability p50 {p50:6.2f} ms, p95 {p95:6.2f} ms, {count} slots"
                )
            print(
                f"  history ratio p50 {large_size:,} / {small_size:,}: {measured[1][0] / measured[0][0]:.2f}"
            )

            ids = large
            # Throughput: bookings created one after another at free slots, against the bare insert.
            days = http.get(
                "/api/v1/clinics/bench/availability",
                query_string={
                    "service_id": ids["service"],
                    "from": "2026-11-24",
                    "to": "2026-12-07",
                },
            ).get_json()["items"]
            # Starts two hours apart for each provider: none overlaps another (60 minutes + 15 buffer).
            chosen = [
                {
                    "provider_id": day["provider_id"],
                    "location_id": day["location_id"],
                    "starts_at": start,
                }
                for day in days
                for start in day["starts"]
                if start[14:16] == "00" and int(start[11:13]) % 2 == 1
            ][: args.bookings]
            # The two endpoints take turns in rounds, so a slow moment of the
            # machine falls on both rather than on whichever ran second.
            booking_time = bare_time = 0.0
            for first in range(0, len(chosen), 20):
                started = time.perf_counter()
                for slot in chosen[first : first + 20]:
                    response = http.post(
                        "/api/v1/clinics/bench/bookings",
                        json={
                            "client_id": ids["client"],
                            "service_id": ids["service"],
                            "location_id": slot["location_id"],
                            "provider_id": slot["provider_id"],
                            "starts_at": slot["starts_at"],
                        },
                        headers=headers,
                    )
                    assert response.status_code == 201, response.get_data(as_text=True)
                booking_time += time.perf_counter() - started
                started = time.perf_counter()
                for _ in chosen[first : first + 20]:
                    response = http.post("/api/v1/clinics/bench/bench/bare", headers=headers)
                    assert response.status_code == 201
                bare_time += time.perf_counter() - started
            booking_rate = len(chosen) / booking_time
            bare_rate = len(chosen) / bare_time
        print(
            f"  booking creation: {booking_rate:7.1f}/s; bare insert endpoint: {bare_rate:7.1f}/s; "
            f"ratio {booking_rate / bare_rate:.2f} ({len(chosen)} requests each)"
        )
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


if __name__ == "__main__":
    main()
