"""Fresh, migrated databases for tests and benchmarks: a SQLite file, or a new PostgreSQL database.

On PostgreSQL the schema is migrated by its owner and the app connects as a
login role that owns nothing (a member of the app's group role), so
row-level security applies exactly as in production.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from core import create_app
from core.config import normalise_database_url
from core.extensions import db
from core.tenancy.rls import APP_ROLE

APP_LOGIN_ROLE = "clinic_saas_test_web"
TEST_MASTER_KEYS = "test1:" + "A" * 43 + "="


@dataclass(frozen=True)
class TestDatabase:
    """A migrated database: where the app connects, where its owner does, and its kind."""

    __test__ = False  # a settings holder, not a test class

    kind: str
    app_url: str
    owner_url: str | None
    owner: Engine
    template: Path | None = None

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgresql"


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


@contextmanager
def migrated_database(kind: str, instance: Path) -> Iterator[TestDatabase]:
    """Create and migrate a database of ``kind``; drop it (PostgreSQL) when the block ends."""
    if kind == "sqlite":
        template = instance / "template.sqlite3"
        url = f"sqlite:///{template}"
        _migrate(url, None, instance)
        owner = create_engine(url)
        try:
            yield TestDatabase(kind, url, None, owner, template)
        finally:
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
        rendered = owner_url.render_as_string(hide_password=False)
        _migrate(rendered, rendered, instance)
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_LOGIN_ROLE}
            )
            if not exists:
                conn.execute(text(f"CREATE ROLE {APP_LOGIN_ROLE} LOGIN"))
            conn.execute(text(f"GRANT {APP_ROLE} TO {APP_LOGIN_ROLE}"))
        app_url = owner_url.set(username=APP_LOGIN_ROLE, password=None)
        owner = create_engine(owner_url)
        try:
            yield TestDatabase(kind, app_url.render_as_string(hide_password=False), rendered, owner)
        finally:
            owner.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
