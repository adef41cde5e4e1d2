"""Each plugin's documentation lists its rules, numbers and sources."""

from __future__ import annotations

import importlib

import pytest

from core.config import PROJECT_ROOT


@pytest.mark.parametrize(
    ("plugin", "module", "schema"),
    [
        ("hipaa_aligned", "plugins.hipaa_aligned", "HipaaSettings"),
        ("ccpa", "plugins.ccpa", "CcpaSettings"),
        ("nz_privacy", "plugins.nz_privacy", "NzPrivacySettings"),
        ("florida", "plugins.florida", "FloridaSettings"),
        ("default_jurisdiction", "core.defaults.jurisdiction", "BaselineSettings"),
        ("default_policy", "core.defaults.policy", "DefaultPolicySettings"),
    ],
)
def test_every_setting_is_documented_with_its_default(plugin, module, schema):
    docs = (PROJECT_ROOT / "docs" / "plugins" / f"{plugin}.md").read_text()
    settings = getattr(importlib.import_module(module), schema)
    for name, field in settings().fields.items():
        default = field.load_default() if callable(field.load_default) else field.load_default
        if field.required:
            shown = "required"
        elif default in ([], None):
            shown = "none"
        elif isinstance(default, list):
            shown = ", ".join(map(str, default))
        else:
            shown = str(default.value if hasattr(default, "value") else default)
        assert f"`{name}` ({shown})" in docs, f"{plugin}: document {name} with its default {shown}"
    assert "| source |" in docs
