"""Recording, verifying and querying the audit trail."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import clock
from core.audit.models import AuditAction, AuditChain, AuditEvent
from core.encryption.keys import derived_key
from core.extensions import db

GENESIS = "0" * 64


def _digest(event: AuditEvent, key: bytes) -> str:
    """Return the event's keyed hash, chained to the one before through ``prev_hash``.

    HMAC with a key derived from the clinic's data key: someone with the
    database but not the master keys cannot recompute a rewritten chain.
    """
    body = {
        "seq": event.seq,
        "at": clock.as_utc(event.at).isoformat(),
        "actor_user_id": event.actor_user_id,
        "actor_role": event.actor_role,
        "action": str(event.action),
        "resource": event.resource,
        "resource_id": event.resource_id,
        "client_id": event.client_id,
        "fields": list(event.fields or []),
        "reason": event.reason,
        "recipient": event.recipient,
        "emergency": bool(event.emergency),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def _advance_chain() -> AuditChain:
    """Take the clinic's next sequence number, holding the chain's lock until commit.

    The UPDATE comes first: it takes the row lock on PostgreSQL and the
    write lock on SQLite, so concurrent appends queue instead of reading the
    same head. A clinic's first event creates the head, racing safely.
    """
    bump = update(AuditChain).values(seq=AuditChain.seq + 1)
    if db.session.execute(bump).rowcount == 0:
        try:
            with db.session.begin_nested():
                db.session.add(AuditChain(seq=0, head=GENESIS))
        except IntegrityError:
            pass  # another request created it first
        db.session.execute(bump)
    return db.session.scalar(select(AuditChain).execution_options(populate_existing=True))


def _who(unsigned: str) -> tuple[int | None, str | None, bool]:
    principal = g.get("principal") if has_request_context() else None
    if principal is None:
        return None, unsigned, False
    membership = principal.membership
    role = membership.role.value if membership is not None else None
    return principal.user.id, role, bool(g.get("emergency_access"))


def record(
    action: AuditAction,
    resource: str,
    *,
    client_id: int | None = None,
    resource_id: int | None = None,
    fields: Iterable[str] = (),
    reason: str | None = None,
    recipient: str | None = None,
    unsigned_actor: str = "system",
) -> AuditEvent:
    """Append one event for the current clinic, in the caller's transaction.

    The actor, their role, whether they act under emergency access, and the
    address and browser come from the request, so services only say what
    happened. ``unsigned_actor`` names who acts when no one is signed in:
    ``system`` (a job), or ``client`` (a client through their own booking link). Commit with the change it records, so neither exists alone.
    """
    actor, role, emergency = _who(unsigned_actor)
    key = derived_key("audit-chain")  # before the chain lock: it may read keys on the side
    head = _advance_chain()
    event = AuditEvent(
        seq=head.seq,
        at=clock.now(),
        actor_user_id=actor,
        actor_role=role,
        action=action,
        resource=resource,
        resource_id=resource_id,
        client_id=client_id,
        fields=sorted(set(fields)),
        reason=reason,
        recipient=recipient,
        emergency=emergency,
        ip=request.remote_addr if has_request_context() else None,
        user_agent=(request.user_agent.string or None)[:300]
        if has_request_context() and request.user_agent.string
        else None,
        prev_hash=head.head,
    )
    event.hash = _digest(event, key)
    head.head = event.hash
    db.session.add(event)
    db.session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    """The result of checking a clinic's audit chain."""

    intact: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


def verify_chain() -> ChainReport:
    """Recompute the current clinic's chain; report the first event that does not fit."""
    key = derived_key("audit-chain")
    prev = GENESIS
    expected_seq = 1
    checked = 0
    for event in db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
        if event.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, "an event is missing")
        if event.prev_hash != prev:
            return ChainReport(
                False, checked, event.seq, "the link to the previous event is broken"
            )
        if _digest(event, key) != event.hash:
            return ChainReport(False, checked, event.seq, "the event was altered")
        prev = event.hash
        expected_seq += 1
        checked += 1
    head = db.session.scalar(select(AuditChain))
    if head is not None and (head.seq != checked or head.head != prev):
        return ChainReport(False, checked, checked + 1, "events after the last one were removed")
    return ChainReport(True, checked)


def events(
    *,
    client_id: int | None = None,
    actor_user_id: int | None = None,
    action: AuditAction | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    emergency: bool | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditEvent]:
    """Return the current clinic's events matching the filters, newest first."""
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    filters: dict[str, Any] = {
        "client_id": client_id,
        "actor_user_id": actor_user_id,
        "action": action,
        "emergency": emergency,
    }
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(AuditEvent, name) == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    if before_seq is not None:
        query = query.where(AuditEvent.seq < before_seq)
    return list(db.session.scalars(query))


DISCLOSURE_ACTIONS = (AuditAction.export, AuditAction.disclose)


def disclosures(client_id: int, since: datetime | None = None) -> list[AuditEvent]:
    """Return the disclosures of one client's data, oldest first (accounting of disclosures)."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.client_id == client_id, AuditEvent.action.in_(DISCLOSURE_ACTIONS))
        .order_by(AuditEvent.seq)
    )
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(db.session.scalars(query))
