"""Clinical photos: checked, stripped of metadata, encrypted, and kept in a photo store."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Protocol

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
