"""``flask plugins new``: write a ready plugin package (code, settings, tenants example, tests, docs)."""

from __future__ import annotations

import importlib.util
import json
import keyword
import re
from pathlib import Path
from string import Template

#: Names a plugin package may not take: the platform's own top-level packages.
_RESERVED = frozenset({"core", "plugins", "migrations", "tests", "wsgi", "examples"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")

_FILES: dict[str, str] = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = $title_toml
requires-python = ">=3.11"
dependencies = ["clinic-saas"]

[project.optional-dependencies]
test = ["clinic-saas[testing]", "mypy>=1.13,<2"]

# The name clinics enable in their tenants/ file, and the module that answers.
[project.entry-points.clinic_saas]
$name = "$name"

[tool.setuptools.package-data]
$name = ["py.typed"]

[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.mypy]
strict = true
""",
    "src/$name/__init__.py": '''\
"""$title: a clinic's cancellation policy, with its numbers and words in the tenants/ file.

Start here: each hook below answers one question the platform asks about a
clinic that enables this plugin. Return ``None`` to leave a question to the
platform's default policy. The hooks, and what each is shown, are listed in
docs/plugin_hooks.md of clinic-saas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, fields, validate

from core.hooks import (
    CONTRACT_VERSION,
    Amount,
    BookingView,
    CancellationDecision,
    Clause,
    ClinicView,
    DepositOutcome,
    Money,
    hookimpl,
    money,
    settings_of,
    within_notice,
)

NAME = "$name"

if CONTRACT_VERSION[0] != 1:
    raise ImportError(f"{NAME} needs hook contract 1.x, not {CONTRACT_VERSION}")


class Settings(Schema):
    """What a clinic writes under [plugins.settings.$name]."""

    source = fields.String(required=True, validate=validate.Length(min=1, max=200))
    notice_hours = fields.Integer(load_default=24, validate=validate.Range(min=1, max=336))
    late_fee = Amount(load_default="0.00")
    cancellation_clause = fields.String(required=True, validate=validate.Length(min=1))


def _settings(clinic: ClinicView) -> dict[str, Any]:
    return settings_of(clinic, NAME, Settings)


@hookimpl
def clinic_settings_schema() -> Schema:
    return Settings()


@hookimpl
def clinic_cancellation_decision(
    clinic: ClinicView, booking: BookingView, at: datetime, by: str
) -> CancellationDecision | None:
    if by != "client":
        return None  # the default policy answers when the clinic cancels
    settings = _settings(clinic)
    late = within_notice(booking.starts_at, at, settings["notice_hours"])
    return CancellationDecision(
        clause=Clause(f"{NAME}.cancellation", settings["cancellation_clause"], settings["source"]),
        fee=money(settings["late_fee"], clinic.currency) if late else Money.zero(clinic.currency),
        deposit=DepositOutcome.none if booking.deposit_paid is None else DepositOutcome.kept,
        within_notice_window=late,
        counts_as_late_cancellation=late,
    )
''',
    "src/$name/py.typed": "",
    "tenants/example.toml": """\
# A clinic using $name: load it with `flask clinics load tenants/example.toml`.
slug = "example-clinic"
name = "Example Clinic"
country = "NZ"
timezone = "Pacific/Auckland"
currency = "NZD"

[[locations]]
slug = "main"
name = "Example Clinic"
country = "NZ"
timezone = "Pacific/Auckland"

[[services]]
slug = "facial"
name = "Facial"
category = "facials"
duration_minutes = 60
price = "150.00"
locations = ["main"]

[plugins]
enabled = ["$name"]

[plugins.settings.$name]
source = "Example Clinic, Cancellation Policy"
notice_hours = 24
late_fee = "40.00"
cancellation_clause = "Cancel at least 24 hours ahead, or a $$40 fee applies."
""",
    "tests/test_$name.py": '''\
"""$title, tested with the clinic-saas kit: each test quotes the clinic's words it checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from core.hooks import CancellationDecision, ClinicView
from core.testing import ClinicKit, assert_decision

TENANTS = Path(__file__).parent.parent / "tenants" / "example.toml"


def _clinic(kit: ClinicKit) -> ClinicView:
    return kit.clinic(TENANTS)


def test_a_late_cancellation_costs_the_fee(clinic_kit: ClinicKit) -> None:
    # "Cancel at least 24 hours ahead, or a $$40 fee applies."
    clinic = _clinic(clinic_kit)
    booking = clinic_kit.booking(clinic, service="facial", starts_at="2027-03-10 14:00")
    decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(hours=2), by="client"
    )
    assert_decision(
        decision, CancellationDecision, clause="$name.cancellation", fee="40.00"
    )


def test_cancelling_with_notice_is_free(clinic_kit: ClinicKit) -> None:
    clinic = _clinic(clinic_kit)
    booking = clinic_kit.booking(clinic, service="facial", starts_at="2027-03-10 14:00")
    decision = clinic_kit.hooks(clinic).clinic_cancellation_decision(
        clinic=clinic, booking=booking, at=booking.starts_at - timedelta(days=2), by="client"
    )
    assert_decision(decision, fee="0.00", within_notice_window=False)
''',
    "docs/$name.md": """\
# $name

$title. Enable it in a clinic's tenants/ file:

```toml
[plugins]
enabled = ["$name"]

[plugins.settings.$name]
source = "Your Clinic, Cancellation Policy"
notice_hours = 24          # hours before the appointment a client may cancel for free
late_fee = "40.00"         # charged for a later cancellation, in the clinic's currency
cancellation_clause = "Cancel at least 24 hours ahead, or a $$40 fee applies."
```

| hook | answers |
| --- | --- |
| `clinic_cancellation_decision` | the fee for a client's late cancellation; `None` when the clinic cancels |
""",
    "README.md": """\
# $dist

$title, as a clinic-saas plugin.

    python -m venv .venv
    .venv/bin/pip install -e '.[test]'
    .venv/bin/pytest
    .venv/bin/mypy src
    clinic-saas plugins check $name --tenants tenants/example.toml

See docs/$name.md for its settings.
""",
}


class ScaffoldError(ValueError):
    """The plugin cannot be written: the message says why."""


def write_plugin(name: str, directory: Path, title: str | None = None) -> list[Path]:
    """Write a new plugin package called ``name`` into ``directory``/``name``; return its files."""
    if _NAME.match(name) and not keyword.iskeyword(name):
        if name in _RESERVED or importlib.util.find_spec(name) is not None:
            raise ScaffoldError(
                f"{name!r} is taken: a module of that name is importable here already, "
                "and the plugin's package would shadow it or be shadowed"
            )
    else:
        raise ScaffoldError(
            f"{name!r} is not a plugin name: use lower-case letters, digits and underscores, "
            "starting with a letter (it is the Python package's name)"
        )
    root = directory / name
    if root.exists():
        raise ScaffoldError(f"{root} exists already; choose another name or directory")
    values = {
        "name": name,
        "dist": name.replace("_", "-"),
        "title": title or name.replace("_", " ").capitalize(),
    }
    # TOML's basic strings take JSON's escapes: a title with quotes stays one string.
    values["title_toml"] = json.dumps(
        f"{values['title']}: a clinic's rules as a clinic-saas plugin."
    )
    written = []
    for template, text in _FILES.items():
        path = root / Template(template).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(text).substitute(values), encoding="utf-8")
        written.append(path)
    return written
