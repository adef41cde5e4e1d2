"""Fixtures of the bookings tests: a clinic in Los Angeles on a frozen clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from core.accounts.models import Role
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff

# Monday 2 March 2026, 10:00 in Los Angeles (PST, UTC-8). DST starts Sunday 8 March.
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def alpha(app, frozen):
    """A clinic in Los Angeles with one provider (9 to 5 every day) and a 60-minute facial."""
    with app.app_context():
        make_clinic("alpha")
        make_staff("alpha", "owner@alpha.example.com", Role.owner)
        provider = make_provider("alpha", "kim@alpha.example.com")
        service = make_service("alpha", "facial", provider_ids=[provider], buffer=15)
    token = issue_token(app, "alpha", "owner@alpha.example.com")
    return {
        "app": app,
        "provider": provider,
        "service": service,
        "auth": {"Authorization": f"Bearer {token}"},
    }
