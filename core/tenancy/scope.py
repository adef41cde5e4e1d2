"""The one way to enter a clinic's scope, and the ORM rules that keep each clinic's rows apart.

Every clinic-owned model mixes in :class:`ClinicScoped`. While a scope is
active, every ORM SELECT, UPDATE and DELETE is limited to the current clinic
and every insert takes it; with no scope, touching a clinic-owned model
raises :class:`NoClinicScope` instead of silently reading every clinic. On
PostgreSQL each transaction also sets ``app.clinic_id`` so that row-level
security enforces the same rule for SQL the ORM never sees.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ForeignKey, String, bindparam, cast, event, false, func, literal, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.orm.strategy_options import Load, _AbstractLoad
from sqlalchemy.sql.util import find_tables

from core import money
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
    #: How the clinic's clients read money and dates (English as written in its country).
    locale: str = "en_US"


_current: ContextVar[ClinicRef | None] = ContextVar("current_clinic", default=None)


def current_clinic_ref() -> ClinicRef | None:
    """Return the clinic whose scope is active, or None outside any scope."""
    return _current.get()


def _clinic_locale() -> str:
    ref = _current.get()
    return ref.locale if ref is not None else "en_US"


money.speak_as(_clinic_locale)


def require_clinic_ref() -> ClinicRef:
    """Return the active clinic, raising :class:`NoClinicScope` when there is none."""
    ref = _current.get()
    if ref is None:
        raise NoClinicScope("no clinic scope is active")
    return ref


class ClinicScoped:
    """Mixin for every clinic-owned model: a ``clinic_id`` the ORM fills and filters."""

    #: Read by the session's bulk-operation guard (core.extensions), which
    #: cannot import this module.
    __clinic_scoped__ = True

    @declared_attr
    def clinic_id(cls) -> Mapped[int]:
        return mapped_column(
            ForeignKey("clinic.id", ondelete="RESTRICT"), nullable=False, index=True
        )


def enter_clinic(ref: ClinicRef, *, database_told: bool = False) -> Token[ClinicRef | None] | None:
    """Make ``ref`` the active clinic and return the token that :func:`leave_clinic` takes.

    Prefer :func:`clinic_scope`; requests use this pair because their scope
    opens and closes in separate hooks. Unscoped rows already in the session
    (the ``Clinic`` just looked up by slug, a ``User``) stay usable.
    Entering the clinic already active is a no-op (token ``None``), so a
    service may open a scope without knowing whether its caller did.
    ``database_told``: the open transaction has set the clinic for row-level
    security already (see :func:`scope_in_same_statement`), so no statement is sent.
    """
    active = _current.get()
    if active is not None:
        if active.id != ref.id:
            raise CrossClinicWrite(f"already in the scope of clinic {active.slug!r}")
        return None
    session = db.session()
    held = list(session.identity_map.values()) + list(session.new)
    if any(isinstance(obj, ClinicScoped) for obj in held):
        # Clinic-owned rows loaded before the scope could come back from the
        # identity map without SQL (Session.get); start from a clean session.
        db.session.remove()
        session = db.session()
    token = _current.set(ref)
    if session.in_transaction() and not database_told:
        tell_database(session.connection(), ref)
    return token


_before_leaving: list[Callable[[], Any]] = []


def before_leaving(callback: Callable[[], Any]) -> None:
    """Run ``callback`` as each clinic scope ends, still inside it (core.events uses it)."""
    _before_leaving.append(callback)


def leave_clinic(token: Token[ClinicRef | None] | None) -> None:
    """End the scope opened by :func:`enter_clinic`, discarding uncommitted work."""
    if token is None:
        return  # an inner scope of the same clinic: the outer one ends it
    try:
        for callback in _before_leaving:
            callback()
    finally:
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
    ref = (
        clinic
        if isinstance(clinic, ClinicRef)
        else ClinicRef(clinic.id, clinic.slug, clinic.locale)
    )
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
    and subqueries, so the statement's tables are searched as well. Statements
    are immutable: one built once and run on every request (the guard's
    clinic lookup) is searched once.
    """
    statement = state.statement
    known = _TOUCHES.get(statement)
    if known is not None:
        return known
    touches = any(_is_scoped_mapper(m) for m in state.all_mappers) or any(
        getattr(table, "name", None) in _scoped_table_names()
        for table in find_tables(statement, include_crud=True, check_columns=True)
    )
    _TOUCHES[statement] = touches
    return touches


#: What :func:`_touches_clinic_data` found, by statement, for as long as the statement lives.
_TOUCHES: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


_scoped_tables: tuple[int, frozenset[str]] = (-1, frozenset())


def _scoped_table_names() -> frozenset[str]:
    # Recomputed only when a model is added to the registry.
    global _scoped_tables
    mappers = db.Model.registry.mappers
    if _scoped_tables[0] != len(mappers):
        names = frozenset(m.local_table.name for m in mappers if _is_scoped_mapper(m))
        _scoped_tables = (len(mappers), names)
    return _scoped_tables[1]


def tell_database(connection: Any, ref: ClinicRef | None) -> None:
    """Tell PostgreSQL which clinic the transaction serves, for row-level security.

    ``set_config(..., true)`` lasts only until the transaction ends, so it
    cannot leak through the pool to another request as ``SET`` would. For
    the same reason a transaction outside any scope needs no statement: the
    setting is already empty, and row-level security then shows no clinic's rows.
    """
    if connection.dialect.name != "postgresql" or ref is None:
        return
    connection.execute(
        text("SELECT set_config('app.clinic_id', :clinic_id, true)"),
        {"clinic_id": str(ref.id) if ref else ""},
    )


def scope_in_same_statement(clinic_id: Any) -> Any:
    """A column expression that sets the clinic for row-level security as the row is read.

    Selected beside the clinic's own row (``select(Clinic, scope_in_same_statement(Clinic.id))``),
    it spares the request a round trip; then enter the scope with ``database_told=True``.
    On SQLite, which has no row-level security, it is a constant.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return literal(None)
    return func.set_config("app.clinic_id", cast(clinic_id, String), True)


#: The bound parameter naming the active clinic in a statement run by :func:`execute_in_scope`.
IN_THIS_CLINIC = "in_this_clinic"


def in_this_clinic() -> Any:
    """The active clinic's id, as a bound parameter :func:`execute_in_scope` fills."""
    return bindparam(IN_THIS_CLINIC)


def execute_in_scope(statement: Any, params: dict[str, Any]) -> Any:
    """Run a Core statement on the session's connection, in its transaction, for the active clinic.

    For the hottest statements, where the ORM's work per statement cost more
    than the statement. The ORM's clinic rules do not see it, so it must name
    the clinic itself, comparing each clinic-owned table's ``clinic_id`` with
    :func:`in_this_clinic` (row-level security requires the same on PostgreSQL).
    """
    return db.session.connection().execute(
        statement, {**params, IN_THIS_CLINIC: require_clinic_ref().id}
    )


@event.listens_for(Session, "after_begin")
def _scope_transaction(session: Session, transaction: Any, connection: Any) -> None:
    tell_database(connection, _current.get())


def _may_eager_load_clinic_data(state: ORMExecuteState) -> bool:
    """Return whether the statement could eagerly load clinic-owned rows it does not name."""
    if any(isinstance(option, Load | _AbstractLoad) for option in state.statement._with_options):
        return True
    for mapper in state.all_mappers:
        for relationship in mapper.relationships:
            if relationship.lazy in {"joined", "selectin", "subquery", "immediate"} and (
                _is_scoped_mapper(relationship.mapper)
            ):
                return True
    return False


class UnscopedStatement(RuntimeError):
    """A statement on clinic-owned tables that the clinic rules cannot see into."""


def _declared_clinic_ids(state: ORMExecuteState) -> list[Any]:
    """Return the clinic_id values an INSERT or UPDATE statement writes, if any."""
    statement = state.statement
    found: list[Any] = []
    rows = [getattr(statement, "_values", None) or {}]
    rows += list(getattr(statement, "_multi_values", ()) or ())
    for row in rows:
        for group in row if isinstance(row, list | tuple) else [row]:
            for key, value in (group or {}).items():
                if getattr(key, "key", key) == "clinic_id":
                    found.append(getattr(value, "value", value))
    parameters = state.parameters
    for params in parameters if isinstance(parameters, list | tuple) else [parameters]:
        if params and "clinic_id" in params:
            found.append(params["clinic_id"])
    return found


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    # Runs for every statement, so the common case (an ORM statement inside a
    # scope) avoids walking the statement's tables.
    if state.is_column_load:
        return
    ref = _current.get()
    if not state.is_orm_statement:
        if _touches_clinic_data(state):
            # Core statements on tables (select(Location.__table__)) escape the
            # ORM criteria; PostgreSQL would still filter them, SQLite would not.
            raise UnscopedStatement(
                "use the ORM entity (select(Location)), not its table, so clinic scoping applies"
            )
        return
    if state.is_insert or state.is_update:
        writes_clinic_data = any(_is_scoped_mapper(m) for m in state.all_mappers)
        if writes_clinic_data and ref is None:
            raise NoClinicScope("clinic-owned data written outside a clinic scope")
        written = _declared_clinic_ids(state)
        if (
            state.is_insert
            and writes_clinic_data
            and (not written or any(c != ref.id for c in written))
        ):
            raise CrossClinicWrite(
                "an INSERT into a clinic-owned table must carry the current clinic_id"
            )
        if state.is_update and written and any(ref is None or c != ref.id for c in written):
            raise CrossClinicWrite("rows cannot be moved to another clinic")
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if ref is None:
        if _touches_clinic_data(state):
            raise NoClinicScope(
                "clinic-owned data queried outside a clinic scope; use clinic_scope(clinic)"
            )
        if _may_eager_load_clinic_data(state):
            # An eager load from a global model (Clinic -> locations) can
            # reach clinic rows the statement does not show: with no scope
            # it must find none.
            state.statement = state.statement.options(
                with_loader_criteria(ClinicScoped, lambda cls: false(), include_aliases=True)
            )
        return
    clinic_id = ref.id
    # Applied to every statement, not only those seen to touch clinic data:
    # joined eager loads from global models are invisible until compiled.
    state.statement = state.statement.options(
        with_loader_criteria(
            ClinicScoped,
            lambda cls: cls.clinic_id == clinic_id,
            include_aliases=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _stamp_clinic(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in session.new:
        if isinstance(obj, ClinicScoped) and obj.clinic_id is None:
            ref = _current.get()
            if ref is None:
                raise NoClinicScope("clinic-owned data written outside a clinic scope")
            obj.clinic_id = ref.id


def _check_row(mapper: Any, connection: Any, target: Any) -> None:
    """Refuse to write a row that is not the current clinic's, as finally flushed.

    Runs per row after relationships have set their foreign keys, so
    ``other_clinic.locations.append(...)`` is caught too.
    """
    ref = _current.get()
    if ref is None:
        raise NoClinicScope("clinic-owned data written outside a clinic scope")
    if target.clinic_id != ref.id:
        raise CrossClinicWrite(
            f"{type(target).__name__} of clinic {target.clinic_id} written in scope of {ref.slug!r}"
        )


for _event in ("before_insert", "before_update", "before_delete"):
    event.listen(ClinicScoped, _event, _check_row, propagate=True)
