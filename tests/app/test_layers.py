"""The code's layers point down: no import circles, and no capability imports one above it.

Read from the code itself with grimp (the graph import-linter is built on), which
sees imports inside functions too, so a circle cannot hide in a function body.
The layers are DESIGN.md's, lowest first; a module's layer is its package's, and
every ``routes`` module (the web) sits at the top with the CLI and the jobs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

#: Lowest first. A module may import its own layer and those below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "money, clock, errors",
        (
            "core.money",
            "core.clock",
            "core.errors",
            "core.extensions",
            "core.unit_of_work",
            "core.schemas",
            "core.api",
            "core.security_headers",
            "core.secret_keys",
            "core.request_ids",
            "core.request_log",
        ),
    ),
    (
        "tenancy and accounts",
        (
            "core.tenancy",
            "core.accounts",
            "core.encryption",
            "core.audit",
            "core.hooks",
            "core.idempotency",
            "core.events",
            "core.defaults",
        ),
    ),
    ("ledger and outbox", ("core.ledger", "core.messaging.models", "core.messaging.outbox")),
    ("catalog and schedules", ("core.catalog", "core.schedules")),
    ("clients and bookings", ("core.clients", "core.bookings", "core.messaging.reminders")),
    ("payments", ("core.payments",)),
    (
        "sales, privacy, messaging",
        (
            "core.sales",
            "core.privacy",
            "core.messaging",
            "core.onboarding",
            "core.integrations",
            "core.reports",
        ),
    ),
    (
        "web: routes, jobs, CLI",
        (
            "core.platform",
            "core.client_pages",
            "core.jobs",
            "core.cli",
            "core.demo",
            "core.testing",
            "core.app",
            "core.config",
        ),
    ),
]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("core", include_external_packages=False)


def layer_of(module: str) -> int:
    """Return the index in LAYERS of ``module``: its most specific listed package's layer."""
    if module.rsplit(".", 1)[-1] == "routes":
        return len(LAYERS) - 1
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def test_no_module_of_core_is_in_an_import_circle(graph):
    circles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                circles.append(" -> ".join([module, *back]))
    assert circles == []


def test_every_import_points_down_the_layers(graph):
    upward = []
    for module in sorted(graph.modules - {"core"}):  # core/__init__ hands on create_app
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported != "core" and layer_of(imported) > layer_of(module):
                upward.append(
                    f"{module} ({LAYERS[layer_of(module)][0]}) imports {imported} "
                    f"({LAYERS[layer_of(imported)][0]})"
                )
    assert upward == []


# --- one way to do each thing, read from the source ---------------------------------------------

CORE = Path(__file__).resolve().parents[2] / "core"


def _modules_calling(predicate) -> dict[str, int]:
    """Count, per module of core/, the calls whose callee ``predicate`` accepts (read with ast)."""
    found: dict[str, int] = {}
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and predicate(ast.unparse(node.func)):
                name = str(path.relative_to(CORE.parent))
                found[name] = found.get(name, 0) + 1
    return found


def test_only_the_unit_of_work_commits():
    # Routes, jobs and commands call services; a service's unit of work is the one place a
    # transaction commits, so events and after-commit steps always follow a real commit.
    committing = _modules_calling(lambda callee: callee.endswith(".commit"))
    assert set(committing) == {"core/unit_of_work.py"}


def test_ledger_entries_messages_and_charges_each_have_one_maker():
    made = {
        "LedgerEntry": _modules_calling(lambda callee: callee == "LedgerEntry"),
        "OutboxMessage": _modules_calling(lambda callee: callee == "OutboxMessage"),
        "PaymentIntent": _modules_calling(lambda callee: callee.endswith("payment_intents.create")),
    }
    assert {kind: set(modules) for kind, modules in made.items()} == {
        "LedgerEntry": {"core/ledger/services.py"},
        "OutboxMessage": {"core/messaging/outbox.py"},
        "PaymentIntent": {"core/payments/charges.py"},
    }


def test_payments_know_nothing_of_what_was_sold(graph):
    # What a payment means for a bill, a package or a membership is told to handlers the
    # sales package registers (core.payments.handlers), so payments never import sales.
    from_payments = {
        imported
        for module in graph.find_descendants("core.payments") | {"core.payments"}
        for imported in graph.find_modules_directly_imported_by(module)
    }
    assert sorted(m for m in from_payments if m.startswith("core.sales")) == []
