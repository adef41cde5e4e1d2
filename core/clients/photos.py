"""Clinical photos: checked, stripped of metadata, encrypted, and kept in a photo store."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from flask import current_app
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.encryption.keys import decrypt, encrypt
from core.errors import TooLarge, UnsupportedFile, field_error

#: Formats accepted, and the media type each is served as.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MAX_PIXELS = 40_000_000


class PhotoStore(Protocol):
    """Where encrypted photo bytes live. Keys are opaque; values are ciphertext only."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


class LocalPhotoStore:
    """A photo store on the local filesystem (the default; one machine)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError("photo key escapes the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".part")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # never a half-written photo

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3PhotoStore:
    """A photo store in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2): shared by every
    app server, so a photo uploaded through one is served by any other.

    Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` and friends, an
    instance role); objects hold ciphertext only, so the bucket never sees a photo.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            # Standard retries cover throttling and dropped connections; a page
            # waiting on a photo should fail in seconds, not hang on a dead store.
            config=Config(
                retries={"mode": "standard", "max_attempts": 3},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError("photo key escapes the store")
        return self.prefix + key

    def put(self, key: str, data: bytes) -> None:
        # A PUT is atomic: readers see the old object or the new one, never a part.
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                # The same signal as the local store, so callers need not know which it is.
                raise FileNotFoundError(key) from None
            raise
        return bytes(answer["Body"].read())

    def delete(self, key: str) -> None:
        # Deleting a missing object succeeds, as the local store's unlink(missing_ok) does.
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def check(self) -> str:
        """Whether the bucket answers: "ok", or what is wrong (for the readiness probe)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as error:
            return f"unreachable ({type(error).__name__})"
        return "ok"


def make_photo_store(config: Mapping[str, Any]) -> PhotoStore:
    """Build the photo store the settings name: ``PHOTO_STORE`` is ``local`` or ``s3``."""
    if config.get("PHOTO_STORE", "local") == "s3":
        return S3PhotoStore(
            config["PHOTO_S3_BUCKET"],
            prefix=config.get("PHOTO_S3_PREFIX") or "",
            endpoint_url=config.get("PHOTO_S3_ENDPOINT_URL"),
            region=config.get("PHOTO_S3_REGION"),
        )
    return LocalPhotoStore(config["PHOTO_STORAGE_DIR"])


def photo_store() -> PhotoStore:
    """Return the app's photo store."""
    return current_app.extensions["clinic_saas.photo_store"]


_FORGET = "clinic_saas.photos_to_forget"


def forget_after_commit(session: Session, keys: list[str]) -> None:
    """Delete these photos' files once ``session`` commits (never if it rolls back).

    The rows go in the transaction; the files only when it is certain, so a
    failed deletion never leaves rows pointing at files already gone.
    """
    pending = session.info.setdefault(_FORGET, [])
    if not pending:
        store = photo_store()

        @event.listens_for(session, "after_commit", once=True)
        def _forget(committed: Session) -> None:
            for key in committed.info.pop(_FORGET, []):
                store.delete(key)

        @event.listens_for(session, "after_rollback", once=True)
        def _keep(rolled_back: Session) -> None:
            rolled_back.info.pop(_FORGET, None)

    pending.extend(keys)


class CleanImage:
    """An uploaded image after checking and re-encoding: pixels only, no metadata."""

    def __init__(self, data: bytes, content_type: str, width: int, height: int) -> None:
        self.data = data
        self.content_type = content_type
        self.width = width
        self.height = height


def clean_image(raw: bytes, max_bytes: int) -> CleanImage:
    """Check ``raw`` is a JPEG, PNG or WebP photo within limits, and rebuild it without metadata.

    Re-encoding from pixels drops EXIF (with its GPS location), XMP, ICC
    comments and anything else riding in the file; orientation is applied to
    the pixels first so the photo still shows the right way up.
    """
    if len(raw) > max_bytes:
        raise TooLarge(
            f"Photos may be at most {max_bytes // 1_000_000} MB.",
            errors=[field_error("image", "too large", "files")],
        )
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            kind = probe.format
            probe.verify()
        if kind not in FORMATS:
            raise UnsupportedFile(
                "Upload a JPEG, PNG or WebP photo.",
                errors=[field_error("image", f"{kind} is not accepted", "files")],
            )
        with Image.open(io.BytesIO(raw)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise TooLarge(
                    "The photo has too many pixels.",
                    errors=[field_error("image", "too many pixels", "files")],
                )
            upright = ImageOps.exif_transpose(image)
            mode = "RGB" if kind == "JPEG" else ("RGBA" if "A" in upright.getbands() else "RGB")
            pixels = upright.convert(mode)
            bare = Image.frombytes(pixels.mode, pixels.size, pixels.tobytes())
            out = io.BytesIO()
            bare.save(out, format=kind, **({"quality": 92} if kind in {"JPEG", "WEBP"} else {}))
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise UnsupportedFile(
            "The file is not a readable image.",
            errors=[field_error("image", "not an image", "files")],
        ) from None
    return CleanImage(out.getvalue(), FORMATS[kind], bare.width, bare.height)


def store_photo(image: CleanImage, clinic_slug: str) -> str:
    """Encrypt and store ``image``; return its storage key."""
    key = f"{clinic_slug}/{uuid.uuid4().hex}"
    photo_store().put(key, encrypt(image.data, "photo.image").encode("ascii"))
    return key


def load_photo(storage_key: str) -> bytes:
    """Return the decrypted bytes of a stored photo (the caller has checked access)."""
    return decrypt(photo_store().get(storage_key).decode("ascii"), "photo.image")


def reencrypt_photos() -> int:
    """Re-encrypt every stored photo of the current clinic under its active data key.

    Part of key rotation; each file is replaced atomically, so a crash
    leaves every photo readable under its old key or its new one.
    """
    from sqlalchemy import select

    from core.clients.models import Photo
    from core.encryption.keys import key_version, keyring
    from core.extensions import db
    from core.tenancy.scope import require_clinic_ref

    active, _ = keyring().active(require_clinic_ref())
    store = photo_store()
    count = 0
    for storage_key in db.session.scalars(select(Photo.storage_key)):
        sealed = store.get(storage_key).decode("ascii")
        if key_version(sealed) == active:
            continue
        store.put(
            storage_key, encrypt(decrypt(sealed, "photo.image"), "photo.image").encode("ascii")
        )
        count += 1
    return count
