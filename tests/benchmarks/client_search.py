"""Benchmark: client search at a clinic with 10,000 clients, against a bare endpoint in the same run.

Run:  python -m tests.benchmarks.client_search [--db postgresql] [--clients 10000]

It builds a fresh database, seeds one clinic with the given number of
clients (and a second clinic with as many, so isolation is exercised),
then times searches through the full HTTP stack (auth, clinic scope,
validation, serialisation) and prints p50/p95 next to the clinic-profile
endpoint, which does the same stack work around one trivial query.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

from core import create_app
from core.accounts.models import Role
from core.clients.models import Client
from core.clients.services import fold
from core.extensions import db
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.database import TEST_MASTER_KEYS, migrated_database
from tests.helpers import PASSWORD, login, make_clinic, make_staff

FIRST = [
    "Maria",
    "Jose",
    "Ana",
    "Sofia",
    "Liam",
    "Noah",
    "Emma",
    "Olivia",
    "Zoë",
    "Chloé",
    "Aroha",
    "Mere",
    "Wei",
    "Min",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Grace",
    "Hannah",
    "Lucas",
    "Mateo",
    "Isla",
    "Ruby",
]
LAST = [
    "García",
    "Martinez",
    "Nguyen",
    "Smith",
    "Johnson",
    "Brown",
    "Tane",
    "Ngata",
    "Patel",
    "Singh",
    "Kim",
    "Lee",
    "Chen",
    "Wang",
    "Hernández",
    "Lopez",
    "Williams",
    "Taylor",
    "Walker",
    "Wilson",
]


def _seed(app, slug: str, count: int, rng: random.Random) -> None:
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        with clinic_scope(clinic):
            batch = []
            for n in range(count):
                first, last = rng.choice(FIRST), rng.choice(LAST) + ("" if n % 3 else f"-{n % 97}")
                batch.append(
                    {
                        "clinic_id": clinic.id,
                        "legal_first_name": first,
                        "legal_last_name": last,
                        "email": f"{fold(first)}.{fold(last)}.{n}@example.com",
                        "phone": f"+1408{n:07d}",
                        "preferred_channel": "email",
                        "search_first": fold(first),
                        "search_last": fold(last),
                    }
                )
                if len(batch) == 2000:
                    db.session.execute(insert(Client), batch)
                    batch = []
            if batch:
                db.session.execute(insert(Client), batch)
            db.session.commit()


def _time(http, url: str, params: dict | None, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = http.get(url, query_string=params)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.get_data(as_text=True)
    return timings


def _summary(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(20261121)

    with tempfile.TemporaryDirectory() as tmp, migrated_database(args.db, Path(tmp)) as database:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database.app_url,
                "DATABASE_OWNER_URL": database.owner_url,
                "SECRET_KEY": "bench",
                "MASTER_KEYS": TEST_MASTER_KEYS,
                "LOGIN_RATE_LIMIT": "1000 per minute",
            },
            instance_path=str(Path(tmp) / "instance"),
        )
        with app.app_context():
            make_clinic("bench")
            make_clinic("neighbour")
            make_staff("bench", "owner@bench.example.com", Role.owner)
        started = time.perf_counter()
        _seed(app, "bench", args.clients, rng)
        _seed(app, "neighbour", args.clients, rng)
        seeded = time.perf_counter() - started
        if database.is_postgres:
            with database.owner.begin() as conn:
                conn.execute(text("ANALYZE client"))

        http = app.test_client()
        assert login(http, "bench", "owner@bench.example.com", PASSWORD).status_code == 201
        base = "/api/v1/clinics/bench"
        cases = [
            ("bare: clinic profile", base, None),
            ("search: one name prefix 'mar'", f"{base}/clients", {"q": "mar"}),
            ("search: first + last 'ana gar'", f"{base}/clients", {"q": "ana gar"}),
            ("search: accented 'chloe hernandez'", f"{base}/clients", {"q": "chloe hernandez"}),
            ("search: email prefix", f"{base}/clients", {"q": "grace.walker"}),
            ("search: phone digits", f"{base}/clients", {"q": "408 000 4242"}),
            ("list: first page, no query", f"{base}/clients", None),
        ]
        for _, url, params in cases:  # warm up caches and connections
            _time(http, url, params, 5)
        print(
            f"\nclient search on {args.db}: {args.clients:,} clients at the clinic, "
            f"{args.clients:,} at another (seeded in {seeded:.1f} s), {args.repeat} requests each"
        )
        print(f"{'case':40} {'p50 ms':>8} {'p95 ms':>8} {'p50 / bare':>11}")
        bare_p50 = None
        for label, url, params in cases:
            p50, p95 = _summary(_time(http, url, params, args.repeat))
            bare_p50 = bare_p50 or p50
            print(f"{label:40} {p50:8.2f} {p95:8.2f} {p50 / bare_p50:10.2f}x")
        if database.is_postgres:
            with database.owner.connect() as conn:
                plan = (
                    conn.execute(
                        text(
                            "EXPLAIN SELECT * FROM client WHERE clinic_id = 1 AND "
                            "search_first >= 'mar' AND search_first < 'mar\U0010ffff' LIMIT 25"
                        )
                    )
                    .scalars()
                    .all()
                )
            print("plan for a name prefix:", " / ".join(line.strip() for line in plan[:3]))
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


if __name__ == "__main__":
    main()
