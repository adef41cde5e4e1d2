"""The kit as pytest fixtures: ``clinic_kit`` in any test once clinic-saas is installed.

Registered through the ``pytest11`` entry point, so a plugin's own test suite
needs no conftest to use it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.testing.kit import ClinicKit


@pytest.fixture
def clinic_kit() -> Iterator[ClinicKit]:
    """A :class:`ClinicKit` over every installed plugin; what a test puts in place is undone after."""
    kit = ClinicKit()
    try:
        yield kit
    finally:
        kit.close()
