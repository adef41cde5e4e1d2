"""The operator's commands: load clinics, add staff, issue tokens, list plugins."""

from __future__ import annotations

from core.config import PROJECT_ROOT
from tests.helpers import PASSWORD, assert_problem, login


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
