"""A clinic's setup kept in memory between requests, for as long as its ``setup_version`` stands.

What every request to a clinic reads and staff rarely change (who holds which
API token, the catalog's services and places, the webhook endpoints
listening) is kept by each worker rather than read again. Every change to a
model marked :func:`part_of_setup` raises the clinic's ``setup_version`` in
the same transaction, and each request reads that version with the clinic's
row, in the statement it sends anyway. A kept copy is used only while the
version it was read at is the one the request found, so a change made
through any server is seen by the next request on every server.

Outside a request (jobs, commands) nothing is kept: the version is only
known where the request's first statement read it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from typing import Any, TypeVar

from flask import current_app, has_app_context
from sqlalchemy import column, event, inspect, table, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from core.extensions import db
from core.tenancy.scope import current_clinic_ref

T = TypeVar("T")
M = TypeVar("M", bound=type)

#: Each model whose rows are part of a clinic's setup, with the columns whose change is not.
_SETUP: dict[type, frozenset[str]] = {}


def part_of_setup(
    *, ignoring: Iterable[str] = (), clinic_key: str = "clinic_id"
) -> Callable[[M], M]:
    """Mark a model as part of the clinic's setup: changing one of its rows raises the version.

    ``ignoring`` names columns written in the course of business (a token's
    last use, an endpoint's failures) that nothing kept depends on;
    ``clinic_key`` is the attribute naming the clinic (the clinic's own row: ``id``).
    """

    def mark(model: M) -> M:
        _SETUP[model] = frozenset(ignoring)
        _CLINIC_KEY[model] = clinic_key
        return model

    return mark


_CLINIC_KEY: dict[type, str] = {}


#: (clinic id, setup version) read by this request's first statement; None where not known.
_known: ContextVar[tuple[int, int] | None] = ContextVar("known_setup_version", default=None)


def know_version(clinic_id: int, version: int) -> None:
    """Record the setup version the current request read with its clinic's row."""
    _known.set((clinic_id, version))


def forget_version() -> None:
    """The request is over (or changed the setup): keep and use nothing more."""
    _known.set(None)


def known_version() -> int | None:
    """Return the setup version this request may use kept copies at, or None."""
    known = _known.get()
    ref = current_clinic_ref()
    if known is None or ref is None or known[0] != ref.id:
        return None
    return known[1]


class KeptSetup:
    """The copies one app keeps, by clinic and what they are, each with the version read at.

    Shared by the threads of a worker, so it is locked; the least recently
    used go first. Treat what it returns as read-only.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[int, str, Hashable], tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()
        #: The clinic last found at each address: a guess, checked against the row once read.
        self.clinic_ids: dict[str, int] = {}

    def get(self, clinic_id: int, version: int, kind: str, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            found = self._entries.get((clinic_id, kind, key))
            if found is None or found[0] != version:
                return False, None
            self._entries.move_to_end((clinic_id, kind, key))
            return True, found[1]

    def peek(self, clinic_id: int, kind: str, key: Hashable) -> tuple[int, Any] | None:
        """Return (version, copy) whatever the version, for a caller that checks it later."""
        with self._lock:
            return self._entries.get((clinic_id, kind, key))

    def keep(self, clinic_id: int, version: int, kind: str, key: Hashable, value: Any) -> None:
        with self._lock:
            self._entries[(clinic_id, kind, key)] = (version, value)
            self._entries.move_to_end((clinic_id, kind, key))
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)

    def get_or_keep(
        self, clinic_id: int, version: int, kind: str, key: Hashable, load: Callable[[], T]
    ) -> T:
        """Return the copy kept at ``version``, or ``load()`` it and keep it at that version."""
        hit, value = self.get(clinic_id, version, kind, key)
        if hit:
            return value  # type: ignore[no-any-return]
        value = load()
        if known_version() in (None, version):  # loading changed nothing (a flush raising it)
            self.keep(clinic_id, version, kind, key, value)
        return value

    def forget(self, clinic_id: int) -> None:
        with self._lock:
            for entry in [e for e in self._entries if e[0] == clinic_id]:
                del self._entries[entry]


def kept_setup() -> KeptSetup:
    """Return this app's copies (one per app: each app has its own database, and tests build many)."""
    return current_app.extensions.setdefault("clinic_saas.kept_setup", KeptSetup())


def kept(kind: str, key: Hashable, load: Callable[[], T]) -> T:
    """Return ``load()``, or the copy kept from an earlier call if the clinic's setup is unchanged.

    ``load`` must read only setup (models marked :func:`part_of_setup`) and
    return plain values or :func:`detached_copy` objects, never rows of the
    current session; put ORM copies back in the session with :func:`attach`.
    """
    ref = current_clinic_ref()
    version = known_version()
    if ref is None or version is None:
        return load()
    return kept_setup().get_or_keep(ref.id, version, kind, key, load)


def detached_copy(obj: T) -> T:
    """Return a copy of a loaded row holding its columns only, fit to keep across sessions."""
    mapper = inspect(obj).mapper
    copy = mapper.class_manager.new_instance()
    state = inspect(copy)
    for attr in mapper.column_attrs:
        # JSON values copied too: the row's own may yet be changed in place by its request.
        state.dict[attr.key] = _copy_json(getattr(obj, attr.key))
    make_transient_to_detached(copy)
    return copy


def loaded(model: type[T], columns: dict[str, Any]) -> T:
    """Return the current session's row of ``model`` from its columns' values, read by Core."""
    mapper = inspect(model)
    row = mapper.class_manager.new_instance()
    state = inspect(row)
    for attr in mapper.column_attrs:
        state.dict[attr.key] = columns[attr.columns[0].name]
    make_transient_to_detached(row)
    return db.session.merge(row, load=False)


def attach(copy: T) -> T:
    """Return the current session's row for a kept copy, without asking the database.

    Its JSON values (a clinic's settings) are the request's own: nothing a
    request does to them in place reaches the copy the next request gets.
    """
    row = db.session.merge(copy, load=False)
    for key, value in inspect(copy).dict.items():
        if isinstance(value, dict | list):
            set_committed_value(row, key, _copy_json(value))
    return row


def _copy_json(value: Any) -> Any:
    """Return a deep copy of JSON data (dicts, lists, and values that cannot change).

    ``copy.deepcopy`` does the same for any object, at several times the cost.
    """
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


# --- raising the version -----------------------------------------------------------


def _changed(session: Session) -> set[int]:
    """The clinics whose setup this flush changes."""
    clinics: set[int] = set()
    for obj in (*session.new, *session.deleted):
        if type(obj) in _SETUP:
            clinics.add(getattr(obj, _CLINIC_KEY[type(obj)]))
    for obj in session.dirty:
        ignored = _SETUP.get(type(obj))
        if ignored is None:
            continue
        state = inspect(obj)
        if any(attr.key not in ignored and attr.history.has_changes() for attr in state.attrs):
            clinics.add(getattr(obj, _CLINIC_KEY[type(obj)]))
    clinics.discard(None)  # type: ignore[arg-type]
    return clinics


#: The clinic table as far as raising a version needs it.
_CLINIC = table("clinic", column("id"), column("setup_version"))


@event.listens_for(Session, "after_flush")
def _raise_version(session: Session, flush_context: Any) -> None:
    clinics = _changed(session)
    if not clinics:
        return
    connection = session.connection()
    for clinic_id in sorted(clinics):
        # On the connection, not through the session (this is its flush). The clinic row is
        # global; its updated_at says when the clinic's own details changed, not its setup,
        # and this bare table (the models mark themselves with this module) sets only this.
        connection.execute(
            update(_CLINIC)
            .where(_CLINIC.c.id == clinic_id)
            .values(setup_version=_CLINIC.c.setup_version + 1)
        )
    session.info.setdefault("clinic_saas.setup_changed", set()).update(clinics)
    # What this request kept or may read is older than what it now writes.
    forget_version()


@event.listens_for(Session, "after_commit")
def _forget_changed(session: Session) -> None:
    clinics = session.info.pop("clinic_saas.setup_changed", None)
    if clinics and has_app_context():
        store = kept_setup()
        for clinic_id in clinics:
            store.forget(clinic_id)


@event.listens_for(Session, "after_rollback")
def _nothing_changed(session: Session) -> None:
    session.info.pop("clinic_saas.setup_changed", None)
