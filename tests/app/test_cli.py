"""The operator's commands: load clinics, add staff, issue tokens, list plugins, check a backup."""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from core.config import PROJECT_ROOT
from tests.conftest import TestSettings, built_app
from tests.helpers import PASSWORD, assert_problem, login, make_clinic, make_staff


def test_clinics_load_then_list(runner):
    result = runner.invoke(args=["clinics", "load"])
    assert result.exit_code == 0, result.output
    assert "created: california-aesthetics" in result.output
    again = runner.invoke(args=["clinics", "load"])
    assert "created" not in again.output and again.output.count("unchanged") == 5
    listing = runner.invoke(args=["clinics", "list"]).output
    assert "milpitas" in listing and "+14088211633" in listing
    assert "jp-medispa\tJP MediSpa\tactive\tPacific/Auckland\tNZD" in listing


def test_clinics_load_refuses_a_bad_file_and_says_why(runner, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (PROJECT_ROOT / "tenants" / "bijoux.toml")
        .read_text()
        .replace('currency = "USD"', 'currency = "DOLLARS"')
    )
    result = runner.invoke(args=["clinics", "load", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: currency:" in result.output
    assert "nothing was changed" in result.output
    assert "bijoux" not in runner.invoke(args=["clinics", "list"]).output


def test_clinics_plugins_lists_each_clinics_plugins_and_hooks(runner):
    runner.invoke(args=["clinics", "load"])
    output = runner.invoke(args=["clinics", "plugins", "bijoux"]).output
    assert output.startswith("bijoux:")
    assert "default_policy (core default): " in output and "clinic_cancellation_decision" in output
    assert "default_jurisdiction (core default): " in output
    assert runner.invoke(args=["clinics", "plugins", "nowhere"]).exit_code == 1


def test_staff_create_and_token_issue_give_working_credentials(runner, client):
    runner.invoke(args=["clinics", "load"])
    created = runner.invoke(
        args=[
            "staff",
            "create",
            "--clinic",
            "bijoux",
            "--email",
            "Owner@Bijoux.example.com",
            "--name",
            "Owner",
            "--role",
            "owner",
        ],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert created.exit_code == 0, created.output
    assert "owner@bijoux.example.com is now owner at bijoux" in created.output
    assert login(client, "bijoux", "owner@bijoux.example.com").status_code == 201

    issued = runner.invoke(
        args=[
            "tokens",
            "issue",
            "--clinic",
            "bijoux",
            "--email",
            "owner@bijoux.example.com",
            "--name",
            "kiosk",
        ]
    )
    assert issued.exit_code == 0, issued.output
    secret = issued.output.strip()
    other = client.application.test_client()
    response = other.get(
        "/api/v1/clinics/bijoux/locations", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 200
    assert [loc["slug"] for loc in response.get_json()["items"]] == ["spa"]
    # At another clinic the token is no credential at all.
    assert_problem(
        other.get("/api/v1/clinics/jp-medispa", headers={"Authorization": f"Bearer {secret}"}), 401
    )


def test_staff_create_refuses_a_weak_password(runner):
    runner.invoke(args=["clinics", "load"])
    result = runner.invoke(
        args=[
            "staff",
            "create",
            "--clinic",
            "bijoux",
            "--email",
            "a@bijoux.example.com",
            "--name",
            "A",
            "--role",
            "provider",
            "--password",
            "short",
        ]
    )
    assert result.exit_code == 1
    assert "password" in result.output.lower()


def test_tokens_issue_refuses_someone_not_on_the_staff(runner):
    runner.invoke(args=["clinics", "load"])
    result = runner.invoke(
        args=[
            "tokens",
            "issue",
            "--clinic",
            "bijoux",
            "--email",
            "nobody@example.com",
            "--name",
            "x",
        ]
    )
    assert result.exit_code == 1
    assert "not active staff" in result.output


def test_connecting_a_clinic_to_its_stripe_account_survives_reloading_its_file(runner, app):
    from sqlalchemy import select

    from core.extensions import db
    from core.tenancy.models import Clinic

    runner.invoke(args=["clinics", "load"])
    result = runner.invoke(args=["clinics", "connect-stripe", "bijoux", "acct_1Bijoux"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["clinics", "connect-stripe", "bijoux", "cus_123"]).exit_code == 1
    taken = runner.invoke(args=["clinics", "connect-stripe", "jp-medispa", "acct_1Bijoux"])
    assert taken.exit_code == 1 and "already the account of bijoux" in taken.output
    runner.invoke(args=["clinics", "load"])
    with app.app_context():
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "bijoux"))
        assert clinic.stripe_account_id == "acct_1Bijoux"


# --- backup check: what a restore must still open ------------------------------------------------


@contextmanager
def _as_database_owner(app, database):
    """A connection with the owner's powers (a superuser on PostgreSQL), as a careless restore has."""
    from core.extensions import db

    with app.app_context():
        engine = database.owner if database.is_postgres else db.engine
        with engine.begin() as connection:
            yield connection


def _a_clinic_with_notes(app, *bodies):
    """Clinic alpha, a provider, a client and their notes (encrypted, audited) through the API."""
    from core.accounts.models import Role

    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "provider@alpha.example.com", Role.provider)
    http = app.test_client()
    assert login(http, "alpha", "provider@alpha.example.com").status_code == 201
    created = http.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Ana", "legal_last_name": "Ruiz", "email": "ana@example.com"},
    )
    base = f"/api/v1/clinics/alpha/clients/{created.get_json()['id']}"
    for body in bodies:
        assert http.post(f"{base}/notes", json={"kind": "skin", "body": body}).status_code == 201
    assert http.get(f"{base}/notes").status_code == 200
    return base


def test_backup_check_opens_the_newest_values_or_every_one(runner, app):
    _a_clinic_with_notes(app, "Melasma on forehead", "Fine lines")
    sampled = runner.invoke(args=["backup", "check", "--sample", "1"])
    assert sampled.exit_code == 0, sampled.output
    assert "ok       alpha: health data: 1 encrypted value(s) decrypt" in sampled.output
    assert "ok       alpha: data keys: 1 version(s) open with the configured MASTER_KEYS" in (
        sampled.output
    )
    assert "ok       alpha: audit chain: 3 events verify" in sampled.output
    assert sampled.output.rstrip().endswith("backup check: no problems")
    every = runner.invoke(args=["backup", "check", "--all"])
    assert "ok       alpha: health data: 2 encrypted value(s) decrypt" in every.output


def test_backup_check_names_a_value_that_does_not_decrypt(runner, app, database):
    from sqlalchemy import select, text

    from core.encryption.keys import encrypt
    from core.extensions import db
    from core.tenancy.models import Clinic
    from core.tenancy.scope import clinic_scope

    _a_clinic_with_notes(app, "Melasma on forehead")
    with app.app_context():
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        with clinic_scope(alpha):
            # Sealed for another field: it must not open as a note.
            moved = encrypt(b"left cheek", "photo.caption")
    with _as_database_owner(app, database) as owner:
        owner.execute(text("UPDATE clinical_note SET body = :moved"), {"moved": moved})
    result = runner.invoke(args=["backup", "check"])
    assert result.exit_code == 1
    assert (
        "PROBLEM  alpha: health data: 1 of 1 values do not decrypt: "
        "clinical_note 1 (clinical_note.body): clinical_note.body failed to authenticate"
    ) in result.output
    assert "1 problem(s)" in result.output


def test_backup_check_names_a_schema_behind_this_code(runner, app, database):
    from sqlalchemy import text

    from core.platform.readiness import head_revision

    with _as_database_owner(app, database) as owner:
        owner.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        result = runner.invoke(args=["backup", "check"])
    finally:
        with _as_database_owner(app, database) as owner:
            owner.execute(
                text("UPDATE alembic_version SET version_num = :h"), {"h": head_revision()}
            )
    assert result.exit_code == 1
    assert (
        f"PROBLEM  migrations: the database is at 0001, this code's newest is {head_revision()}: "
        "run `db upgrade`, then this again"
    ) in result.output


def test_backup_check_names_an_altered_audit_chain(runner, app, database):
    from sqlalchemy import text

    _a_clinic_with_notes(app, "Melasma on forehead")
    with _as_database_owner(app, database) as owner:
        if database.is_postgres:
            owner.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            owner.execute(text("UPDATE audit_event SET actor_role = 'owner' WHERE seq = 2"))
            owner.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            owner.execute(text("DROP TRIGGER audit_event_no_update"))
            owner.execute(text("UPDATE audit_event SET actor_role = 'owner' WHERE seq = 2"))
    result = runner.invoke(args=["backup", "check"])
    assert result.exit_code == 1
    assert (
        "PROBLEM  alpha: audit chain: broken at event 2: the event was altered "
        "(1 of 2 events verified before it)"
    ) in result.output


def test_backup_check_names_a_table_no_longer_append_only(runner, app, database):
    from sqlalchemy import text

    with _as_database_owner(app, database) as owner:
        if database.is_postgres:
            owner.execute(text("ALTER TABLE ledger_entry DISABLE TRIGGER ledger_entry_append_only"))
        else:
            owner.execute(text("DROP TRIGGER ledger_entry_no_delete"))
    try:
        result = runner.invoke(args=["backup", "check"])
    finally:
        if database.is_postgres:
            with _as_database_owner(app, database) as owner:
                owner.execute(
                    text("ALTER TABLE ledger_entry ENABLE TRIGGER ledger_entry_append_only")
                )
    assert result.exit_code == 1
    assert "PROBLEM  append-only: no longer append-only: ledger_entry (" in result.output
    assert "audit_event" not in result.output.split("append-only: ")[-1].split("\n")[0]


def test_backup_check_names_clinic_tables_left_without_row_level_security(runner, app, database):
    from sqlalchemy import text

    if not database.is_postgres:
        pytest.skip("row-level security is PostgreSQL's; on SQLite the ORM's scoping is the guard")
    with _as_database_owner(app, database) as owner:
        owner.execute(text("ALTER TABLE photo NO FORCE ROW LEVEL SECURITY"))
    try:
        result = runner.invoke(args=["backup", "check"])
    finally:
        with _as_database_owner(app, database) as owner:
            owner.execute(text("ALTER TABLE photo FORCE ROW LEVEL SECURITY"))
    assert result.exit_code == 1
    assert (
        "PROBLEM  isolation: 1 clinic table(s) lack forced row-level security with the "
        "clinic_isolation policy (photo)"
    ) in result.output


def test_backup_check_names_an_app_role_that_bypasses_row_level_security(
    database, test_db, tmp_path
):
    if not database.is_postgres:
        pytest.skip("row-level security is PostgreSQL's; on SQLite the ORM's scoping is the guard")
    superuser = TestSettings(test_db.owner_url, test_db.owner_url)
    with built_app(superuser, tmp_path) as app:
        result = app.test_cli_runner().invoke(args=["backup", "check"])
    assert result.exit_code == 1
    assert "PROBLEM  isolation: the app connects as " in result.output
    assert "a role that bypasses row-level security" in result.output


def _commands_named_in(markdown: str) -> list[list[str]]:
    """Every ``flask --app wsgi ...`` or ``clinic-saas ...`` in the page's code, as words."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", markdown, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```[a-z]*\n.*?```", "", markdown, flags=re.S))
    found = []
    for code in blocks + spans:
        for match in re.finditer(r"(?:flask --app wsgi|clinic-saas) ([^\n`#|;&<]+)", code):
            found.append(match.group(1).split())
    return found


def test_every_command_the_operations_guide_names_exists(app):
    import click
    from flask.cli import FlaskGroup, ScriptInfo

    # The same group `clinic-saas` runs: the app's commands and Flask-Migrate's `db`.
    group = FlaskGroup(create_app=lambda: app)
    named = _commands_named_in((PROJECT_ROOT / "docs" / "operations.md").read_text())
    assert ["backup", "check", "--all"] in named and ["keys", "rewrap"] in named
    # Closed at the end: finding a command pushes an app context onto the click context,
    # which must not outlive this test.
    with click.Context(group, obj=ScriptInfo(create_app=lambda: app)) as context:
        for words in named:
            command: click.Command = group
            path: list[str] = []
            for word in words:
                if word.startswith("-"):
                    option = word.split("=", 1)[0]
                    known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
                    assert option in known | {"--help"}, f"`{' '.join(path)}` has no {option}"
                elif isinstance(command, click.Group):
                    found = command.get_command(context, word)
                    assert found is not None, f"no command `{' '.join([*path, word])}`"
                    command = found
                    path.append(word)
            assert not isinstance(command, click.Group), f"`{' '.join(path)}` needs a subcommand"
