"""Each request's id: the caller's Request-Id when it is a sane one, else a new one, echoed back.

The id is on every response (the ``Request-Id`` header) and in every problem
document (``request_id``), so a clinic reporting a failure can quote what the
operator searches the logs for. Work a request leaves for the jobs (a message, a
webhook) keeps the id and carries it again when it is done, and every call out
(Stripe, a clinic's webhook endpoint) sends it: one id finds a booking's whole story.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from flask import Flask, Response, g, has_request_context, request

HEADER = "Request-Id"
#: What a caller's id may be: short, and nothing a log line or header could be split by.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


#: The id a job carries while it works (outside any request).
_carried: ContextVar[str | None] = ContextVar("clinic_saas_request_id", default=None)


def new(prefix: str = "") -> str:
    """Return a new id; jobs prefix theirs (``tick-...``) so they read apart from requests'."""
    return prefix + uuid.uuid4().hex


def current() -> str | None:
    """Return the id of the request being answered, or the one a job carries, or None."""
    if has_request_context() and "request_id" in g:
        return str(g.request_id)
    return _carried.get()


@contextmanager
def carrying(request_id: str | None) -> Iterator[str]:
    """Make ``request_id`` (a new one if None) current for the block, outside a request."""
    carried = request_id or new()
    token = _carried.set(carried)
    try:
        yield carried
    finally:
        _carried.reset(token)


def outbound_headers() -> dict[str, str]:
    """The header that passes the current id on to a service this one calls, if there is one."""
    found = current()
    return {HEADER: found} if found else {}


def _assign() -> None:
    given = request.headers.get(HEADER, "")
    g.request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex


def _echo(response: Response) -> Response:
    if "request_id" in g:
        response.headers[HEADER] = g.request_id
    return response


def init_app(app: Flask) -> None:
    """Give every request an id before anything else runs, and every response its header."""
    app.before_request_funcs.setdefault(None, []).insert(0, _assign)
    app.after_request(_echo)
