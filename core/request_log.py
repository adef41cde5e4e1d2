"""One structured log event per request: what was asked of which clinic, how it ended, how long.

The event names the route by its rule (``/api/v1/clinics/<clinic_slug>/self-service/<token>``),
never the path as sent, so a client's link, an API token or anything a client typed
never reaches a log; no body, header or query string is logged either.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, Response, g, request

from core import request_ids

log = logging.getLogger("clinic_saas.requests")


def _start() -> None:
    g.request_started = time.perf_counter()


def _event(response: Response) -> Response:
    started = g.get("request_started")
    clinic = g.get("clinic")
    event = {
        "event": "request",
        "request_id": request_ids.current(),
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule is not None else None,
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
        "clinic": getattr(clinic, "slug", None),
    }
    log.info(json.dumps(event, separators=(",", ":")))
    return response


def init_app(app: Flask) -> None:
    """Time every request from its start and log it as it is answered.

    With LOG_REQUESTS on (the default) and nothing else configured for it, the events
    go to standard error one JSON object a line, for the platform's log collector.
    """
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request(_event)
    if app.config.get("LOG_REQUESTS", True) and not app.testing and not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # once, as JSON: not again through the root's format
