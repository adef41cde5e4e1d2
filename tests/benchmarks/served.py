"""Benchmark: the app under gunicorn on PostgreSQL, driven by wrk in turns with a bare floor app."""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from core import create_app
from core.bookings.models import Booking, BookingStatus
from core.clients.models import Client
from core.demo.local_stripe import WEBHOOK_SECRET, localstripe_python, running
from core.extensions import db
from core.tenancy.models import Clinic
from core.tenancy.scope import clinic_scope
from tests.benchmarks import floor_app
from tests.benchmarks.bookings import PROVIDERS, _load_history, _setup
from tests.benchmarks.client_search import _seed as seed_clients
from tests.database import TEST_MASTER_KEYS, TestDatabase, migrated_database
from tests.helpers import issue_token, set_clinic_settings
from tests.live_servers import environment, gunicorn, wait_until_up
from tests.local_days import clinic_day, local_time

ZONE = "America/Los_Angeles"  # make_clinic's default, which _setup keeps
#: Starts 75 minutes apart (60 of service, 15 of buffer) within 9:00-17:00: none overlaps.
DAY_STARTS = [clock_time(9), clock_time(10, 15), clock_time(11, 30), clock_time(12, 45)]
DAY_STARTS += [clock_time(14), clock_time(15, 15)]
#: Availability and the floor's read cover this many days from tomorrow.
WINDOW_DAYS = 14
#: Days ahead the benchmark's bookings go to, clear of the availability window so its answer
#: is the same in every round: online bookings on these days, staff bookings from the last on.
ONLINE_DAYS = (15, 40)
#: The booking window (max_advance_days) is set this long, so staff bookings stay inside it.
ADVANCE_DAYS = 730
GUEST = {
    "legal_first_name": "Maya",
    "legal_last_name": "Lopez",
    "phone": "(408) 555-0101",
    "date_of_birth": "1991-06-15",
}

LUA_COMMON = """
-- Written by tests/benchmarks/served.py for one wrk run.
local threads = {}
local started = 0

function setup(thread)
  thread:set("id", started)
  started = started + 1
  table.insert(threads, thread)
end

id = 0
issued = 0
statuses = {}
extra = {}

function count(name)
  extra[name] = (extra[name] or 0) + 1
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if handle then handle(status, body) end
end

function done(summary, latency, requests)
  local codes, non2xx, most, extras = {}, 0, 0, {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      codes[code] = (codes[code] or 0) + n
      if code < 200 or code > 299 then non2xx = non2xx + n end
    end
    for name, n in pairs(thread:get("extra")) do extras[name] = (extras[name] or 0) + n end
    most = math.max(most, thread:get("issued"))
  end
  local code_parts, extra_parts = {}, {}
  for code, n in pairs(codes) do table.insert(code_parts, string.format('"%d": %d', code, n)) end
  for name, n in pairs(extras) do table.insert(extra_parts, string.format('"%s": %d', name, n)) end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "p50_us": %.0f, "p99_us": %.0f, '
    .. '"non2xx": %d, "statuses": {%s}, "socket_errors": %d, "timeouts": %d, '
    .. '"issued_max": %d, "extra": {%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    non2xx, table.concat(code_parts, ", "), e.connect + e.read + e.write, e.timeout,
    most, table.concat(extra_parts, ", ")))
end
"""

# Each request a different slot: index i is provider i mod 20 at start i div 20, and each
# thread takes every n-th index from the run's offset, so no two requests (in this run or
# an earlier one) ask for the same provider at the same time, and neighbouring requests
# ask for different providers, as a clinic's front desk would.
LUA_SLOTS = """
function slot()
  local i = offset + id + nthreads * issued
  issued = issued + 1
  local p = i % #providers
  local s = math.floor(i / #providers)
  if s >= #starts then
    count("slots_ran_out")  -- asked again: these come back refused, and are counted
    s = s % #starts
  end
  return i, providers[p + 1], locations[p + 1], starts[s + 1]
end
"""

LUA_BOOK = """
function request()
  local i, provider, location, starts_at = slot()
  local body = string.format(
    '{"client_id": %d, "service_id": %d, "location_id": %d, "provider_id": %d, "starts_at": "%s"}',
    clients[i % #clients + 1], service_id, location, provider, starts_at)
  return wrk.format("POST", path, headers, body)
end
"""

LUA_GET = """
function request()
  local path = paths[(id + nthreads * issued) % #paths + 1]
  issued = issued + 1
  return wrk.format("GET", path, headers)
end
"""

# Online booking, then the card step on the booking's self-service link: each answer with a
# link queues its card step, which the thread's next request sends before booking again.
LUA_ONLINE_CARD = """
links = {}

function request()
  if #links > 0 then
    local link = table.remove(links, 1)
    return wrk.format("POST", self_service .. link .. "/card-setup", headers,
      '{"accept_policy": true}')
  end
  local i, provider, location, starts_at = slot()
  local body = string.format(
    '{"client": {"legal_first_name": "%s", "legal_last_name": "%s", "email": "guest%d@example.com", '
    .. '"phone": "%s", "date_of_birth": "%s"}, "service_id": %d, "location_id": %d, '
    .. '"provider_id": %d, "starts_at": "%s", "accept_policy": true}',
    guest_first, guest_last, i, guest_phone, guest_born, service_id, location, provider, starts_at)
  return wrk.format("POST", path, headers, body)
end

function handle(status, body)
  if status == 201 then
    local link = string.match(body, '"self_service_token"%s*:%s*"([^"]+)"')
    if link then
      count("booked")
      table.insert(links, link)
    end
  elseif status == 200 and string.find(body, '"client_secret"', 1, true) then
    count("card_setups")
  end
end
"""


def _lua(value: Any) -> str:
    """Return ``value`` (str, int, list or dict of those) as a Lua literal."""
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string of ASCII is a Lua string too
    if isinstance(value, bool | int):
        return str(int(value))
    if isinstance(value, list):
        return "{" + ", ".join(_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


@dataclass
class Load:
    """What one wrk run sends: its Lua body, its settings, and where its slots start."""

    body: str
    settings: dict[str, Any]
    #: Slot indices already used by earlier runs, shared by the runs that take slots.
    slots: dict[str, int] | None = None

    def script(self, threads: int) -> str:
        settings = {**self.settings, "nthreads": threads}
        if self.slots is not None:
            settings["offset"] = self.slots["next"]
        assignments = "\n".join(f"{name} = {_lua(value)}" for name, value in settings.items())
        return (
            LUA_COMMON
            + assignments
            + "\n"
            + (LUA_SLOTS if self.slots is not None else "")
            + self.body
        )


@dataclass
class Scenario:
    """One line of the table: the app's load and, unless excluded from the ratio, the floor's."""

    what: str
    app: Load
    floor: Load | None
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"app": [], "floor": []})


def _upcoming(database: TestDatabase, ids: dict[str, Any], days: int) -> None:
    """Book every other start of each provider's day, from tomorrow for ``days`` days, as the owner.

    The availability window then has taken and free times alike, as a working clinic's does.
    """
    now = datetime.now(UTC)
    rows = []
    for n, provider in enumerate(ids["providers"]):
        for offset in range(1, days + 1):
            day = clinic_day(ZONE, offset)
            for start in DAY_STARTS[::2]:
                starts_at = local_time(ZONE, day, start.hour, start.minute).astimezone(UTC)
                rows.append(
                    {
                        "clinic_id": ids["clinic"],
                        "client_id": ids["client"],
                        "service_id": ids["service"],
                        "provider_id": provider,
                        "location_id": ids["locations"][n % 2],
                        "starts_at": starts_at,
                        "ends_at": starts_at + timedelta(minutes=60),
                        "blocks_until": starts_at + timedelta(minutes=75),
                        "status": BookingStatus.confirmed,
                        "source": "staff",
                        "price_minor": 10000,
                        "currency": "USD",
                        "requirements": {},
                        "policy_version_id": ids["policy_version"],
                        "policy_accepted_at": now,
                        "manage_nonce": "upcoming",
                        "policy_incident": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    with database.owner.begin() as conn:
        conn.execute(insert(Booking.__table__), rows)
        conn.execute(text("ANALYZE booking"))


def _floor_table(database: TestDatabase, clinic_id: int) -> None:
    """Create the floor's table beside the app's and fill it with the clinic's bookings' times."""
    floor_app.db.metadata.create_all(database.owner)
    with database.owner.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO floor_row (provider_id, starts_at, ends_at) "
                "SELECT provider_id, starts_at, ends_at FROM booking WHERE clinic_id = :clinic"
            ),
            {"clinic": clinic_id},
        )
        conn.execute(text("ANALYZE floor_row"))


def _starts(first_day: int, last_day: int) -> list[str]:
    """Every start of DAY_STARTS on the clinic's days from ``first_day`` to before ``last_day``, local time."""
    return [
        local_time(ZONE, clinic_day(ZONE, offset), start.hour, start.minute).isoformat()
        for offset in range(first_day, last_day)
        for start in DAY_STARTS
    ]


def _seed(database: TestDatabase, instance: Path, history: int, clients: int) -> dict[str, Any]:
    """Seed the clinics the benchmark books at; return the ids and the staff token it needs."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database.app_url,
            "DATABASE_OWNER_URL": database.owner_url,
            "SECRET_KEY": "bench",
            "MASTER_KEYS": TEST_MASTER_KEYS,
            "JOBS_BACKEND": "none",
            "ARGON2_COST": (1, 1024, 1),
        },
        instance_path=str(instance),
    )
    bench = _setup(app, "bench")
    # Cards: the same clinic again, holding each online booking until a card is on file.
    cards = _setup(app, "cards")
    with app.app_context():
        wide = {"max_advance_days": ADVANCE_DAYS}
        set_clinic_settings("bench", bookings=wide)
        set_clinic_settings("cards", bookings=wide, policy={"guarantee": "card_on_file"})
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "cards"))
        clinic.stripe_account_id = "acct_bench_cards"
        db.session.commit()
    seed_clients(app, "bench", clients, random.Random(20261206))
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "bench"))
        with clinic_scope(clinic):
            # Staff book these clients in turn, as a front desk books whoever calls.
            bench["clients"] = list(db.session.scalars(select(Client.id).order_by(Client.id)))
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _load_history(database, bench, 0, history - 1, base=hour)
    _upcoming(database, bench, WINDOW_DAYS)
    _floor_table(database, bench["clinic"])
    token = issue_token(app, "bench", "owner@bench.example.com")
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return {"bench": bench, "cards": cards, "token": token}


def _wrk(url: str, load: Load, args: argparse.Namespace, seconds: int, folder: Path) -> dict:
    """Run wrk on ``url`` with ``load`` for ``seconds``; return its figures from the script's ``done()``."""
    script = folder / f"load-{time.monotonic_ns()}.lua"
    script.write_text(load.script(args.threads))
    finished = subprocess.run(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    line = next((x for x in finished.stdout.splitlines() if x.startswith("WRK-JSON ")), None)
    if finished.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({finished.returncode}):\n{finished.stdout}{finished.stderr}"
        )
    figures = json.loads(line.removeprefix("WRK-JSON "))
    if load.slots is not None:
        # Every index a thread asked for is spent, answered or not: the next run starts after.
        load.slots["next"] += args.threads * (figures["issued_max"] + 1)
    figures["rate"] = figures["requests"] / (figures["duration_us"] / 1e6)
    return figures


def _scenarios(seeded: dict[str, Any]) -> list[Scenario]:
    bench, cards = seeded["bench"], seeded["cards"]
    auth = {"Authorization": f"Bearer {seeded['token']}", "Content-Type": "application/json"}
    json_only = {"Content-Type": "application/json"}
    first, last = clinic_day(ZONE, 1), clinic_day(ZONE, WINDOW_DAYS)
    api = "/api/v1/clinics/bench"
    staff_slots = {"next": 0}
    online_slots = {"next": 0}
    booking = {
        "providers": bench["providers"],
        "locations": [bench["locations"][n % 2] for n in range(PROVIDERS)],
        # Staff bookings from the last online day to the end of the booking window.
        "starts": _starts(ONLINE_DAYS[1], ADVANCE_DAYS - 1),
        "clients": bench["clients"],
        "service_id": bench["service"],
    }
    availability = f"{api}/availability?service_id={bench['service']}&from={first}&to={last}"
    day_from = local_time(ZONE, first, 0).isoformat()
    day_before = local_time(ZONE, clinic_day(ZONE, 2), 0).isoformat()
    quoted = urllib.parse.quote
    floor_reads = [f"/rows?provider={p}&from={quoted(day_from)}" for p in bench["providers"]]

    def read(paths: list[str], headers: dict[str, str] = auth) -> Load:
        return Load(LUA_GET, {"paths": paths, "headers": headers})

    def floor_read() -> Load:
        return Load(LUA_GET, {"paths": floor_reads, "headers": {}})

    return [
        Scenario(
            "staff booking (POST /bookings)",
            Load(LUA_BOOK, {**booking, "path": f"{api}/bookings", "headers": auth}, staff_slots),
            Load(LUA_BOOK, {**booking, "path": "/insert", "headers": json_only}, {"next": 0}),
        ),
        Scenario(
            "availability, one provider",
            # Public, as the booking pages' visitors ask it: no token.
            read([f"{availability}&provider_id={p}" for p in bench["providers"]], {}),
            floor_read(),
        ),
        Scenario(
            f"availability, all {PROVIDERS} providers", read([availability], {}), floor_read()
        ),
        Scenario(
            "GET /bookings (a day's schedule)",
            read([f"{api}/bookings?from={quoted(day_from)}&before={quoted(day_before)}"]),
            floor_read(),
        ),
        Scenario("GET /clients (first page)", read([f"{api}/clients"]), floor_read()),
        Scenario("booking page: the menu", read(["/book/bench/"], {}), floor_read()),
        Scenario(
            "booking page: a service's times",
            read([f"/book/bench/services/{bench['service']}"], {}),
            floor_read(),
        ),
        Scenario(
            "online booking + card on file (Stripe)",
            Load(
                LUA_ONLINE_CARD,
                {
                    "providers": cards["providers"],
                    "locations": [cards["locations"][n % 2] for n in range(PROVIDERS)],
                    "starts": _starts(*ONLINE_DAYS),
                    "service_id": cards["service"],
                    "path": "/api/v1/clinics/cards/bookings/online",
                    "self_service": "/api/v1/clinics/cards/self-service/",
                    "headers": json_only,
                    "guest_first": GUEST["legal_first_name"],
                    "guest_last": GUEST["legal_last_name"],
                    "guest_phone": GUEST["phone"],
                    "guest_born": GUEST["date_of_birth"],
                },
                online_slots,
            ),
            None,
        ),
    ]


def _rss(master: int) -> list[tuple[int, int]]:
    """Return (pid, VmRSS in kB) of each worker of the gunicorn ``master``."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    found = []
    for pid in map(int, children):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                found.append((pid, int(line.split()[1])))
    return found


def _peek(base: str, what: str, load: Load) -> None:
    """Ask a read once and print what came back, so the table's figures say what they measured."""
    path = load.settings["paths"][0]
    request = urllib.request.Request(base + path, headers=load.settings["headers"])
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as refused:
        raise RuntimeError(f"{what}: {refused.code} {refused.read()[:500]!r}") from None
    size = f"{status}, {len(body):,} bytes"
    if body.startswith((b"{", b"[")):
        found = json.loads(body)
        if isinstance(found, list):
            size += f", {len(found)} rows"
        elif "count" in found:
            size += f", count {found['count']}"
    print(f"  {what:<40} {size:<32} GET {path}")


def _log_problems(log: Path) -> int:
    return sum(
        1
        for line in log.read_text().splitlines()
        if "Traceback" in line or "[ERROR]" in line or " ERROR " in line or "WARNING" in line
    )


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["duration_us"] for r in runs) / 1e6
    return {
        "rate": requests / seconds,
        "p50": statistics.median(r["p50_us"] for r in runs) / 1000,
        "p99": max(r["p99_us"] for r in runs) / 1000,
        "non2xx": sum(r["non2xx"] for r in runs),
        "socket": sum(r["socket_errors"] + r["timeouts"] for r in runs),
    }


def _report(scenarios: list[Scenario], seconds: int) -> None:
    header = (
        f"{'what':<40} {'floor req/s':>11} {'app req/s':>9} {'ratio':>6} "
        f"{'app p50':>9} {'app p99':>9} {'non-2xx':>7}  ratio by round"
    )
    print(header)
    print("-" * len(header))
    notes = []
    for scenario in scenarios:
        app = _summary(scenario.runs["app"])
        if scenario.floor is not None:
            floor = _summary(scenario.runs["floor"])
            floor_rate, ratio = f"{floor['rate']:11.1f}", f"{app['rate'] / floor['rate']:6.2f}"
            rounds = " ".join(
                f"{a['rate'] / f['rate']:.2f}"
                for a, f in zip(scenario.runs["app"], scenario.runs["floor"], strict=True)
            )
            if floor["non2xx"] or floor["socket"]:
                notes.append(
                    f"{scenario.what}: the floor had {floor['non2xx']} non-2xx answers and "
                    f"{floor['socket']} socket errors or timeouts"
                )
        else:
            floor_rate, ratio, rounds = f"{'-':>11}", f"{'-':>6}", "(not in a ratio)"
        print(
            f"{scenario.what:<40} {floor_rate} {app['rate']:9.1f} {ratio} "
            f"{app['p50']:6.1f} ms {app['p99']:6.1f} ms {app['non2xx']:7d}  {rounds}"
        )
        if app["socket"]:
            notes.append(f"{scenario.what}: {app['socket']} socket errors or timeouts at the app")
        codes: dict[str, int] = {}
        extra: dict[str, int] = {}
        for run in scenario.runs["app"]:
            for code, n in run["statuses"].items():
                codes[code] = codes.get(code, 0) + n
            for name, n in run["extra"].items():
                extra[name] = extra.get(name, 0) + n
        if app["non2xx"]:
            notes.append(f"{scenario.what}: answers by status {dict(sorted(codes.items()))}")
        if extra.get("slots_ran_out"):
            notes.append(f"{scenario.what}: {extra['slots_ran_out']} requests found no slot left")
        if "booked" in extra:
            total = seconds * len(scenario.runs["app"])
            notes.append(
                f"{scenario.what}: {extra['booked']} bookings held, "
                f"{extra.get('card_setups', 0)} card steps started "
                f"({extra.get('card_setups', 0) / total:.1f} booked with a card per second)"
            )
    for note in notes:
        print(f"  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="each wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="turns of floor then app")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per load, not counted")
    parser.add_argument("--history", type=int, default=10_000, help="past bookings at the clinic")
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="WORDS",
        help="run only the cases whose name holds WORDS (repeatable; default: all)",
    )
    args = parser.parse_args()
    # Stopped by a signal, the servers are stopped and the database dropped all the same.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    localstripe = localstripe_python()
    if localstripe is None:
        sys.exit("localstripe is needed: make .venv-localstripe or set LOCALSTRIPE_PYTHON")

    load_before = _load_average()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        database = stack.enter_context(migrated_database("postgresql", tmp))
        started = time.perf_counter()
        seeded = _seed(database, tmp / "seed-instance", args.history, args.clients)
        print(
            f"\nserved benchmark on PostgreSQL: clinic with {PROVIDERS} providers, 2 locations, "
            f"{args.history:,} past bookings, {args.clients:,} clients (seeded in "
            f"{time.perf_counter() - started:.0f} s)\n"
            f"gunicorn -w 2 (sync) for the app and the floor; wrk -t{args.threads} "
            f"-c{args.connections} -d{args.seconds:g}s, {args.rounds} rounds of floor then app; "
            f"load average before: {load_before}"
        )
        stripe = stack.enter_context(running(localstripe, tmp))
        app_url, app_server = stack.enter_context(
            gunicorn(
                "wsgi:app",
                environment(
                    CLINIC_SAAS_ENV="production",
                    DATABASE_URL=database.app_url,
                    DATABASE_OWNER_URL=database.owner_url or "",
                    SECRET_KEY="served-benchmark",
                    # wrk calls from one address: the public limits would measure themselves.
                    PUBLIC_READ_RATE_LIMIT="10000000 per minute",
                    PUBLIC_WRITE_RATE_LIMIT="10000000 per minute",
                    MASTER_KEYS=TEST_MASTER_KEYS,
                    INSTANCE_PATH=str(tmp / "instance"),
                    # Jobs run in their own workers in production, not in the web's.
                    JOBS_BACKEND="none",
                    # Nothing here signs in; the counters need no Redis.
                    RATELIMIT_ALLOW_PER_PROCESS="1",
                    STRIPE_SECRET_KEY="sk_test_local",
                    STRIPE_PUBLISHABLE_KEY="pk_test_local",
                    STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                    STRIPE_API_BASE=stripe.url,
                ),
                tmp / "app.log",
            )
        )
        floor_url, floor_server = stack.enter_context(
            gunicorn(
                "tests.benchmarks.floor_app:create_app()",
                environment(FLOOR_DATABASE_URL=database.owner_url or ""),
                tmp / "floor.log",
            )
        )
        wait_until_up(app_url + "/healthz", app_server.pid, tmp / "app.log")
        wait_until_up(floor_url + "/rows?provider=0", floor_server.pid, tmp / "floor.log")

        scenarios = [
            s
            for s in _scenarios(seeded)
            if not args.only or any(words in s.what for words in args.only)
        ]
        if not scenarios:
            sys.exit(f"no case's name holds any of {args.only}")
        print("\neach read asked once before the runs:")
        for scenario in scenarios:
            if "paths" in scenario.app.settings:
                _peek(app_url, scenario.what, scenario.app)
        floor_read = next(
            (s.floor for s in scenarios if s.floor and "paths" in s.floor.settings), None
        )
        if floor_read is not None:
            _peek(floor_url, "the floor's read", floor_read)
        try:
            if args.warmup:
                for scenario in scenarios:
                    if scenario.floor is not None:
                        _wrk(floor_url, scenario.floor, args, args.warmup, tmp)
                    _wrk(app_url, scenario.app, args, args.warmup, tmp)
            # In turns, so a slow moment of the machine falls on both rather than on one.
            for _ in range(args.rounds):
                for scenario in scenarios:
                    if scenario.floor is not None:
                        scenario.runs["floor"].append(
                            _wrk(floor_url, scenario.floor, args, args.seconds, tmp)
                        )
                    scenario.runs["app"].append(
                        _wrk(app_url, scenario.app, args, args.seconds, tmp)
                    )
        except Exception:
            print(f"app log:\n{(tmp / 'app.log').read_text()[-4000:]}", file=sys.stderr)
            raise
        print()
        _report(scenarios, args.seconds)
        print("\nworker memory after the run (VmRSS):")
        for name, pid in (("app", app_server.pid), ("floor", floor_server.pid)):
            sizes = ", ".join(f"{kb / 1024:.0f} MB (pid {p})" for p, kb in _rss(pid))
            print(f"  {name:<5} {sizes}")
        problems = _log_problems(tmp / "app.log")
        if problems:
            print(f"the app's log has {problems} lines of errors or warnings:")
            print((tmp / "app.log").read_text()[-3000:])
        print(f"load average after: {_load_average()}")


if __name__ == "__main__":
    main()
