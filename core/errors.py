"""The platform's one error format: RFC 9457 problem documents for every failure."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy import MetaData
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from core import request_ids

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://clinic-saas.dev/problems/"

_DEFAULT_TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid request",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}

_DEFAULT_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    429: "rate-limited",
    500: "internal-error",
    503: "unavailable",
}


class Problem(Exception):
    """An error to return as a problem document.

    Raise it from services and views alike; the app turns it into an
    ``application/problem+json`` response. ``kind`` becomes the problem
    ``type`` URI, ``errors`` lists field errors as ``{"field", "pointer", "detail"}``.
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        errors: Iterable[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title or _DEFAULT_TITLES.get(status, "Error"))
        self.status = status
        self.detail = detail
        self.kind = kind or _DEFAULT_SLUGS.get(status, "error")
        self.title = title or _DEFAULT_TITLES.get(status, "Error")
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})
        self.extensions = extensions

    def to_dict(self) -> dict[str, Any]:
        """Return the problem document body."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.kind,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        with contextlib.suppress(RuntimeError):
            body["instance"] = request.path
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        request_id = request_ids.current()
        if request_id is not None:
            body["request_id"] = request_id  # what the operator finds the logs by
        return body


class DomainError(Exception):
    """A rule of the clinic's domain refused what was asked: raised by services, named for the refusal.

    Services speak the domain and know nothing of HTTP. Each family below says
    what kind of refusal it is; :func:`as_problem`, the one mapping, turns it into
    a problem document with its status. ``kind`` names the rule (the problem
    ``type``), ``errors`` the fields at fault (see :func:`field_error`), and any
    other keyword is extra detail for the client (a tender's id, a retry hint).
    """

    def __init__(
        self,
        detail: str,
        *,
        kind: str | None = None,
        errors: Iterable[Mapping[str, Any]] = (),
        title: str | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.kind = kind
        self.errors = [dict(e) for e in errors]
        self.title = title
        self.extensions = extensions


class NotFound(DomainError):
    """What was asked for does not exist in this clinic (or not for this caller)."""


class Invalid(DomainError):
    """The request breaks a rule of its own: a field out of range, a choice not offered."""


class Unreadable(DomainError):
    """What was sent cannot be read or trusted: a malformed or unsigned message (a webhook's)."""


class TooLarge(Invalid):
    """What was sent is larger than the clinic accepts (a photo, say)."""


class UnsupportedFile(Invalid):
    """What was sent is not a kind of file the clinic accepts."""


class Unauthenticated(DomainError):
    """Who is asking could not be established (wrong password, expired link to sign in)."""


class Refused(DomainError):
    """The request is well formed, but the state of things refuses it (already paid, slot taken)."""


class NotAllowed(DomainError):
    """The caller may not do this, whatever the request says."""


class PaymentFailed(DomainError):
    """The card was declined, or its bank wants the client to approve the payment."""


class UpstreamFailed(DomainError):
    """A provider the platform relies on (Stripe, the mail server) refused or did not answer."""


class Unavailable(DomainError):
    """The platform cannot do this right now; trying again later may work."""


#: The one mapping from a domain refusal to an HTTP status.
STATUS_OF: dict[type[DomainError], int] = {
    TooLarge: 413,  # before Invalid, whose kinds they are
    UnsupportedFile: 415,
    Unauthenticated: 401,
    Unreadable: 400,
    NotFound: 404,
    Invalid: 422,
    Refused: 409,
    NotAllowed: 403,
    PaymentFailed: 402,
    UpstreamFailed: 502,
    Unavailable: 503,
}


def as_problem(error: DomainError) -> Problem:
    """Return the problem document that answers ``error``."""
    status = next((code for family, code in STATUS_OF.items() if isinstance(error, family)), 409)
    return Problem(
        status,
        error.detail,
        kind=error.kind,
        title=error.title,
        errors=error.errors,
        **error.extensions,
    )


def field_error(field: str, detail: str, location: str = "json") -> dict[str, str]:
    """Return one entry of a problem's ``errors`` list for ``field``."""
    pointer = "#/" + "/".join(
        part.replace("~", "~0").replace("/", "~1") for part in field.split(".")
    )
    return {"field": field, "pointer": pointer, "detail": detail, "location": location}


def flatten_messages(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten marshmallow's nested error messages into (dotted field, message) pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            out.extend(flatten_messages(value, name))
    elif isinstance(messages, list | tuple):
        for item in messages:
            if isinstance(item, Mapping | list | tuple):
                out.extend(flatten_messages(item, prefix))
            else:
                out.append((prefix, str(item)))
    else:
        out.append((prefix, str(messages)))
    return out


def field_errors_from_marshmallow(messages: Any) -> list[dict[str, str]]:
    """Turn webargs/marshmallow messages (keyed by location, then field) into field errors."""
    errors: list[dict[str, str]] = []
    if (
        isinstance(messages, Mapping)
        and messages
        and all(
            loc in {"json", "query", "form", "headers", "cookies", "files", "view_args", "path"}
            for loc in messages
        )
    ):
        for location, fields in messages.items():
            for name, detail in flatten_messages(fields):
                errors.append(field_error(name, detail, location))
    else:
        for name, detail in flatten_messages(messages):
            errors.append(field_error(name, detail))
    return errors


def problem_response(problem: Problem) -> Response:
    """Return ``problem`` as an ``application/problem+json`` response."""
    response = Response(
        json.dumps(problem.to_dict()), status=problem.status, mimetype=PROBLEM_MEDIA_TYPE
    )
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def problem_from_http_exception(error: HTTPException) -> Problem:
    """Build the problem document for a werkzeug ``HTTPException``.

    webargs (via flask-smorest) attaches parsing errors as ``error.data``;
    a JSON body that does not parse arrives here as a 400 with the reason.
    """
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors: list[dict[str, str]] = []
    messages = data.get("messages") if isinstance(data, Mapping) else None
    if messages:
        errors = field_errors_from_marshmallow(messages)
    detail = None
    if isinstance(data, Mapping) and data.get("message"):
        detail = str(data["message"])
    elif status == 422 and errors:
        detail = "The request has invalid fields; see errors."
    elif status == 400 and errors:
        detail = errors[0]["detail"]  # e.g. webargs' "Invalid JSON body."
    elif error.description and status not in (500,):
        detail = error.description
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if isinstance(data, Mapping) and isinstance(data.get("headers"), Mapping):
        headers.update(data["headers"])
    return Problem(status, detail, errors=errors, headers=headers)


_SQLITE_UNIQUE = "UNIQUE constraint failed: "


def _may_retry() -> bool:
    """Whether the failed request may run once more: not yet retried, nothing committed."""
    from flask import g

    return not g.get("retried_after_transient_failure") and not g.get("committed")


def unique_violation_fields(error: Exception, metadata: MetaData) -> list[str] | None:
    """Return the fields a unique constraint refused ``error`` on, or None if it is not one.

    PostgreSQL names the constraint (looked up in ``metadata``); SQLite names the columns.
    ``clinic_id``, part of every clinic's unique keys, is nobody's input and is left out.
    """
    if not isinstance(error, IntegrityError):
        return None
    original = error.orig
    columns: list[str] = []
    if getattr(original, "sqlstate", None) == "23505":
        diag = original.diag
        table = metadata.tables.get(diag.table_name or "")
        if table is not None:
            for candidate in [*table.constraints, *table.indexes]:
                if candidate.name == diag.constraint_name:
                    columns = [c.name for c in candidate.columns]
        columns = columns or ["id"]
    elif str(original).startswith(_SQLITE_UNIQUE):
        columns = [
            name.strip().rsplit(".", 1)[-1]
            for name in str(original)[len(_SQLITE_UNIQUE) :].split(",")
        ]
    else:
        return None
    return [c for c in columns if c != "clinic_id"] or columns


class TransientFailure(Exception):
    """A dependency failed in a way that may pass: the request can be tried again as it was."""


def transient_problem(error: BaseException) -> Problem | None:
    """Return the 503 problem for an infrastructure failure that may pass, or None.

    A dropped or refused database connection, Redis out of reach, Stripe not answering:
    nothing the caller sent was wrong, and the same request may succeed in a moment. The
    request's transaction was rolled back, so nothing was half-applied.
    """
    import stripe
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, OperationalError | PoolTimeout) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        return Problem(
            503,
            "The database did not answer; nothing was changed. Try again in a moment.",
            kind="database-unavailable",
            headers={"Retry-After": "2"},
        )
    if isinstance(error, RedisConnectionError | RedisTimeout):
        return Problem(
            503,
            "A platform service did not answer; nothing was changed. Try again in a moment.",
            kind="service-unavailable",
            headers={"Retry-After": "5"},
        )
    if isinstance(error, stripe.APIConnectionError):
        return Problem(
            503,
            "The payment provider did not answer; nothing was changed. Try again in a moment.",
            kind="payments-unavailable",
            headers={"Retry-After": "5"},
        )
    return None


def register_error_handlers(app: Flask, metadata: MetaData) -> None:
    """Make every error of ``app`` a problem document, with no stack trace leaking out.

    A unique constraint that refuses a write is the caller's conflict with what exists (409,
    naming the fields), whichever route wrote: services need not catch it one by one.
    """

    @app.errorhandler(Problem)
    def _problem(problem: Problem) -> Response:
        return problem_response(problem)

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        return problem_response(as_problem(error))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        return problem_response(problem_from_http_exception(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return _http(error)
        original = getattr(error, "orig", None)
        if isinstance(original, Problem):
            return problem_response(original)
        if isinstance(original, DomainError):
            return problem_response(as_problem(original))
        # Named, not imported (encryption sits above this layer); raised by a read itself,
        # or wrapped by SQLAlchemy when a write's value cannot be encrypted.
        keys_failed = next(
            (
                found
                for found in (error, original)
                if any(kind.__name__ == "KeyUnavailable" for kind in type(found).__mro__)
            ),
            None,
        )
        if keys_failed is not None:
            log.error(
                "encryption keys unavailable on %s %s: %s",
                request.method,
                request.path,
                keys_failed,
            )
            return problem_response(
                Problem(
                    503,
                    "Protected records cannot be opened right now; it has been logged.",
                    kind="keys-unavailable",
                )
            )
        transient = transient_problem(error)
        if transient is not None:
            if _may_retry():
                raise TransientFailure() from error  # dispatched once more: see ClinicFlask
            log.warning(
                "%s on %s %s: %s", transient.kind, request.method, request.path, error.__class__
            )
            return problem_response(transient)
        taken = unique_violation_fields(error, metadata)
        if taken is not None:
            log.info("unique constraint on %s refused %s %s", taken, request.method, request.path)
            names = " and ".join(taken)
            return problem_response(
                Problem(
                    409,
                    f"Another record already has this {names}.",
                    kind="already-exists",
                    errors=[field_error(name, "already taken") for name in taken],
                )
            )
        if type(error).__module__.startswith("stripe"):
            # Stripe refused or did not answer: the request's transaction is rolled back, and
            # every Stripe call carries a key from business ids, so retrying is safe.
            log.warning("Stripe error on %s %s: %s", request.method, request.path, error)
            return problem_response(
                Problem(
                    502,
                    "The payment provider refused or did not answer; nothing was changed. "
                    "Try again.",
                    kind="stripe-error",
                )
            )
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(
            Problem(500, "Something went wrong on our side; it has been logged.")
        )
