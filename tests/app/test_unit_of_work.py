"""A unit of work commits once, at its outermost end; a failure anywhere leaves nothing behind.

What is committed is read through a connection of its own, which sees nothing else.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from core.accounts.models import User
from core.extensions import db
from core.unit_of_work import (
    UnitOfWorkOpen,
    after_commit,
    in_unit_of_work,
    no_open_unit,
    transaction,
    unit_of_work,
)


def _committed_emails() -> list[str]:
    with db.engine.connect() as other:
        return sorted(other.execute(text("SELECT email FROM user_account")).scalars())


def _add(email: str) -> None:
    db.session.add(User(email=email, name=email, password_hash="-"))
    db.session.flush()


class Refused(Exception):
    pass


def test_a_unit_commits_what_it_did_when_it_ends(app):
    with app.app_context():
        with unit_of_work():
            _add("a@example.com")
            assert _committed_emails() == []
        assert _committed_emails() == ["a@example.com"]
        assert not db.session().in_transaction()


def test_a_unit_that_raises_leaves_nothing_and_the_error_goes_on(app):
    with app.app_context():
        with pytest.raises(Refused), unit_of_work():
            _add("a@example.com")
            raise Refused
        assert _committed_emails() == []
        assert not in_unit_of_work()


def test_a_unit_inside_another_joins_it_and_commits_once_at_the_end(app):
    @transaction
    def inner(email: str) -> None:
        _add(email)

    with app.app_context():
        with unit_of_work():
            inner("a@example.com")
            assert _committed_emails() == []  # the inner unit ended without committing
            inner("b@example.com")
        assert _committed_emails() == ["a@example.com", "b@example.com"]


def test_an_inner_failure_undoes_the_outer_units_work_too(app):
    @transaction
    def inner() -> None:
        _add("b@example.com")
        raise Refused

    with app.app_context():
        with pytest.raises(Refused), unit_of_work():
            _add("a@example.com")
            inner()
        assert _committed_emails() == []


def test_after_commit_steps_run_once_committed_and_are_dropped_on_rollback(app):
    seen: list[tuple[str, list[str], bool]] = []

    def step(name: str) -> None:
        seen.append((name, _committed_emails(), in_unit_of_work()))

    with app.app_context():
        with unit_of_work():
            _add("a@example.com")
            after_commit(lambda: step("kept"))
            assert seen == []
        with pytest.raises(Refused), unit_of_work():
            _add("b@example.com")
            after_commit(lambda: step("dropped"))
            raise Refused
    assert seen == [("kept", ["a@example.com"], False)]


def test_a_network_step_is_refused_inside_a_unit_and_allowed_between_units(app):
    with app.app_context():
        no_open_unit("asking Stripe")
        with pytest.raises(UnitOfWorkOpen, match="asking Stripe"), unit_of_work():
            no_open_unit("asking Stripe")
