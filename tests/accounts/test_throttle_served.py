"""Sign-in throttling as served: several gunicorn workers count the same attempts, or refuse to start.

These tests run the real app under gunicorn with two workers against the run's
database, and Redis on 127.0.0.1:6379 for the shared counters.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from tests.database import TEST_MASTER_KEYS
from tests.helpers import make_clinic, make_staff
from tests.stripe_server import free_port

REDIS = "redis://127.0.0.1:6379/0"


def _environment(test_db, tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RATELIMIT_", "REDIS_", "CELERY_"))
    }
    env.update(
        DATABASE_URL=test_db.app_url,
        SECRET_KEY="served-secret",
        MASTER_KEYS=TEST_MASTER_KEYS,
        INSTANCE_PATH=str(tmp_path / "instance"),
        JOBS_BACKEND="none",
        LOGIN_RATE_LIMIT="1000 per minute",
        LOGIN_ACCOUNT_RATE_LIMIT="5 per minute",
        **settings,
    )
    return env


def _gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--chdir",
            str(PROJECT_ROOT),
            "wsgi:app",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def staff(app) -> str:
    email = f"owner-{uuid.uuid4().hex[:8]}@alpha.example.com"  # counters are new for each run
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", email)
    return email


@pytest.fixture
def served(request, test_db, tmp_path, staff) -> Iterator[str]:
    port = free_port()
    settings = getattr(request, "param", {"REDIS_URL": REDIS})
    server = _gunicorn(_environment(test_db, tmp_path, **settings), port)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1)
                break
            except (OSError, urllib.error.HTTPError):
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


def _sign_in(url: str, email: str, password: str) -> int:
    request = urllib.request.Request(
        url + "/api/v1/clinics/alpha/session",
        data=f'{{"email": "{email}", "password": "{password}"}}'.encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_two_workers_share_redis_counters_so_the_limit_is_the_limit(served, staff):
    # README: "failed sign-ins per account and clinic" are limited to LOGIN_ACCOUNT_RATE_LIMIT,
    # here 5 a minute, however many workers answer. Four at a time keep both workers busy.
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _sign_in(served, staff, "wrong password"), range(12)))
    assert sorted(answers) == [401] * 5 + [429] * 7


def test_several_workers_on_per_process_counters_refuse_to_start(test_db, tmp_path, staff):
    server = _gunicorn(_environment(test_db, tmp_path), free_port())
    try:
        output, _ = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode != 0
    assert "RATELIMIT_STORAGE_URI" in output and "2 workers" in output


def test_public_routes_are_limited_per_address_and_say_where_the_caller_stands(test_db, tmp_path):
    from tests.conftest import built_app
    from tests.helpers import assert_problem, make_clinic, make_provider, make_service

    with built_app(
        test_db,
        tmp_path,
        PUBLIC_READ_RATE_LIMIT="3 per minute",
        PUBLIC_WRITE_RATE_LIMIT="2 per minute;5 per hour",
        RATELIMIT_STORAGE_URI="memory://",
    ) as app:
        with app.app_context():
            make_clinic("alpha")
            provider = make_provider("alpha", "kim@alpha.example.com")
            service = make_service("alpha", "facial", provider_ids=[provider])
        http = app.test_client()
        times = "/api/v1/clinics/alpha/availability"
        from datetime import timedelta

        from core import clock

        soon = clock.now().date() + timedelta(days=2)
        query = {"service_id": service, "from": soon.isoformat(), "to": soon.isoformat()}
        answers = [http.get(times, query_string=query) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
        assert answers[0].headers["RateLimit-Limit"] == "3"
        assert 0 < int(answers[0].headers["RateLimit-Reset"]) <= 60
        refused = assert_problem(http.get(times, query_string=query), 429, "rate-limited")
        assert refused["status"] == 429
        over = http.get(times, query_string=query)
        assert int(over.headers["Retry-After"]) >= 1 and over.headers["RateLimit-Remaining"] == "0"
        # Writes count apart from reads, against the tighter of their windows.
        privacy = "/api/v1/clinics/alpha/privacy-requests"
        writes = [http.post(privacy, json={}) for _ in range(3)]
        assert [w.status_code for w in writes][:2] == [422, 422]  # counted, then judged
        assert writes[2].status_code == 429
        # A provider's signed callback is not a client: Twilio relays every client's reply.
        relayed = http.post("/webhooks/sms/alpha", data={"Body": "C"})
        assert relayed.status_code != 429 and "RateLimit-Limit" not in relayed.headers
        # Another address has its own count; staff routes are not limited this way.
        other = http.get(times, query_string=query, environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert other.status_code == 200
        assert "RateLimit-Limit" not in http.get("/healthz").headers
