"""Test fixtures: a fresh database per run (SQLite or PostgreSQL), an app and client per test.

``pytest`` runs on SQLite; ``pytest --db postgresql`` (or CLINIC_SAAS_TEST_DB=postgresql)
creates a database on the server at CLINIC_SAAS_TEST_POSTGRES (default: postgres on
127.0.0.1:5432), migrates it as its owner, runs the app as a login role that owns nothing
(so row-level security applies), and drops the database at the end.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from core import create_app
from core.config import PROJECT_ROOT, normalise_database_url
from core.extensions import db
from core.tenancy.rls import APP_ROLE

APP_LOGIN_ROLE = "clinic_saas_test_web"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default=os.environ.get("CLINIC_SAAS_TEST_DB", "sqlite"),
        help="database engine to run the tests on",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"clinic-saas database: {config.getoption('--db')}"


@dataclass(frozen=True)
class TestDatabase:
    kind: str
    app_url: str
    owner_url: str | None
    owner: Engine
    template: Path | None = None

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"


TEST_MASTER_KEYS = "test1:" + "A" * 43 + "="


def _migrate(app_url: str, owner_url: str | None, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": app_url,
            "DATABASE_OWNER_URL": owner_url,
            "SECRET_KEY": "migrations",
        },
        instance_path=str(instance),
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabase]:
    kind = request.config.getoption("--db")
    instance = tmp_path_factory.mktemp("instance")
    if kind == "sqlite":
        # Migrate once into a template; each test gets a copy of it (see ``app``).
        template = instance / "template.sqlite3"
        url = f"sqlite:///{template}"
        _migrate(url, None, instance)
        owner = create_engine(url)
        yield TestDatabase(kind, url, None, owner, template)
        owner.dispose()
        return

    server = make_url(
        normalise_database_url(
            os.environ.get(
                "CLINIC_SAAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
            )
        )
    )
    name = f"clinic_saas_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    owner_url = server.set(database=name)
    try:
        _migrate(
            owner_url.render_as_string(hide_password=False),
            owner_url.render_as_string(hide_password=False),
            instance,
        )
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_LOGIN_ROLE}
            )
            if not exists:
                conn.execute(text(f"CREATE ROLE {APP_LOGIN_ROLE} LOGIN"))
            conn.execute(text(f"GRANT {APP_ROLE} TO {APP_LOGIN_ROLE}"))
        app_url = owner_url.set(username=APP_LOGIN_ROLE, password=None)
        owner = create_engine(owner_url)
        yield TestDatabase(
            kind,
            app_url.render_as_string(hide_password=False),
            owner_url.render_as_string(hide_password=False),
            owner,
        )
        owner.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty(database: TestDatabase) -> None:
    """Delete every row, as a superuser, so the next test starts from the migrated schema.

    TRUNCATE fires no row triggers, so the append-only audit table empties too.
    """
    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with database.owner.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@dataclass(frozen=True)
class TestSettings:
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


@pytest.fixture
def app(test_db: TestSettings, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SQLALCHEMY_DATABASE_URI": test_db.app_url,
            "DATABASE_OWNER_URL": test_db.owner_url,
            "TENANTS_DIR": str(PROJECT_ROOT / "tenants"),
            "MASTER_KEYS": TEST_MASTER_KEYS,
            "PHOTO_STORAGE_DIR": str(tmp_path / "photos"),
        },
        instance_path=str(tmp_path / "instance"),
    )
    yield app
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
