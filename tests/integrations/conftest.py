"""Fixtures of the webhook tests: a clinic on a frozen clock and a real HTTP receiver on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from flask import Flask

from core.accounts.models import Role
from core.extensions import db
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff

# Monday 2 March 2026, 10:00 in Los Angeles (PST, UTC-8).
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
#: Tuesday 3 March, 10:00 in Los Angeles: a time the provider works.
TOMORROW_TEN = "2026-03-03T10:00:00-08:00"


@dataclass
class Received:
    """One request the receiver got, as it came: path, headers and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on loopback that records each request and answers as it is told.

    ``answer`` is the status to send (200 by default, 500 to fail); ``hang`` is how many
    seconds to wait before answering, to outlast the platform's read timeout.
    """

    server: ThreadingHTTPServer
    answer: int = 200
    hang: float = 0.0
    requests: list[Received] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def types(self) -> list[str]:
        """The event types received, in order (failed attempts included)."""
        return [r.headers["ClinicSaas-Event-Type"] for r in self.requests]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests.append(Received(self.path, dict(self.headers), body))
            if receiver.hang:
                time.sleep(receiver.hang)
            self.send_response(receiver.answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    found = Receiver(server)
    server.RequestHandlerClass = _handler(found)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def frozen() -> Iterator[Any]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _clinic_with_a_service(app: Flask, slug: str) -> dict[str, Any]:
    with app.app_context():
        make_clinic(slug)
        make_staff(slug, f"owner@{slug}.example.com", Role.owner)
        make_staff(slug, f"desk@{slug}.example.com", Role.front_desk)
        provider = make_provider(slug, f"kim@{slug}.example.com")
        service = make_service(slug, "facial", provider_ids=[provider])
        clinic = db.session.query(Clinic).filter_by(slug=slug).one()
        with clinic_scope(clinic):
            location = db.session.query(Location).one().id
    return {
        "slug": slug,
        "api": f"/api/v1/clinics/{slug}",
        "provider": provider,
        "service": service,
        "location": location,
        "auth": {"Authorization": f"Bearer {issue_token(app, slug, f'owner@{slug}.example.com')}"},
        "desk": {"Authorization": f"Bearer {issue_token(app, slug, f'desk@{slug}.example.com')}"},
    }


@pytest.fixture
def loopback_allowed(app: Flask) -> Flask:
    """The operator's settings for a private network: http:// and loopback addresses allowed."""
    app.config.update(
        WEBHOOKS_ALLOW_HTTP=True,
        WEBHOOKS_ALLOW_PRIVATE=True,
        WEBHOOKS_CONNECT_TIMEOUT=1.0,
        WEBHOOKS_READ_TIMEOUT=0.5,
    )
    return app


@pytest.fixture
def alpha(app: Flask, frozen: Any, loopback_allowed: Flask) -> dict[str, Any]:
    """A clinic in Los Angeles with one provider, a facial, its owner and its front desk."""
    return _clinic_with_a_service(app, "alpha")


@pytest.fixture
def beta(app: Flask, alpha: dict[str, Any]) -> dict[str, Any]:
    """A second clinic on the same instance, set up as alpha is."""
    return _clinic_with_a_service(app, "beta")
