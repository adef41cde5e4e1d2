"""The REST API's shell: flask-smorest with problem documents as its error format."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Api
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from core.errors import problem_from_http_exception, problem_response


class FieldErrorSchema(Schema):
    """One invalid field of a request."""

    field = fields.String(metadata={"description": "Dotted name of the field."})
    pointer = fields.String(metadata={"description": "JSON pointer to the field (RFC 6901)."})
    detail = fields.String(metadata={"description": "Why the value was refused."})
    location = fields.String(metadata={"description": "json, query, path or headers."})


class ProblemSchema(Schema):
    """An RFC 9457 problem document."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))


class ClinicApi(Api):
    """flask-smorest's Api, answering every HTTP error with a problem document."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return problem_response(problem_from_http_exception(error))


def paginated(items: list[Any]) -> dict[str, Any]:
    """Wrap a list as the API's list envelope."""
    return {"items": items, "count": len(items)}
