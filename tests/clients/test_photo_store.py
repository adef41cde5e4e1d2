"""Photos in an S3-compatible bucket: ciphertext only, shared by every app server, on a real
server on loopback (moto in server mode, spoken to over HTTP by boto3)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.accounts.models import Role
from core.clients.photos import S3PhotoStore
from core.config import SettingError, from_environment
from tests.conftest import built_app
from tests.helpers import assert_problem, login, make_clinic, make_staff

CONSENT = {
    "text": "I agree to before and after photos for my clinical record.",
    "text_version": "2025-01",
    "method": "electronic",
}


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (180, 110, 90)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def two_servers(test_db, tmp_path, object_store):
    """Two app servers on one database and one bucket, each with its own (empty) disk."""
    settings = object_store.settings(prefix="instance-a")
    with (
        built_app(test_db, tmp_path / "one", **settings) as one,
        built_app(test_db, tmp_path / "two", **settings) as two,
    ):
        with one.app_context():
            make_clinic("alpha")
            make_staff("alpha", "provider@alpha.example.com", Role.provider)
        yield one, two


def signed_in(app):
    http = app.test_client()
    assert login(http, "alpha", "provider@alpha.example.com").status_code == 201
    return http


def upload(http) -> tuple[str, dict]:
    created = http.post(
        "/api/v1/clinics/alpha/clients",
        json={"legal_first_name": "Ana", "legal_last_name": "Ruiz", "email": "ana@example.com"},
    )
    assert created.status_code == 201, created.get_json()
    base = f"/api/v1/clinics/alpha/clients/{created.get_json()['id']}"
    assert (
        http.post(f"{base}/consents", json={**CONSENT, "kind": "clinical_photos"}).status_code
        == 201
    )
    uploaded = http.post(
        f"{base}/photos",
        data={"kind": "before", "image": (io.BytesIO(jpeg()), "before.jpg")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    return base, uploaded.get_json()


def test_a_photo_stored_through_one_server_is_served_by_another(two_servers, object_store):
    one, two = two_servers
    base, photo = upload(signed_in(one))
    keys = object_store.keys()
    assert len(keys) == 1 and keys[0].startswith("instance-a/alpha/")
    stored = object_store.read(keys[0])
    assert stored.startswith(b"cse1.")  # the bucket holds ciphertext, never a JPEG
    assert b"\xff\xd8" not in stored
    for app in (one, two):
        assert not any(Path(app.config["PHOTO_STORAGE_DIR"]).rglob("*"))  # nothing on disk
    image = signed_in(two).get(f"{base}/photos/{photo['id']}/image")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(image.data)).size == (40, 30)


def test_rotating_a_clinics_key_reencrypts_the_photos_in_the_bucket(two_servers, object_store):
    one, two = two_servers
    base, photo = upload(signed_in(one))
    result = one.test_cli_runner().invoke(args=["keys", "rotate", "--clinic", "alpha"])
    assert result.exit_code == 0, result.output
    assert "1 photos re-encrypted" in result.output
    [key] = object_store.keys()
    assert object_store.read(key).startswith(b"cse1.2.")
    assert signed_in(two).get(f"{base}/photos/{photo['id']}/image").status_code == 200


def test_the_store_reads_writes_and_forgets_objects(object_store):
    store = S3PhotoStore(object_store.bucket, prefix="/nested/", endpoint_url=object_store.endpoint)
    store.put("alpha/one", b"sealed bytes")
    assert object_store.keys() == ["nested/alpha/one"]
    assert store.get("alpha/one") == b"sealed bytes"
    store.put("alpha/one", b"resealed")  # a replacement is whole, never a mix
    assert store.get("alpha/one") == b"resealed"
    store.delete("alpha/one")
    store.delete("alpha/one")  # forgetting twice is not an error
    with pytest.raises(FileNotFoundError):
        store.get("alpha/one")
    for bad in ("../beta/one", "/alpha/one", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")
    assert object_store.keys() == []
    assert store.check() == "ok"


def test_the_bucket_is_part_of_readiness(test_db, tmp_path, object_store):
    settings = object_store.settings()
    with built_app(test_db, tmp_path, **settings) as app:
        answer = app.test_client().get("/readyz")
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["checks"]["photo_store"] == "ok"
    with built_app(test_db, tmp_path, **{**settings, "PHOTO_S3_BUCKET": "no-such-bucket"}) as app:
        unready = app.test_client().get("/readyz")
        problem = assert_problem(unready, 503)
        assert problem["checks"]["photo_store"].startswith("unreachable")
        assert "photo_store" in problem["detail"]


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"PHOTO_STORE": "s3"}, "PHOTO_S3_BUCKET"),
        ({"PHOTO_STORE": "gcs"}, "PHOTO_STORE"),
    ],
)
def test_a_photo_store_setting_that_cannot_work_is_named(environment, named, tmp_path, monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PHOTO_S3_BUCKET", raising=False)
    with pytest.raises(SettingError, match=named):
        from_environment(tmp_path)
