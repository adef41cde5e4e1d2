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
