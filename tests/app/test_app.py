"""The service starts, reports its health, and publishes a valid OpenAPI document."""

from __future__ import annotations

import subprocess
import sys

from openapi_spec_validator import validate

from core.config import PROJECT_ROOT


def test_importing_wsgi_does_no_database_work(tmp_path):
    # A database URL that cannot be reached: importing must still succeed.
    code = "import wsgi; print(wsgi.app.name)"
    env = {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
        "INSTANCE_PATH": str(tmp_path),
        "PATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "core"


def test_healthz_checks_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "database": "ok",
        "plugins": {"refused": [], "clinics_unavailable": 0},
    }


def test_healthz_reports_an_unreachable_database(tmp_path):
    from core import create_app

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/nowhere",
            "SECRET_KEY": "x",
            # No jobs thread: it would outlive the test, failing every minute.
            "JOBS_BACKEND": "none",
        }
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "unreachable" in response.get_json()["detail"]


def test_openapi_document_is_valid_openapi_3(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert "/api/v1/clinics/{clinic_slug}/staff" in spec["paths"]
    assert "/api/v1/clinics/{clinic_slug}/session" in spec["paths"]


def test_readyz_checks_the_database_its_migrations_and_redis(app, client):
    from core.platform.readiness import head_revision

    assert client.get("/livez").get_json() == {"status": "ok"}
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.get_json()
    checks = answer.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == {"state": "ok", "at": head_revision(), "head": head_revision()}
    assert head_revision() >= "0018"
    # A real Redis on loopback answers; one where nothing listens makes the server unready.
    app.config["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:6379/0"
    assert client.get("/readyz").get_json()["checks"]["redis"] == "ok"
    app.config["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:1/0"
    unready = client.get("/readyz")
    assert unready.status_code == 503
    problem = unready.get_json()
    assert problem["detail"] == "Not ready: redis."
    assert problem["checks"]["redis"].startswith("unreachable")
    assert client.get("/livez").status_code == 200  # unready is not dead


def test_readyz_says_when_the_schema_is_behind_the_code(app, client, monkeypatch):
    from core.platform import readiness

    monkeypatch.setattr(readiness, "head_revision", lambda: "9999")
    unready = client.get("/readyz")
    assert unready.status_code == 503
    migrations = unready.get_json()["checks"]["migrations"]
    assert migrations["state"] == "behind" and migrations["head"] == "9999"


def test_readyz_reports_an_unreachable_database(tmp_path):
    from core import create_app

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://nobody@127.0.0.1:1/nowhere",
            "SECRET_KEY": "x",
            "JOBS_BACKEND": "none",
        }
    )
    answer = app.test_client().get("/readyz")
    assert answer.status_code == 503
    assert answer.get_json()["checks"]["database"].startswith("unreachable")
    assert app.test_client().get("/livez").status_code == 200
