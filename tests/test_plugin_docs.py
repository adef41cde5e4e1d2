"""Each jurisdiction plugin's documentation lists its rules, numbers and sources."""

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
    ],
)
def test_every_setting_is_documented_with_its_default(plugin, module, schema):
    docs = (PROJECT_ROOT / "docs" / "plugins" / f"{plugin}.md").read_text()
    settings = getattr(importlib.import_module(module), schema)
    for name, field in settings().fields.items():
        default = field.load_default
        shown = "none" if default in ([], None) or callable(default) else str(default)
        assert f"`{name}` ({shown})" in docs, f"{plugin}: document {name} with its default {shown}"
    assert "| source |" in docs
