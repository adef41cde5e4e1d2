"""The code's layers point down: no import circles, and no capability imports one above it.

Read from the code itself with grimp (the graph import-linter is built on), which
sees imports inside functions too, so a circle cannot hide in a function body.
The layers are DESIGN.md's, lowest first; a module's layer is its package's, and
every ``routes`` module (the web) sits at the top with the CLI and the jobs.
"""

from __future__ import annotations

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
    ("sales, privacy, messaging", ("core.sales", "core.privacy", "core.messaging")),
    (
        "web: routes, jobs, CLI",
        ("core.platform", "core.jobs", "core.cli", "core.app", "core.config"),
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
