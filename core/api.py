"""The REST API's shell: flask-smorest with problem documents as its error format."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import orjson
from flask import Response, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import Schema, fields, validate
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from core.clock import as_utc
from core.errors import Problem, field_error, problem_from_http_exception, problem_response

T = TypeVar("T")


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


class IdConverter(IntegerConverter):
    """A row id in a URL: a positive integer that fits the database's integer column.

    A larger number is simply not found (404) rather than overflowing the
    database driver (500).
    """

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


MAX_ID = 2**31 - 1


class ClinicApi(Api):
    """flask-smorest's Api, answering every HTTP error with a problem document."""

    ERROR_SCHEMA = ProblemSchema

    def init_app(self, app: Any, *, spec_kwargs: Any = None) -> None:
        app.url_map.converters["id"] = IdConverter
        super().init_app(app, spec_kwargs=spec_kwargs)
        self.register_converter(
            IdConverter, lambda _: {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        )

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return problem_response(problem_from_http_exception(error))


class _Parser(FlaskParser):
    """webargs' Flask parser, plus ``form_and_files`` for multipart uploads with fields."""

    __location_map__ = dict(
        form_and_files="load_form_and_files",
        **FlaskParser.__location_map__,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[Schema], Schema] = {}

    def _get_schema(self, argmap: Any, req: Any) -> Schema:
        # One instance per schema class, made on first use and shared by every request:
        # webargs would make one for each, and making one copies each of its fields. So a
        # schema must not keep anything of one load on itself (core/schemas.py says so too).
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            schema = self._schemas.get(argmap)
            if schema is None:
                schema = self._schemas[argmap] = argmap()
            return schema
        return super()._get_schema(argmap, req)

    def load_form_and_files(self, req: Any, schema: Any) -> Any:
        return MultiDictProxy(CombinedMultiDict([req.form, req.files]), schema)

    def _raw_load_json(self, req: Any) -> Any:
        # webargs catches only JSONDecodeError; a 5,000-digit number or
        # 100,000 nested brackets raise other errors and must be a 400 too.
        try:
            return super()._raw_load_json(req)
        except (ValueError, RecursionError):
            raise Problem(400, "The request body is not valid JSON.") from None


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint, able to take a multipart form with a file and fields."""

    ARGUMENTS_PARSER = _Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **SmorestBlueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "form_and_files": "multipart/form-data",
    }


def refuse_unstorable_text() -> None:
    """Refuse text no database can store: NUL characters, and lone UTF-16 surrogates.

    JSON may spell a lone surrogate (``"\\ud800"``) that decodes to a Python string no
    encoder accepts. Runs before every request, so no handler (and no 500) ever sees one.
    """
    if "\x00" in request.path or b"%00" in request.query_string.lower():
        raise Problem(400, "NUL characters are not allowed in URLs.")
    if request.is_json:
        body = request.get_data(cache=True)
        if b"\x00" in body or b"\\u0000" in body:
            raise Problem(400, "NUL characters are not allowed in the request body.")
        if b"\\ud" in body.lower():
            _refuse_lone_surrogates(body)
    elif request.mimetype in ("multipart/form-data", "application/x-www-form-urlencoded") and any(
        "\x00" in value for value in request.form.values()
    ):
        raise Problem(400, "NUL characters are not allowed in form fields.")


def _refuse_lone_surrogates(body: bytes) -> None:
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON at all: the parser answers that with its own 400

    def walk(value: Any, pointer: str) -> str | None:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return pointer
            return None
        if isinstance(value, dict):
            for key, item in value.items():
                found = walk(key, f"{pointer}/{key!s}") or walk(item, f"{pointer}/{key!s}")
                if found is not None:
                    return found
        elif isinstance(value, list):
            for index, item in enumerate(value):
                found = walk(item, f"{pointer}/{index}")
                if found is not None:
                    return found
        return None

    pointer = walk(document, "#")
    if pointer is not None:
        field = pointer.removeprefix("#/").replace("/", ".")
        raise Problem(
            400,
            "The request body holds text that is not valid Unicode (a lone surrogate).",
            errors=[field_error(field, "Not valid Unicode text (a lone surrogate).")],
        )


def json_response(body: Any, status: int) -> Response:
    """Return ``body`` as JSON built here, bypassing the response schema.

    For large, hot responses (a fortnight of availability): orjson encodes
    several times faster than the standard library. flask-smorest passes a
    Response through untouched.
    """
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


class CursorArgs(Schema):
    """The query of a list paged by cursor; each list adds its own ``limit`` and filters."""

    after = fields.String(
        validate=validate.Length(min=1, max=400),
        metadata={"description": "The `next_after` of the page before."},
    )


class CursorPage(Schema):
    """The answer of a list paged by cursor; each list adds its ``items``."""

    count = fields.Integer(metadata={"description": "How many items are on this page."})
    has_more = fields.Boolean(metadata={"description": "Whether another page follows."})
    next_after = fields.String(
        allow_none=True, metadata={"description": "Pass as `after` for the next page."}
    )


def cursor(*position: str | int | datetime) -> str:
    """Return the opaque cursor of a list's position: the sort values of the last item shown."""
    values = [v.isoformat() if isinstance(v, datetime) else v for v in position]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def position(text: str, kinds: tuple[type, ...], field: str = "after") -> tuple[Any, ...]:
    """Read a cursor from :func:`cursor`, of values of ``kinds``; else a problem naming ``field``.

    A ``datetime`` travels as ISO 8601 text and is read back aware.
    """
    try:
        found = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(found, list) or len(found) != len(kinds):
            raise ValueError(text)
        for index, (value, kind) in enumerate(zip(found, kinds, strict=True)):
            if kind is datetime and isinstance(value, str):
                found[index] = datetime.fromisoformat(value)
                if found[index].tzinfo is None:
                    raise ValueError(text)
            elif type(value) is not kind:
                raise ValueError(text)
    except (ValueError, TypeError, binascii.Error):
        raise _not_a_cursor(field) from None
    return tuple(found)


def keyset_page(found: list[Any], limit: int, position_of: Any) -> dict[str, Any]:
    """The list envelope for ``found``, read with one row more than ``limit``.

    ``has_more`` says whether another page follows and ``next_after`` is the cursor
    to ask for it with (None on the last page), as Stripe's lists do.
    """
    shown, has_more = found[:limit], len(found) > limit
    return {
        "items": shown,
        "count": len(shown),
        "has_more": has_more,
        "next_after": cursor(*position_of(shown[-1])) if has_more else None,
    }


#: Items on a page of a list that does not say otherwise, and the most any page holds.
PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

#: A list's sort key: JSON-safe values (text, whole numbers), the last one unique.
SortKey = tuple[str | int | float, ...]


class PageArgs(CursorArgs):
    """The query of a list paged by cursor in a fixed order, ``PAGE_SIZE`` items at a time."""

    limit = fields.Integer(
        load_default=PAGE_SIZE,
        validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"Items per page, at most {MAX_PAGE_SIZE}."},
    )


def _value(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, Mapping) else getattr(item, name)


def newest_first(item: Any) -> SortKey:
    """Newest first: the order of ids, reversed."""
    return (-int(_value(item, "id")),)


def _sortable(value: Any) -> str | int | float:
    if value is None:
        return "\uffff"  # after any text, as a database sorts NULL last
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return as_utc(value).isoformat()  # one zone and format: text sorts as time does
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return value
    return str(value)


def by(*names: str) -> Callable[[Any], SortKey]:
    """The sort key of items (objects or dicts) by the values of ``names``, the last unique."""

    def key(item: Any) -> SortKey:
        return tuple(_sortable(_value(item, name)) for name in names)

    return key


#: Oldest first: the order of ids.
by_id = by("id")


def _sort_position(text: str) -> SortKey:
    try:
        found = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(found, list) or not found:
            raise ValueError(text)
        if not all(type(value) in (str, int, float) for value in found):
            raise ValueError(text)
    except (ValueError, TypeError, binascii.Error):
        raise _not_a_cursor() from None
    return tuple(found)


def _not_a_cursor(field: str = "after") -> Problem:
    return Problem(
        422,
        "The cursor is not one this list gave.",
        errors=[field_error(field, "not a cursor from next_after", "query")],
    )


def page(
    items: Iterable[T], args: Mapping[str, Any], key: Callable[[T], SortKey]
) -> dict[str, Any]:
    """Page a list held whole (a clinic's staff, a client's consents) by cursor.

    Items are put in ``key`` order (whose last value is unique, so no two tie); a page
    starts after the ``after`` cursor's position, so an item added or removed between
    pages moves nothing else, and ``has_more`` says when a page follows: nothing is ever
    cut off without saying so.
    """
    ordered = sorted(items, key=key)
    after = args.get("after")
    if after:
        mark = _sort_position(after)
        try:
            ordered = [item for item in ordered if key(item) > mark]
        except TypeError:  # a cursor of another list, whose values do not compare
            raise _not_a_cursor() from None
    limit = int(args.get("limit") or PAGE_SIZE)
    return keyset_page(ordered[: limit + 1], limit, key)
