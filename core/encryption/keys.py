"""Master keys from the environment, clinic data keys from the database, AES-GCM in between.

Ciphertext is text: ``cse1.<key version>.<base64(nonce + sealed)>``. The
associated data binds it to its clinic, its purpose (which field it is) and
the key version, so a value copied to another clinic, another field or
relabelled with another version fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from sqlalchemy import select

from core import clock
from core.tenancy.scope import ClinicRef, require_clinic_ref, tell_database

PREFIX = "cse1"
_NONCE = 12


class KeyUnavailable(Exception):
    """A key needed to encrypt or decrypt is missing or wrong."""


class DecryptionFailed(KeyUnavailable):
    """A ciphertext did not authenticate: tampered, moved, or under an unknown key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data.encode())


@dataclass(frozen=True)
class MasterKeys:
    """The operator's master keys: the first wraps new data keys, all of them unwrap.

    Read from ``MASTER_KEYS`` as ``id:base64key,id:base64key`` (32-byte keys,
    URL-safe base64). Rotating the master key means putting a new one first,
    running ``flask --app wsgi keys rewrap``, then dropping the old one.
    """

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, spec: str) -> MasterKeys:
        """Parse ``id:base64key,...``; raise ``ValueError`` naming what is wrong."""
        keys: list[tuple[str, bytes]] = []
        for index, item in enumerate(part.strip() for part in spec.split(",") if part.strip()):
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id:
                raise ValueError(f"MASTER_KEYS entry {index + 1} is not 'id:base64key'")
            try:
                key = _unb64(encoded)
            except ValueError:
                raise ValueError(f"MASTER_KEYS key {key_id!r} is not base64") from None
            if len(key) != 32:
                raise ValueError(f"MASTER_KEYS key {key_id!r} must be 32 bytes, not {len(key)}")
            keys.append((key_id, key))
        if not keys:
            raise ValueError("MASTER_KEYS is empty")
        return cls(tuple(keys))

    @staticmethod
    def generate(key_id: str = "k1") -> str:
        """Return a new ``MASTER_KEYS`` value holding one fresh random key."""
        return f"{key_id}:{_b64(secrets.token_bytes(32))}"

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    def wrap(self, data_key: bytes, clinic_id: int, version: int) -> tuple[str, str]:
        """Seal ``data_key`` under the current master key; return (master key id, wrapped)."""
        key_id, key = self.keys[0]
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(key).encrypt(nonce, data_key, _wrap_aad(clinic_id, version))
        return key_id, _b64(nonce + sealed)

    def unwrap(self, master_key_id: str, wrapped: str, clinic_id: int, version: int) -> bytes:
        """Open a wrapped data key; raise :class:`KeyUnavailable` if its master key is gone."""
        key = dict(self.keys).get(master_key_id)
        if key is None:
            raise KeyUnavailable(f"master key {master_key_id!r} is not in MASTER_KEYS")
        raw = _unb64(wrapped)
        try:
            return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _wrap_aad(clinic_id, version))
        except InvalidTag:
            raise DecryptionFailed("a clinic data key failed to unwrap") from None


def _wrap_aad(clinic_id: int, version: int) -> bytes:
    return f"clinic-data-key|{clinic_id}|{version}".encode()


def _value_aad(clinic_id: int, purpose: str, version: int) -> bytes:
    return f"{clinic_id}|{purpose}|{version}".encode()


def master_keys() -> MasterKeys:
    """Return the app's master keys."""
    return current_app.extensions["clinic_saas.master_keys"]


def install(app: Any, masters: MasterKeys) -> None:
    """Give ``app`` its master keys and an empty keyring of its own."""
    app.extensions["clinic_saas.master_keys"] = masters
    app.extensions["clinic_saas.keyring"] = _Keyring()


def keyring() -> _Keyring:
    """Return the app's cache of unwrapped clinic data keys."""
    return current_app.extensions["clinic_saas.keyring"]


class _Keyring:
    """Unwrapped data keys, cached per process; the active version is re-read after a minute."""

    ACTIVE_TTL_SECONDS = 60

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[int, int], bytes] = {}
        self._active: dict[int, tuple[int, float]] = {}

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._active.clear()

    def _load(self, ref: ClinicRef) -> None:
        """Read the clinic's data keys on a connection of their own.

        Encryption happens while a flush or a result is in progress on the
        session's connection, so keys are fetched beside it, in the clinic's
        scope (row-level security applies here too).
        """
        from core.encryption.models import ClinicDataKey
        from core.extensions import db

        engine = db.engine
        with engine.connect() as connection:
            tell_database(connection, ref)
            rows = connection.execute(
                select(
                    ClinicDataKey.version,
                    ClinicDataKey.master_key_id,
                    ClinicDataKey.wrapped,
                    ClinicDataKey.retired_at,
                ).where(ClinicDataKey.clinic_id == ref.id)
            ).all()
        masters = master_keys()
        active = None
        with self._lock:
            for version, master_id, wrapped, retired_at in rows:
                self._keys[(ref.id, version)] = masters.unwrap(master_id, wrapped, ref.id, version)
                if retired_at is None and (active is None or version > active):
                    active = version
            if active is not None:
                self._active[ref.id] = (active, clock.now().timestamp())

    def key(self, ref: ClinicRef, version: int) -> bytes:
        found = self._keys.get((ref.id, version))
        if found is None:
            self._load(ref)
            found = self._keys.get((ref.id, version))
        if found is None:
            raise KeyUnavailable(f"clinic {ref.slug!r} has no data key version {version}")
        return found

    def active(self, ref: ClinicRef) -> tuple[int, bytes]:
        cached = self._active.get(ref.id)
        if cached is None or clock.now().timestamp() - cached[1] > self.ACTIVE_TTL_SECONDS:
            self._load(ref)
            cached = self._active.get(ref.id)
        if cached is None:
            self._create_first(ref)
            self._load(ref)
            cached = self._active.get(ref.id)
        if cached is None:
            raise KeyUnavailable(f"clinic {ref.slug!r} has no data key")
        return cached[0], self._keys[(ref.id, cached[0])]

    def _create_first(self, ref: ClinicRef) -> None:
        """Give a clinic its first data key, in a transaction of its own.

        However the clinic came to be, its first encrypted value creates the
        key. Two processes racing here both insert version 1; the unique
        (clinic, version) constraint keeps one and the other reloads it.
        """
        from sqlalchemy.exc import IntegrityError

        from core.encryption.models import ClinicDataKey
        from core.extensions import db

        master_id, wrapped = master_keys().wrap(secrets.token_bytes(32), ref.id, 1)
        try:
            with db.engine.begin() as connection:
                tell_database(connection, ref)
                connection.execute(
                    ClinicDataKey.__table__.insert().values(
                        clinic_id=ref.id,
                        version=1,
                        master_key_id=master_id,
                        wrapped=wrapped,
                        created_at=clock.now(),
                    )
                )
        except IntegrityError:
            pass  # another process made it first


def encrypt(plaintext: bytes, purpose: str) -> str:
    """Encrypt ``plaintext`` for the current clinic under its active data key."""
    ref = require_clinic_ref()
    version, key = keyring().active(ref)
    nonce = os.urandom(_NONCE)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _value_aad(ref.id, purpose, version))
    return f"{PREFIX}.{version}.{_b64(nonce + sealed)}"


def decrypt(ciphertext: str, purpose: str) -> bytes:
    """Decrypt a value of the current clinic; raise :class:`DecryptionFailed` if it was altered."""
    ref = require_clinic_ref()
    prefix, _, rest = ciphertext.partition(".")
    version_text, _, body = rest.partition(".")
    if prefix != PREFIX or not version_text.isdigit() or not body:
        raise DecryptionFailed("not a ciphertext of this platform")
    version = int(version_text)
    raw = _unb64(body)
    try:
        key = keyring().key(ref, version)
    except KeyUnavailable as error:
        raise DecryptionFailed(f"{purpose}: {error}") from None
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _value_aad(ref.id, purpose, version))
    except InvalidTag:
        raise DecryptionFailed(f"{purpose} failed to authenticate") from None


def key_version(ciphertext: str) -> int | None:
    """Return the data key version a ciphertext was made with, or None if it is not one."""
    prefix, _, rest = ciphertext.partition(".")
    version_text = rest.partition(".")[0]
    return int(version_text) if prefix == PREFIX and version_text.isdigit() else None


def derived_key(purpose: str) -> bytes:
    """Return a key for ``purpose`` derived from the current clinic's first data key.

    Version 1 is never destroyed (rotation retires, never deletes), so the
    derived key stays the same for the life of the clinic.
    """
    import hashlib
    import hmac

    ref = require_clinic_ref()
    keyring().active(ref)  # makes the clinic's first key if it has none
    return hmac.new(keyring().key(ref, 1), purpose.encode(), hashlib.sha256).digest()
