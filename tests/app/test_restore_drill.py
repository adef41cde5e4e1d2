"""The operator's restore drill: back up, wipe, restore, and read the health data again.

docs/operations.md, "Back up" and "Restore": the database (``pg_dump --format=custom``
on PostgreSQL, SQLite's online backup on the embedded default), the photo store and the
master keys are backed up apart; a restore puts the database and the photos back, and
only the same master keys open them. The drill runs the real tools against a database
of its own: ``pg_dump`` as a role that bypasses row-level security without being a
superuser, ``dropdb`` and ``createdb``, ``pg_restore`` as the schema's owner. Then it asks
a freshly built app, and ``backup check``, whether everything opens.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core.accounts.models import Role
from core.encryption.keys import MasterKeys
from tests.conftest import TestSettings, built_app
from tests.database import TEST_MASTER_KEYS, TestDatabase, migrated_database
from tests.helpers import assert_problem, login, make_clinic, make_staff

ANSWERS = {
    "medical_history": "Rosacea since 2019",
    "current_medications": ["isotretinoin"],
    "allergies": ["lidocaine"],
    "pregnant_or_possibly_pregnant": False,
}
#: The roles docs/operations.md has the operator make: one that dumps past row-level
#: security without being a superuser, and the schema's owner, who restores.
BACKUP_ROLE = "clinic_saas_test_backup"
OWNER_ROLE = "clinic_saas_test_owner"
PHOTO_CONSENT = {
    "kind": "clinical_photos",
    "text": "I agree to before and after photos for my clinical record.",
    "text_version": "2025-01",
    "method": "electronic",
}


@dataclass(frozen=True)
class Restored:
    """The instance after the drill, and what it held before the backup."""

    database: TestSettings
    root: Path  # the app's folder: its photo store is root / "photos", as before the wipe
    master_keys: str  # read back from the key backup, kept apart from the database's
    client_url: str
    answers: dict[str, Any]  # the intake as it read before the backup
    photo_id: int
    image: bytes  # the photo as it was served before the backup
    events_before: int


def _libpq(url: str) -> str:
    """The URL as PostgreSQL's own tools take it (no SQLAlchemy driver name)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(*command: str) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} (PostgreSQL's client tools) is not installed")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(command[:2])} failed: {done.stderr}"


def _ensure_roles(server: str) -> None:
    """Make the backup and owner roles on the test server if a run before has not."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for role, attributes in (
            (BACKUP_ROLE, "LOGIN BYPASSRLS IN ROLE pg_read_all_data"),
            (OWNER_ROLE, "LOGIN"),
        ):
            exists = connection.scalar(
                text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
            )
            if not exists:
                connection.execute(text(f"CREATE ROLE {role} {attributes}"))
    admin.dispose()


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 32), (190, 120, 100)).save(out, format="JPEG")
    return out.getvalue()


def _signed_in(app: Flask, role: str) -> Any:
    http = app.test_client()
    assert login(http, "alpha", f"{role}@alpha.example.com").status_code == 201
    return http


def _record_a_client(app: Flask) -> tuple[str, dict[str, Any], int, bytes, int]:
    """Through the API: a client, their intake, photo consent and one photo."""
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "provider@alpha.example.com", Role.provider)
        make_staff("alpha", "manager@alpha.example.com", Role.manager)
    provider = _signed_in(app, "provider")
    created = provider.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Ana", "legal_last_name": "Ruiz", "email": "ana@example.com"},
    )
    assert created.status_code == 201, created.get_json()
    base = f"/api/v1/clinics/alpha/clients/{created.get_json()['id']}"
    assert provider.post(f"{base}/intake", json={"answers": ANSWERS}).status_code == 201
    answers = provider.get(f"{base}/intake").get_json()["answers"]
    assert answers["allergies"] == ["lidocaine"]
    assert provider.post(f"{base}/consents", json=PHOTO_CONSENT).status_code == 201
    uploaded = provider.post(
        f"{base}/photos",
        data={"kind": "before", "caption": "left cheek", "image": (io.BytesIO(_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    photo_id = uploaded.get_json()["id"]
    image = provider.get(f"{base}/photos/{photo_id}/image")
    assert image.status_code == 200
    chain = _signed_in(app, "manager").get("/api/v1/clinics/alpha/audit/verification").get_json()
    assert chain["intact"] is True
    return base, answers, photo_id, image.data, chain["checked"]


def _back_up(drill: TestDatabase, photos: Path, backups: Path) -> None:
    """Each part to its own place: the database, the photo store, the master keys."""
    (backups / "database").mkdir(parents=True)
    (backups / "keys").mkdir()
    # Database first, photos second: a photo's file is written before its row commits,
    # so every photo row in the dump has its file in the later copy.
    if drill.is_postgres:
        url = make_url(drill.owner_url or "")
        _ensure_roles(url.set(database="postgres").render_as_string(hide_password=False))
        _run(
            "pg_dump",
            "--format=custom",
            f"--file={backups / 'database' / 'clinic_saas.dump'}",
            f"--dbname={_libpq(url.set(username=BACKUP_ROLE, password=None).render_as_string())}",
        )
    else:
        with (
            closing(sqlite3.connect(drill.template)) as live,
            closing(sqlite3.connect(backups / "database" / "clinic_saas.sqlite3")) as copy,
        ):
            live.backup(copy)
    shutil.copytree(photos, backups / "photos")
    (backups / "keys" / "MASTER_KEYS").write_text(TEST_MASTER_KEYS)


def _wipe_and_restore(drill: TestDatabase, photos: Path, backups: Path) -> None:
    shutil.rmtree(photos)
    if drill.is_postgres:
        url = make_url(drill.owner_url or "")
        server = _libpq(url.set(database="postgres").render_as_string(hide_password=False))
        _run("dropdb", "--force", f"--maintenance-db={server}", url.database or "")
        _run("createdb", f"--owner={OWNER_ROLE}", f"--maintenance-db={server}", url.database or "")
        owner = url.set(username=OWNER_ROLE, password=None).render_as_string()
        empty = create_engine(owner)
        with empty.connect() as connection:
            tables = connection.scalar(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
        empty.dispose()
        assert tables == 0, "the wipe left tables behind"
        _run(
            "pg_restore",
            "--exit-on-error",
            "--single-transaction",
            "--no-owner",
            f"--dbname={_libpq(owner)}",
            str(backups / "database" / "clinic_saas.dump"),
        )
    else:
        assert drill.template is not None
        drill.template.unlink()
        shutil.copyfile(backups / "database" / "clinic_saas.sqlite3", drill.template)
    shutil.copytree(backups / "photos", photos)


@pytest.fixture(scope="module")
def restored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restored]:
    """Record a client, back the instance up, wipe it, and restore it from the backups."""
    root = tmp_path_factory.mktemp("drill")
    with migrated_database(request.config.getoption("--db"), root / "migrations") as drill:
        database = TestSettings(drill.app_url, drill.owner_url)
        with built_app(database, root) as app:
            base, answers, photo_id, image, events = _record_a_client(app)
            photos = Path(app.config["PHOTO_STORAGE_DIR"])
        backups = root / "backups"
        _back_up(drill, photos, backups)
        _wipe_and_restore(drill, photos, backups)
        keys = (backups / "keys" / "MASTER_KEYS").read_text()
        yield Restored(database, root, keys, base, answers, photo_id, image, events)


@pytest.fixture
def restored_app(restored: Restored) -> Iterator[Flask]:
    """A freshly built app on the restored database, with the master keys from their backup."""
    with built_app(restored.database, restored.root, MASTER_KEYS=restored.master_keys) as app:
        yield app


def test_the_restored_intake_reads_as_it_was_recorded(restored, restored_app):
    provider = _signed_in(restored_app, "provider")
    intake = provider.get(f"{restored.client_url}/intake")
    assert intake.status_code == 200, intake.get_json()
    assert intake.get_json()["answers"] == restored.answers
    assert intake.get_json()["answers"]["medical_history"] == ANSWERS["medical_history"]


def test_the_restored_photo_decrypts_to_the_same_image(restored, restored_app):
    provider = _signed_in(restored_app, "provider")
    image = provider.get(f"{restored.client_url}/photos/{restored.photo_id}/image")
    assert image.status_code == 200
    assert image.data == restored.image
    listed = provider.get(f"{restored.client_url}/photos").get_json()["items"]
    assert [p["caption"] for p in listed] == ["left cheek"]


def test_the_restored_audit_chain_verifies(restored, restored_app):
    manager = _signed_in(restored_app, "manager")
    chain = manager.get("/api/v1/clinics/alpha/audit/verification").get_json()
    assert chain["intact"] is True
    assert chain["checked"] >= restored.events_before > 0


def test_backup_check_passes_on_the_restore(restored_app):
    result = restored_app.test_cli_runner().invoke(args=["backup", "check", "--all"])
    assert result.exit_code == 0, result.output
    assert "ok       migrations: at " in result.output
    assert "ok       alpha: data keys: 1 version(s) open with the configured MASTER_KEYS" in (
        result.output
    )
    assert "ok       alpha: photos: 1 of 1 opened and decrypted" in result.output
    assert "ok       alpha: audit chain: " in result.output
    assert "PROBLEM" not in result.output


WRONG_MASTER_KEYS = pytest.mark.parametrize(
    ("master_keys", "named"),
    [
        (
            MasterKeys.generate("test1"),
            "version 1 does not unwrap with master key 'test1': "
            "MASTER_KEYS holds a different key under that id",
        ),
        (
            MasterKeys.generate("k2"),
            "version 1 is wrapped by master key 'test1', which is not in MASTER_KEYS "
            "(it holds 'k2')",
        ),
    ],
    ids=["another-key-under-the-same-id", "another-key-id"],
)


@WRONG_MASTER_KEYS
def test_without_the_same_master_keys_backup_check_names_the_key(restored, master_keys, named):
    with built_app(restored.database, restored.root, MASTER_KEYS=master_keys) as app:
        result = app.test_cli_runner().invoke(args=["backup", "check"])
    assert result.exit_code == 1
    assert f"PROBLEM  alpha: data keys: {named}" in result.output
    assert "PROBLEM  alpha: health data: not checked, nor its photos and audit chain" in (
        result.output
    )
    assert "2 problem(s): this restore cannot be trusted as it is" in result.output


@WRONG_MASTER_KEYS
def test_without_the_same_master_keys_no_health_data_is_served(restored, master_keys, named):
    with built_app(restored.database, restored.root, MASTER_KEYS=master_keys) as app:
        provider = _signed_in(app, "provider")
        intake = provider.get(f"{restored.client_url}/intake")
        image = provider.get(f"{restored.client_url}/photos/{restored.photo_id}/image")
    assert intake.status_code >= 500 and intake.mimetype == "application/problem+json"
    assert "lidocaine" not in intake.get_data(as_text=True)
    assert image.status_code >= 500 and image.data != restored.image


def test_without_the_same_master_keys_reading_is_a_503_naming_the_keys(restored):
    with built_app(restored.database, restored.root, MASTER_KEYS=MasterKeys.generate("k2")) as app:
        provider = _signed_in(app, "provider")
        assert_problem(provider.get(f"{restored.client_url}/intake"), 503, "keys-unavailable")


def test_a_database_restored_without_its_photos_is_named_by_the_check(restored, tmp_path):
    with built_app(restored.database, tmp_path, MASTER_KEYS=restored.master_keys) as app:
        assert not Path(app.config["PHOTO_STORAGE_DIR"]).exists()
        result = app.test_cli_runner().invoke(args=["backup", "check"])
    assert result.exit_code == 1
    assert (
        f"PROBLEM  alpha: photos: 1 of 1 checked (of 1) fail: photo {restored.photo_id} (alpha/"
        in result.output
    )
    assert "is missing from the photo store" in result.output
