"""Every hook is documented the way plugin authors need: exact signature, arguments, return, example."""

from __future__ import annotations

import inspect
import re

import pytest

from core.config import PROJECT_ROOT
from core.hooks import specs

DOCS = (PROJECT_ROOT / "docs" / "plugin_hooks.md").read_text()
HOOKS = sorted(
    name for name, fn in inspect.getmembers(specs, inspect.isfunction) if name.startswith("clinic_")
)


def _section(name: str) -> str:
    signature = ", ".join(inspect.signature(getattr(specs, name)).parameters)
    heading = f"### {name}({signature})"
    assert heading in DOCS, f"{name} has no heading with its exact signature: {heading!r}"
    start = DOCS.index(heading) + len(heading)
    end = DOCS.find("\n### ", start)
    return DOCS[start : end if end != -1 else len(DOCS)]


def test_hooks_are_found():
    assert len(HOOKS) >= 20


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name):
    section = _section(name)
    assert "Returns:" in section, f"{name}: say what the return value means"
    assert "```python" in section and "@hookimpl" in section, f"{name}: give an example"
    assert ".. versionadded::" in section
    for parameter in inspect.signature(getattr(specs, name)).parameters:
        assert f"`{parameter}`" in section, f"{name}: document argument {parameter!r}"


def test_no_documented_hook_is_missing_from_the_specs():
    documented = set(re.findall(r"^### (clinic_\w+)\(", DOCS, re.M))
    assert documented == set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_spec_docstring_says_what_none_means_or_is_an_event(name):
    doc = inspect.getdoc(getattr(specs, name)) or ""
    assert "versionadded" in doc
    assert "None" in doc or "ignored" in doc or "all of them" in doc or "lists all" in doc, name


def _python_block(after: str) -> str:
    start = DOCS.index("```python\n", DOCS.index(after)) + len("```python\n")
    return DOCS[start : DOCS.index("\n```", start)]


def test_the_writing_and_testing_examples_run(clinic_kit):
    # The page's plugin (glow_policy.py) and its test, run as an author would run them.
    import types

    plugin = types.ModuleType("glow_policy")
    exec(compile(_python_block("## Writing a plugin"), "glow_policy.py", "exec"), plugin.__dict__)
    clinic_kit.use(plugin, "glow_policy")
    tests: dict = {}
    exec(compile(_python_block("### Testing a plugin"), "test_glow.py", "exec"), tests)
    tests["test_glow_charges_fifty_inside_48_hours"](clinic_kit)
