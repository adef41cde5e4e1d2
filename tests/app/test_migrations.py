"""The schema is made only by migrations, the same on SQLite and PostgreSQL, and they run both ways."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from core import create_app
from core.extensions import db


def test_migrated_schema_matches_the_models(database):
    with database.owner.connect() as connection:
        context = MigrationContext.configure(connection, opts={"render_as_batch": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


@pytest.fixture
def scratch_url(database, tmp_path):
    if not database.is_postgres:
        yield f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
        return
    name = f"clinic_saas_scratch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        make_url(database.owner_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database.owner_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_downgrade_upgrade(scratch_url, tmp_path):
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": scratch_url, "SECRET_KEY": "x", "JOBS_BACKEND": "none"},
        instance_path=str(tmp_path),
    )
    app.instance_path = str(tmp_path)
    with app.app_context():
        upgrade()
        assert {"clinic", "location", "membership", "user_account", "api_token"} <= set(
            inspect(db.engine).get_table_names()
        )
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade()
        assert "location" in inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_setup_command_migrates_and_loads_the_seed_clinics_on_a_fresh_database(
    scratch_url, tmp_path
):
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": scratch_url, "SECRET_KEY": "x", "JOBS_BACKEND": "none"},
        instance_path=str(tmp_path),
    )
    app.instance_path = str(tmp_path)
    result = app.test_cli_runner().invoke(args=["setup"])
    assert result.exit_code == 0, result.output
    assert result.output.count("created:") == 5
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    with app.app_context():
        db.engine.dispose()
