"""Assertions for plugin tests: a decision's type, money, outcome and the clause it applies."""

from __future__ import annotations

from typing import Any

from core.hooks.answers import problem
from core.hooks.decisions import Clause
from core.hooks.specs import ANSWER_TYPES
from core.money import Money


def assert_keeps_contract(hook_name: str, answer: Any, clinic: Any = None) -> None:
    """Fail unless ``answer`` is what ``hook_name`` may answer (as the host checks it)."""
    reason = problem(hook_name, answer, clinic)
    assert reason is None, f"{hook_name} {reason}"
    expected = ANSWER_TYPES.get(hook_name)
    assert expected is None or answer is not None, f"{hook_name} answered None"


def assert_clause(decision: Any, clause_id: str, *, quotes: str | None = None) -> Clause:
    """Fail unless ``decision`` applies clause ``clause_id`` (whose words contain ``quotes``)."""
    assert decision is not None, "there is no decision (every plugin answered None)"
    clause = decision.clause
    assert isinstance(clause, Clause), f"the decision's clause is {clause!r}, not a Clause"
    assert clause.id == clause_id, f"the decision applies {clause.id!r}, not {clause_id!r}"
    if quotes is not None:
        assert quotes in clause.text, (
            f"clause {clause.id!r} does not say {quotes!r}: {clause.text!r}"
        )
    return clause


def assert_decision(
    decision: Any,
    kind: type | None = None,
    *,
    clause: str | None = None,
    quotes: str | None = None,
    **expected: Any,
) -> Any:
    """Fail unless ``decision`` is a ``kind`` with the ``expected`` fields and clause.

    Amounts may be given as text in the decision's currency: ``fee="45.00"``.
    Returns the decision for further checks.
    """
    assert decision is not None, "there is no decision (every plugin answered None)"
    if kind is not None:
        assert isinstance(decision, kind), (
            f"the decision is a {type(decision).__name__}, not a {kind.__name__}"
        )
    if clause is not None:
        assert_clause(decision, clause, quotes=quotes)
    for name, wanted in expected.items():
        actual = getattr(decision, name)
        if isinstance(actual, Money) and isinstance(wanted, str):
            wanted = Money.parse(wanted, actual.currency)
        assert actual == wanted, f"{name} is {actual!r}, not {wanted!r}"
    return decision
