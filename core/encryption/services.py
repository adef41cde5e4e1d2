"""Creating, rotating and re-wrapping clinic data keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified

from core import clock
from core.encryption.keys import keyring, master_keys
from core.encryption.models import ClinicDataKey
from core.encryption.types import EncryptedBytes, EncryptedJSON, EncryptedText
from core.extensions import db
from core.tenancy.scope import require_clinic_ref
from core.unit_of_work import transaction, unit_of_work

_ENCRYPTED = (EncryptedBytes, EncryptedJSON, EncryptedText)


def _versions() -> list[ClinicDataKey]:
    return list(db.session.scalars(select(ClinicDataKey).order_by(ClinicDataKey.version)))


def _new_key(version: int) -> ClinicDataKey:
    ref = require_clinic_ref()
    master_id, wrapped = master_keys().wrap(secrets.token_bytes(32), ref.id, version)
    key = ClinicDataKey(version=version, master_key_id=master_id, wrapped=wrapped)
    db.session.add(key)
    return key


@transaction
def ensure_data_key() -> ClinicDataKey:
    """Give the current clinic a data key if it has none; return the active one."""
    active = [k for k in _versions() if k.retired_at is None]
    if active:
        return active[-1]
    key = _new_key(1)
    db.session.flush()
    keyring().clear()
    return key


@dataclass
class RotationReport:
    """What a rotation did for one clinic."""

    new_version: int
    reencrypted: int


def encrypted_columns() -> list[tuple[type, str]]:
    """Return every (model, attribute) whose column type encrypts."""
    found = []
    for mapper in db.Model.registry.mappers:
        for prop in mapper.column_attrs:
            for column in prop.columns:
                if isinstance(column.type, _ENCRYPTED):
                    found.append((mapper.class_, prop.key))
    return found


def rotate_data_key() -> RotationReport:
    """Make a new data key for the current clinic and re-encrypt everything under it.

    Two units of work: the new key first (so every process can load it), then the
    re-encrypted values. Old versions are retired, not destroyed, so a value
    written by a worker that had not yet seen the rotation still decrypts,
    and running the rotation again after a crash is safe.
    """
    with unit_of_work():
        versions = _versions()
        new = _new_key((versions[-1].version if versions else 0) + 1)
        for old in versions:
            if old.retired_at is None:
                old.retired_at = clock.now()
    keyring().clear()
    count = 0
    with unit_of_work():
        for model, attribute in encrypted_columns():
            for row in db.session.scalars(select(model)):
                if getattr(row, attribute) is None:
                    continue
                # The value is unchanged; flagging it makes the flush write it
                # again, now sealed under the new active key.
                flag_modified(row, attribute)
                count += 1
    return RotationReport(new.version, count)


@transaction
def rewrap_data_keys() -> int:
    """Re-wrap the current clinic's data keys under the current master key; return how many."""
    masters = master_keys()
    ref = require_clinic_ref()
    count = 0
    for key in _versions():
        if key.master_key_id == masters.current_id:
            continue
        raw = masters.unwrap(key.master_key_id, key.wrapped, ref.id, key.version)
        key.master_key_id, key.wrapped = _rewrap(raw, ref.id, key.version)
        count += 1
    db.session.flush()
    keyring().clear()
    return count


def _rewrap(raw: bytes, clinic_id: int, version: int) -> tuple[str, str]:
    return master_keys().wrap(raw, clinic_id, version)
