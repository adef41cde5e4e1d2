"""Run tests with the clock set to the instants that break date assumptions.

A test that builds "today" from the UTC date, or "a year ago" with
``date.replace``, passes at some hours and fails at others. These options move
the clock of every test (``time_machine``, ticking, so time still passes) to a
chosen instant, so such a test fails on every run instead of one run in three:

- ``pytest --clock-at NAME|ISO-8601`` starts each test at that instant (or
  ``CLINIC_SAAS_TEST_CLOCK``); use it to run the whole suite at one instant.
- ``pytest --clock-sweep -m clock_sensitive`` runs each test marked
  ``clock_sensitive`` once at every instant in :data:`INSTANTS`; CI runs it,
  so a new test with a hidden date assumption is caught the day it is marked.

A test that travels itself (``time_machine.travel``) still goes where it says:
the inner travel wins while it lasts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import time_machine

#: Instants where a date assumption breaks, by name. Midnights are taken 30 seconds before
#: and after; daylight-saving changes an hour before and after (2027's, in each seed
#: clinic's zone).
INSTANTS: dict[str, datetime] = {
    "utc-midnight-before": datetime(2027, 1, 14, 23, 59, 30, tzinfo=UTC),
    "utc-midnight-after": datetime(2027, 1, 15, 0, 0, 30, tzinfo=UTC),
    # Midnight in Los Angeles (PST, UTC-8), New York (EST, UTC-5) and Auckland (NZDT, UTC+13).
    "los-angeles-midnight-before": datetime(2027, 1, 21, 7, 59, 30, tzinfo=UTC),
    "los-angeles-midnight-after": datetime(2027, 1, 21, 8, 0, 30, tzinfo=UTC),
    "new-york-midnight-before": datetime(2027, 1, 21, 4, 59, 30, tzinfo=UTC),
    "new-york-midnight-after": datetime(2027, 1, 21, 5, 0, 30, tzinfo=UTC),
    "auckland-midnight-before": datetime(2027, 1, 21, 10, 59, 30, tzinfo=UTC),
    "auckland-midnight-after": datetime(2027, 1, 21, 11, 0, 30, tzinfo=UTC),
    # America/Los_Angeles: 2027-03-14 02:00 PST (10:00 UTC) springs forward; 2027-11-07
    # 02:00 PDT (09:00 UTC) falls back.
    "los-angeles-spring-before": datetime(2027, 3, 14, 9, 0, tzinfo=UTC),
    "los-angeles-spring-after": datetime(2027, 3, 14, 11, 0, tzinfo=UTC),
    "los-angeles-fall-before": datetime(2027, 11, 7, 8, 0, tzinfo=UTC),
    "los-angeles-fall-after": datetime(2027, 11, 7, 10, 0, tzinfo=UTC),
    # America/New_York: the same local times, three hours earlier in UTC.
    "new-york-spring-before": datetime(2027, 3, 14, 6, 0, tzinfo=UTC),
    "new-york-spring-after": datetime(2027, 3, 14, 8, 0, tzinfo=UTC),
    "new-york-fall-before": datetime(2027, 11, 7, 5, 0, tzinfo=UTC),
    "new-york-fall-after": datetime(2027, 11, 7, 7, 0, tzinfo=UTC),
    # Pacific/Auckland: 2027-04-04 03:00 NZDT (04-03 14:00 UTC) falls back; 2027-09-26
    # 02:00 NZST (09-25 14:00 UTC) springs forward.
    "auckland-fall-before": datetime(2027, 4, 3, 13, 0, tzinfo=UTC),
    "auckland-fall-after": datetime(2027, 4, 3, 15, 0, tzinfo=UTC),
    "auckland-spring-before": datetime(2027, 9, 25, 13, 0, tzinfo=UTC),
    "auckland-spring-after": datetime(2027, 9, 25, 15, 0, tzinfo=UTC),
    # A leap day (noon in Los Angeles, so it is 29 February in every seed zone but
    # Auckland's, where it is already 1 March) and the last minutes of a year.
    "leap-day": datetime(2028, 2, 29, 20, 0, tzinfo=UTC),
    "leap-day-auckland": datetime(2028, 2, 28, 12, 0, tzinfo=UTC),
    "new-years-eve-los-angeles": datetime(2028, 1, 1, 7, 59, 30, tzinfo=UTC),
    "new-years-eve-utc": datetime(2027, 12, 31, 23, 59, 30, tzinfo=UTC),
}


def instant_named(value: str) -> datetime:
    """Return the instant called ``value`` in :data:`INSTANTS`, or ``value`` read as ISO 8601."""
    if value in INSTANTS:
        return INSTANTS[value]
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise pytest.UsageError(f"--clock-at {value!r}: give a timezone (for example 'Z')")
    return moment


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clinic-saas clock")
    group.addoption(
        "--clock-at",
        default=os.environ.get("CLINIC_SAAS_TEST_CLOCK") or None,
        help="start every test at this instant: a name from tests/frozen_clock.py or ISO 8601",
    )
    group.addoption(
        "--clock-sweep",
        action="store_true",
        help="run each test marked clock_sensitive at every instant in tests/frozen_clock.py",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "clock_sensitive: its outcome would depend on the time of day or year if it assumed "
        "one; run at every instant by --clock-sweep",
    )
    value = config.getoption("--clock-at")
    if value:
        instant_named(value)  # refuse a malformed value before collecting anything


def pytest_report_header(config: pytest.Config) -> str | None:
    value = config.getoption("--clock-at")
    if value:
        return f"clinic-saas clock: every test starts at {instant_named(value).isoformat()}"
    if config.getoption("--clock-sweep"):
        return f"clinic-saas clock: clock_sensitive tests run at {len(INSTANTS)} instants"
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        metafunc.config.getoption("--clock-sweep")
        and metafunc.definition.get_closest_marker("clock_sensitive")
        and "frozen_clock" in metafunc.fixturenames
    ):
        metafunc.parametrize(
            "frozen_clock", list(INSTANTS.values()), indirect=True, ids=list(INSTANTS)
        )


@pytest.fixture(autouse=True)
def frozen_clock(request: pytest.FixtureRequest) -> Iterator[datetime | None]:
    """Start the test at the swept or chosen instant; without either, leave the clock alone."""
    instant: datetime | None = getattr(request, "param", None)
    if instant is None and request.config.getoption("--clock-at"):
        instant = instant_named(request.config.getoption("--clock-at"))
    if instant is None:
        yield None
        return
    with time_machine.travel(instant, tick=True):
        yield instant
