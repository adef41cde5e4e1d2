"""The test kit for clinic plugins: build what hooks are shown, call them, check the answers.

Install with the ``testing`` extra (``pip install 'clinic-saas[testing]'``);
pytest then offers the ``clinic_kit`` fixture in every test. See
``docs/plugin_tutorial.md``.
"""

from core.testing.checks import assert_clause, assert_decision, assert_keeps_contract
from core.testing.kit import ClinicKit, KitError, local_time

__all__ = [
    "ClinicKit",
    "KitError",
    "assert_clause",
    "assert_decision",
    "assert_keeps_contract",
    "local_time",
]
