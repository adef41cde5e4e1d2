"""Each request's id: the caller's Request-Id when it is a sane one, else a new one, echoed back.

The id is on every response (the ``Request-Id`` header) and in every problem
document (``request_id``), so a clinic reporting a failure can quote what the
operator searches the logs for.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_request_context, request

HEADER = "Request-Id"
#: What a caller's id may be: short, and nothing a log line or header could be split by.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def current() -> str | None:
    """Return the current request's id, or None outside a request."""
    return g.get("request_id") if has_request_context() else None


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
