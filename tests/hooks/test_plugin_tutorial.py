"""The plugin tutorial's files are the example plugin's, which CI installs and tests as written.

``.ci/plugin_tutorial`` follows docs/plugin_tutorial.md in a fresh virtual
environment with examples/kowhai_policy; this test keeps the page and the
example from drifting apart, and runs the example's own tests here too.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from core.config import PROJECT_ROOT

TUTORIAL = PROJECT_ROOT / "docs" / "plugin_tutorial.md"
EXAMPLE = PROJECT_ROOT / "examples" / "kowhai_policy"
#: Each heading that names a file, and the block under it.
FILE_BLOCK = re.compile(r"^## \d+\. [^`\n]*`([^`]+)`\n.*?```\w*\n(.*?)\n```", re.M | re.S)


def _blocks() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(TUTORIAL.read_text(encoding="utf-8")))


def test_the_tutorial_shows_every_file_of_the_example():
    shown = _blocks()
    assert set(shown) == {
        "pyproject.toml",
        "src/kowhai_policy/__init__.py",
        "tenants/kowhai-skin.toml",
        "tests/test_kowhai_policy.py",
    }


@pytest.mark.parametrize("name", sorted(_blocks()))
def test_each_file_in_the_tutorial_is_the_examples_file(name):
    assert _blocks()[name] == (EXAMPLE / name).read_text(encoding="utf-8").rstrip("\n")


def test_the_examples_tests_pass_with_the_kit(tmp_path):
    # Here the plugin is not installed: the example's tests put it in place through the kit.
    conftest = tmp_path / "conftest.py"
    conftest.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(EXAMPLE / 'src')!r})\n"
        "import pytest, kowhai_policy\n"
        "@pytest.fixture(autouse=True)\n"
        "def _installed(clinic_kit):\n"
        "    if not clinic_kit.host.has_plugin('kowhai_policy'):\n"
        "        clinic_kit.use(kowhai_policy, 'kowhai_policy')\n"
    )
    tests = tmp_path / "test_kowhai_policy.py"
    tests.write_text((EXAMPLE / "tests" / "test_kowhai_policy.py").read_text(encoding="utf-8"))
    tenants = tmp_path.parent / "tenants"
    tenants.mkdir(exist_ok=True)
    (tenants / "kowhai-skin.toml").write_text(
        (EXAMPLE / "tenants" / "kowhai-skin.toml").read_text(encoding="utf-8")
    )
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "7 passed" in ran.stdout
