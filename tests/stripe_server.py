"""The local Stripe for tests: the ``local_stripe`` fixture, one server for the whole run.

localstripe and the recording proxy in front of it live in ``core/demo/local_stripe.py``,
which the demo command uses too; this module starts them for pytest and hands on the
names the tests use (``sign``, ``free_port``, ``WEBHOOK_SECRET`` ...).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from core.demo.local_stripe import (
    DROPPED,
    WEBHOOK_SECRET,
    Call,
    LocalStripe,
    LocalStripeError,
    free_port,
    localstripe_python,
    running,
    sign,
)

__all__ = [
    "DROPPED",
    "WEBHOOK_SECRET",
    "Call",
    "LocalStripe",
    "free_port",
    "local_stripe",
    "localstripe_python",
    "sign",
]


@pytest.fixture(scope="session")
def local_stripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripe]:
    python = localstripe_python()
    if python is None:
        pytest.fail(
            "localstripe is needed for the payment tests: run .ci/run, or make "
            ".venv-localstripe (python -m venv .venv-localstripe && "
            ".venv-localstripe/bin/pip install localstripe), or set LOCALSTRIPE_PYTHON"
        )
    with ExitStack() as stack:
        try:
            state = stack.enter_context(running(python, tmp_path_factory.mktemp("localstripe")))
        except LocalStripeError as error:
            pytest.fail(str(error))
        yield state
    print(f"localstripe stopped ({sys.executable})", file=sys.stderr)
