"""One webhook request over the network: to the address checked, with timeouts, never redirected."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from core.integrations.destinations import Destination

USER_AGENT = "ClinicSaas-Webhooks/1"
#: The most of an answer read: only its status counts, the body is not kept.
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Outcome:
    """What an endpoint answered: a status code, or why there was none."""

    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _connection(destination: Destination, connect_timeout: float) -> http.client.HTTPConnection:
    """A connection to the checked address, named by its host (TLS certificate and ``Host``)."""
    connection: http.client.HTTPConnection
    if destination.scheme == "https":
        connection = http.client.HTTPSConnection(
            destination.host,
            destination.port,
            timeout=connect_timeout,
            context=ssl.create_default_context(),
        )
    else:
        connection = http.client.HTTPConnection(
            destination.host, destination.port, timeout=connect_timeout
        )

    def pinned(address: Any, timeout: Any, source_address: Any = None) -> socket.socket:
        # The host name was resolved and checked once; resolving it again here
        # could answer a private address (DNS rebinding).
        return socket.create_connection(
            (destination.address, destination.port), timeout, source_address
        )

    connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection


def post(
    destination: Destination,
    body: bytes,
    headers: dict[str, str],
    *,
    connect_timeout: float,
    read_timeout: float,
) -> Outcome:
    """POST ``body`` to ``destination`` and return what came back; never raises for the network.

    A redirect is a failure like any other non-2xx answer: following it would
    call an address nobody checked.
    """
    connection = _connection(destination, connect_timeout)
    # The read timeout bounds each read, not the answer: an endpoint dripping a byte at a
    # time could hold the worker past its lease. The whole call gets a budget too.
    seconds = connect_timeout + 2 * read_timeout
    overran = threading.Event()
    budget = threading.Timer(seconds, _cut, (connection, overran))
    budget.daemon = True
    budget.start()
    try:
        connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(read_timeout)
        connection.request(
            "POST",
            destination.target,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                **headers,
            },
        )
        answer = connection.getresponse()
        answer.read(MAX_ANSWER_BYTES)
        if overran.is_set():
            # A cut connection can read as an answer that simply ended: it is not one.
            return Outcome(error=f"the endpoint took longer than {seconds:g} s to answer")
        return Outcome(status_code=answer.status)
    except TimeoutError:
        return Outcome(error="timed out waiting for the endpoint")
    except ssl.SSLError as error:
        return Outcome(error=f"TLS failed: {error.reason or error}")
    except (OSError, http.client.HTTPException) as error:
        if overran.is_set():
            return Outcome(error=f"the endpoint took longer than {seconds:g} s to answer")
        return Outcome(error=f"{type(error).__name__}: {error}"[:500])
    finally:
        budget.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection, overran: threading.Event) -> None:
    """End a call that overran its budget: a blocked read wakes with an error or an end."""
    overran.set()
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
