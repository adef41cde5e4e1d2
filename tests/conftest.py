"""Test fixtures: a fresh database per run (SQLite or PostgreSQL), an app and client per test.

``pytest`` runs on SQLite; ``pytest --db postgresql`` (or CLINIC_SAAS_TEST_DB=postgresql)
creates a database on the server at CLINIC_SAAS_TEST_POSTGRES (default: postgres on
127.0.0.1:5432), migrates it as its owner, runs the app as a login role that owns nothing
(so row-level security applies), and drops the database at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text

from core import create_app
from core.config import PROJECT_ROOT
from core.extensions import db
from tests.database import TEST_MASTER_KEYS, TestDatabase, migrated_database

#: Shared fixtures: `inbox` (a real SMTP server on loopback), `object_store` (a real
#: S3-compatible server on loopback), `local_stripe` and `browser`.
pytest_plugins = [
    "tests.frozen_clock",
    "tests.mail",
    "tests.object_store",
    "tests.stripe_server",
    "tests.payment_flows",
    "tests.browser",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("CLINIC_SAAS_TEST_DB", "sqlite"),
        help="database engine to run the tests on",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"clinic-saas database: {config.getoption('--db')}"


@pytest.fixture(scope="session")
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabase]:
    """The run's database: migrated once; SQLite tests each get a copy of it (see ``test_db``)."""
    with migrated_database(
        request.config.getoption("--db"), tmp_path_factory.mktemp("instance")
    ) as found:
        yield found


def _empty(database: TestDatabase) -> None:
    """Delete every row, as a superuser, so the next test starts from the migrated schema.

    TRUNCATE fires no row triggers, so the append-only audit table empties too.
    """
    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with database.owner.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@dataclass(frozen=True)
class TestSettings:
    __test__ = False  # a settings holder, not a test class

    app_url: str
    owner_url: str | None


@pytest.fixture
def test_db(database: TestDatabase, tmp_path: Path) -> Iterator[TestSettings]:
    """The database this test runs against: a fresh SQLite copy, or the emptied PostgreSQL one."""
    if database.is_postgres:
        yield TestSettings(database.app_url, database.owner_url)
        _empty(database)
        return
    copy = tmp_path / "test.sqlite3"
    shutil.copyfile(database.template, copy)
    yield TestSettings(f"sqlite:///{copy}", None)


def app_settings(test_db: TestSettings, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """The settings of a test app on ``test_db``, with ``overrides`` on top."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": test_db.app_url,
        "DATABASE_OWNER_URL": test_db.owner_url,
        "TENANTS_DIR": str(PROJECT_ROOT / "tenants"),
        "MASTER_KEYS": TEST_MASTER_KEYS,
        "PHOTO_STORAGE_DIR": str(tmp_path / "photos"),
        # Still Argon2id, at a cost that keeps hundreds of sign-ins quick.
        "ARGON2_COST": (1, 1024, 1),
        # Every test calls from 127.0.0.1, some with dozens of bookings at once (the
        # double-booking races): public limits are tested on their own, set tight there.
        "PUBLIC_READ_RATE_LIMIT": "100000 per minute",
        "PUBLIC_WRITE_RATE_LIMIT": "100000 per minute",
        **overrides,
    }


@contextmanager
def built_app(test_db: TestSettings, tmp_path: Path, **overrides: Any) -> Iterator[Flask]:
    """Build a test app with ``overrides``; dispose of its connections when the block ends."""
    app = create_app(
        app_settings(test_db, tmp_path, **overrides), instance_path=str(tmp_path / "instance")
    )
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app(test_db: TestSettings, tmp_path: Path) -> Iterator[Flask]:
    with built_app(test_db, tmp_path) as built:
        yield built


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
