"""Minimum necessary: who may touch a client's health data, and the audit every access leaves."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from core import clock
from core.accounts.access import Permission, Principal, role_may
from core.audit import services as audit
from core.audit.models import AuditAction
from core.clients.models import Client, EmergencyAccess
from core.errors import NotAllowed
from core.extensions import db


def emergency_grant(actor: Principal, client_id: int) -> EmergencyAccess | None:
    """Return the actor's live break-glass grant for ``client_id``, if any."""
    now = clock.now()
    grants = db.session.scalars(
        select(EmergencyAccess).where(
            EmergencyAccess.user_id == actor.user.id, EmergencyAccess.client_id == client_id
        )
    )
    return next((g for g in grants if clock.as_utc(g.expires_at) > now), None)


def require_health_access(actor: Principal, client_id: int, *, write: bool = False) -> bool:
    """Allow ``actor`` to touch ``client_id``'s health data, or raise 403.

    Providers, managers and owners may; front desk may not (minimum
    necessary) unless they hold a live break-glass grant for this client, in
    which case every access is flagged for review. Returns whether the access
    is an emergency one.
    """
    role = actor.membership.role if actor.membership else None
    permission = Permission.edit_health if write else Permission.view_health
    if role is not None and role_may(role, permission):
        return False
    if emergency_grant(actor, client_id) is not None:
        from flask import g, has_request_context

        if has_request_context():
            g.emergency_access = True
        return True
    raise NotAllowed(
        "Your role does not include clients' health data. In an emergency, request break-glass access with a reason.",
        kind="health-data-restricted",
    )


def _audit(
    action: AuditAction,
    resource: str,
    client_id: int,
    resource_id: int | None = None,
    fields: Iterable[str] = (),
    **extra: Any,
) -> None:
    audit.record(
        action, resource, client_id=client_id, resource_id=resource_id, fields=fields, **extra
    )


def _read_records(
    actor: Principal, record: Client, model: Any, resource: str, fields: list[str]
) -> list[Any]:
    """Return the client's rows of a health record, oldest first, after checking and auditing the read."""
    require_health_access(actor, record.id)
    found = list(
        db.session.scalars(select(model).where(model.client_id == record.id).order_by(model.id))
    )
    _audit(AuditAction.read, resource, record.id, fields=fields, reason=f"{len(found)} records")
    return found
