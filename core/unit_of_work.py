"""The one place a transaction commits or rolls back: a service's unit of work.

A service function that changes data is a unit of work: decorate it with
:func:`transaction`, or wrap the steps in ``with unit_of_work():``. When the
outermost unit ends normally its work is committed; when it raises, everything
it did is rolled back and the error goes on to the caller. A unit entered
inside another joins it, so a service built from other services commits once,
at the end, and a failure anywhere leaves nothing half-applied.

Routes and jobs never commit: they call one service and render its result.
Event hooks are told after the commit (``core.events``), and a step that must
wait on the network (Stripe, SMTP) runs between two units, never inside one:
:func:`no_open_unit` says so where it matters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from core.extensions import db

P = ParamSpec("P")
R = TypeVar("R")

_DEPTH = "clinic_saas.unit_of_work_depth"
_AFTER = "clinic_saas.after_commit"


class UnitOfWorkOpen(RuntimeError):
    """A step that must not hold a transaction open was reached inside a unit of work."""


@contextmanager
def unit_of_work() -> Iterator[None]:
    """Commit what the block did when it ends, roll it back when it raises; join an outer unit."""
    session = db.session()
    depth = session.info.get(_DEPTH, 0)
    session.info[_DEPTH] = depth + 1
    try:
        yield
    except BaseException:
        session.info[_DEPTH] = depth
        if depth == 0:
            session.info.pop(_AFTER, None)
            session.rollback()
        raise
    session.info[_DEPTH] = depth
    if depth == 0:
        try:
            session.commit()
        except BaseException:
            session.info.pop(_AFTER, None)
            session.rollback()
            raise
        for step in session.info.pop(_AFTER, ()):
            step()


def after_commit(step: Callable[[], object]) -> None:
    """Run ``step`` once the unit of work it belongs to has committed, outside any transaction.

    For what must wait on the network (deleting a Stripe customer, say): it
    acts only on committed work, holds no lock while it waits, and is dropped
    when the unit rolls back. Outside any unit there is nothing to wait for,
    so it runs at once.
    """
    session = db.session()
    if not session.info.get(_DEPTH, 0):
        step()
        return
    session.info.setdefault(_AFTER, []).append(step)


def transaction(fn: Callable[P, R]) -> Callable[P, R]:
    """Make ``fn`` a unit of work: committed when it returns, rolled back when it raises."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with unit_of_work():
            return fn(*args, **kwargs)

    return run


def in_unit_of_work() -> bool:
    """Whether a unit of work is open on this session."""
    return bool(db.session().info.get(_DEPTH, 0))


def no_open_unit(step: str) -> None:
    """Refuse to go on with ``step`` (a network call) while a unit of work is open.

    A unit's writes hold row locks until it commits; waiting on Stripe or a mail
    server while holding them stalls every request that needs the same rows.
    """
    if in_unit_of_work():
        raise UnitOfWorkOpen(f"{step} must run between units of work, not inside one")
