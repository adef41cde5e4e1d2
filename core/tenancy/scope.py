"""The one way to enter a clinic's scope, and the ORM rules that keep each clinic's rows apart.

Every clinic-owned model mixes in :class:`ClinicScoped`. While a scope is
active, every ORM SELECT, UPDATE and DELETE is limited to the current clinic
and every insert takes it; with no scope, touching a clinic-owned model
raises :class:`NoClinicScope` instead of silently reading every clinic. On
PostgreSQL each transaction also sets ``app.clinic_id`` so that row-level
security enforces the same rule for SQL the ORM never sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, event, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql.util import find_tables

from core.extensions import db


class NoClinicScope(RuntimeError):
    """Clinic-owned data was touched outside any clinic scope."""


class CrossClinicWrite(RuntimeError):
    """A row of one clinic was written while another clinic's scope was active."""


@dataclass(frozen=True, slots=True)
class ClinicRef:
    """The clinic a scope belongs to: its id and slug, nothing that can go stale."""

    id: int
    slug: str


_current: ContextVar[ClinicRef | None] = ContextVar("current_clinic", default=None)


def current_clinic_ref() -> ClinicRef | None:
    """Return the clinic whose scope is active, or None outside any scope."""
    return _current.get()


def require_clinic_ref() -> ClinicRef:
    """Return the active clinic, raising :class:`NoClinicScope` when there is none."""
    ref = _current.get()
    if ref is None:
        raise NoClinicScope("no clinic scope is active")
    return ref


class ClinicScoped:
    """Mixin for every clinic-owned model: a ``clinic_id`` the ORM fills and filters."""

    @declared_attr
    def clinic_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey("clinic.id", ondelete="RESTRICT"), nullable=False, index=True
        )


def enter_clinic(ref: ClinicRef) -> Token[ClinicRef | None]:
    """Make ``ref`` the active clinic and return the token that :func:`leave_clinic` takes.

    Prefer :func:`clinic_scope`; requests use this pair because their scope
    opens and closes in separate hooks. Unscoped rows already in the session
    (the ``Clinic`` just looked up by slug, a ``User``) stay usable.
    """
    active = _current.get()
    if active is not None and active.id != ref.id:
        raise CrossClinicWrite(f"already in the scope of clinic {active.slug!r}")
    session = db.session()
    held = list(session.identity_map.values()) + list(session.new)
    if any(isinstance(obj, ClinicScoped) for obj in held):
        # Clinic-owned rows loaded before the scope could come back from the
        # identity map without SQL (Session.get); start from a clean session.
        db.session.remove()
        session = db.session()
    token = _current.set(ref)
    if session.in_transaction():
        _tell_database(session.connection(), ref)
    return token


def leave_clinic(token: Token[ClinicRef | None]) -> None:
    """End the scope opened by :func:`enter_clinic`, discarding uncommitted work."""
    try:
        db.session.remove()
    finally:
        _current.reset(token)


@contextmanager
def clinic_scope(clinic: Any) -> Iterator[ClinicRef]:
    """Run the block in ``clinic``'s scope, with a database session of its own.

    Use it wherever there is no request to supply the clinic: CLI commands,
    jobs, webhooks. ``clinic`` is a ``Clinic`` or a :class:`ClinicRef`.
    Commit inside the block; what is not committed is rolled back at its end.
    """
    ref = clinic if isinstance(clinic, ClinicRef) else ClinicRef(clinic.id, clinic.slug)
    token = enter_clinic(ref)
    try:
        yield ref
    finally:
        leave_clinic(token)


def _is_scoped_mapper(mapper: Any) -> bool:
    return issubclass(mapper.class_, ClinicScoped)


def _touches_clinic_data(state: ORMExecuteState) -> bool:
    """Return whether the statement reads or writes a clinic-owned table anywhere.

    ``all_mappers`` alone misses ``select(func.count()).select_from(Location)``
    and subqueries, so the statement's tables are searched as well.
    """
    if any(_is_scoped_mapper(m) for m in state.all_mappers):
        return True
    return any(
        getattr(table, "name", None) in _scoped_table_names()
        for table in find_tables(state.statement, include_crud=True, check_columns=True)
    )


_scoped_tables: tuple[int, frozenset[str]] = (-1, frozenset())


def _scoped_table_names() -> frozenset[str]:
    # Recomputed only when a model is added to the registry.
    global _scoped_tables
    mappers = db.Model.registry.mappers
    if _scoped_tables[0] != len(mappers):
        names = frozenset(m.local_table.name for m in mappers if _is_scoped_mapper(m))
        _scoped_tables = (len(mappers), names)
    return _scoped_tables[1]


def _tell_database(connection: Any, ref: ClinicRef | None) -> None:
    """Tell PostgreSQL which clinic the transaction serves, for row-level security.

    ``set_config(..., true)`` lasts only until the transaction ends, so it
    cannot leak through the pool to another request as ``SET`` would.
    """
    if connection.dialect.name != "postgresql":
        return
    connection.execute(
        text("SELECT set_config('app.clinic_id', :clinic_id, true)"),
        {"clinic_id": str(ref.id) if ref else ""},
    )


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, transaction: Any, connection: Any) -> None:
    _tell_database(connection, _current.get())


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if not _touches_clinic_data(state):
        return
    ref = _current.get()
    if ref is None:
        raise NoClinicScope(
            "clinic-owned data queried outside a clinic scope; use clinic_scope(clinic)"
        )
    clinic_id = ref.id
    state.statement = state.statement.options(
        with_loader_criteria(
            ClinicScoped,
            lambda cls: cls.clinic_id == clinic_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_clinic(session: Session, flush_context: Any, instances: Any) -> None:
    pending = [o for o in session.new if isinstance(o, ClinicScoped)]
    changed = [o for o in session.dirty if isinstance(o, ClinicScoped)]
    deleted = [o for o in session.deleted if isinstance(o, ClinicScoped)]
    if not (pending or changed or deleted):
        return
    ref = _current.get()
    if ref is None:
        raise NoClinicScope("clinic-owned data written outside a clinic scope")
    for obj in pending:
        if obj.clinic_id is None:
            obj.clinic_id = ref.id
        elif obj.clinic_id != ref.id:
            raise CrossClinicWrite(
                f"{type(obj).__name__} of clinic {obj.clinic_id} written in scope of {ref.slug!r}"
            )
    for obj in changed + deleted:
        if obj.clinic_id != ref.id:
            raise CrossClinicWrite(
                f"{type(obj).__name__} of clinic {obj.clinic_id} changed in scope of {ref.slug!r}"
            )
