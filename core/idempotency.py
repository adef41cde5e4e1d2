"""Idempotency-Key handling: the first answer to a POST is stored and replayed for retries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, request
from flask import json as flask_json
from sqlalchemy import JSON, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core import clock
from core.errors import Problem, field_error
from core.extensions import Model, UtcTimestamp, db
from core.tenancy.scope import ClinicScoped
from core.unit_of_work import transaction

MAX_KEY_LENGTH = 200
#: How long a key's answer is kept for retries (Stripe keeps its own keys as long).
KEPT_FOR = timedelta(hours=24)


class IdempotencyRecord(ClinicScoped, Model):
    """The first answer to a request carrying an Idempotency-Key, replayed for retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("clinic_id", "scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    request_digest: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)


@dataclass(frozen=True)
class StoredAnswer:
    """The answer stored under an Idempotency-Key: its status and body."""

    status: int
    body: Any


def _digest(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Idempotent:
    """One request's claim on its Idempotency-Key.

    ``claim()`` returns a stored response to replay, or None after inserting
    the key in the current transaction; ``finish()`` stores the response in
    that same transaction, so the key and the work it guards commit (or roll
    back) together. Without the header it does nothing.
    """

    def __init__(self, scope: str, body: Any) -> None:
        self.scope = scope
        self.key = request.headers.get("Idempotency-Key")
        self.digest = _digest(body)
        self.record: IdempotencyRecord | None = None
        if self.key is not None and not (0 < len(self.key) <= MAX_KEY_LENGTH):
            raise Problem(
                422,
                "The Idempotency-Key header must be 1 to 200 characters.",
                errors=[field_error("Idempotency-Key", "1 to 200 characters", "headers")],
            )

    def _stored(self) -> IdempotencyRecord | None:
        return db.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == self.scope, IdempotencyRecord.key == self.key
            )
        )

    def _answer(self, record: IdempotencyRecord) -> StoredAnswer:
        if record.request_digest != self.digest:
            raise Problem(
                422,
                "This Idempotency-Key was used for a different request.",
                kind="idempotency-key-reused",
            )
        if record.status_code is None:
            raise Problem(
                409,
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                kind="idempotency-in-progress",
                headers={"Retry-After": "1"},
            )
        self.record = record
        return StoredAnswer(record.status_code, record.response)

    @staticmethod
    def replayed(status_code: int, body: Any) -> Response:
        """Return a stored answer as the response to a repeated request."""
        response = Response(flask_json.dumps(body), status=status_code, mimetype="application/json")
        response.headers["Idempotent-Replayed"] = "true"
        return response

    def claim_answer(self) -> StoredAnswer | None:
        """Return the stored answer to complete and replay, or None once the key is ours.

        The key is inserted in the current transaction, so it commits (or rolls back) with
        the work it guards.
        """
        if self.key is None:
            return None
        stored = self._stored()
        if stored is not None and clock.as_utc(stored.created_at) <= clock.now() - KEPT_FOR:
            # Past its day the key is forgotten, as Stripe forgets its own: a new request.
            db.session.delete(stored)
            db.session.flush()
            stored = None
        if stored is not None:
            return self._answer(stored)
        record = IdempotencyRecord(scope=self.scope, key=self.key, request_digest=self.digest)
        try:
            with db.session.begin_nested():
                db.session.add(record)
        except IntegrityError:
            # Another request took the key between our look and our insert;
            # on PostgreSQL we waited for it to finish, so its answer is there.
            stored = self._stored()
            if stored is None:
                raise Problem(409, "Retry the request.", kind="idempotency-in-progress") from None
            return self._answer(stored)
        self.record = record
        return None

    def claim(self) -> Response | None:
        """Return the response to replay, or None once the key is ours for this transaction."""
        answer = self.claim_answer()
        return None if answer is None else self.replayed(answer.status, answer.body)

    @transaction
    def refresh(self, body: Any) -> None:
        """Replace the stored answer of a finished request (a step completed on a retry)."""
        if self.record is not None:
            self.record.response = body
            db.session.flush()

    @transaction
    def finish(self, status_code: int, body: Any) -> None:
        """Store the response for replay, in the transaction that did the work."""
        if self.record is not None:
            self.record.status_code = status_code
            self.record.response = body
            db.session.flush()


@transaction
def forget_old_keys(now: datetime | None = None) -> int:
    """Delete the current clinic's keys past their day; return how many."""
    cutoff = (now or clock.now()) - KEPT_FOR
    found = db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at <= cutoff)
    )
    return int(getattr(found, "rowcount", 0) or 0)
