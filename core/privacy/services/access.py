"""Access requests: the export of what is held about a client, as data and as a page."""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from core import clock
from core.accounts.access import Principal
from core.audit import services as audit
from core.audit.models import AuditAction
from core.bookings.models import Booking
from core.clients import services as clients
from core.errors import Refused
from core.extensions import db
from core.hooks.decisions import PrivacyRight
from core.privacy.models import PrivacyRequest, RequestStatus
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


@transaction
def access_export(clinic: Clinic, request: PrivacyRequest, actor: Principal) -> dict[str, Any]:
    """Return everything held about the request's client within its lookback, as data.

    The export is logged as a disclosure to the client, and includes the
    accounting of disclosures and the client's privacy requests.
    """
    if PrivacyRight(request.kind) not in (
        PrivacyRight.access,
        PrivacyRight.portability,
        PrivacyRight.accounting_of_disclosures,
    ):
        raise Refused("Only access requests have an export.", kind="not-an-access-request")
    if request.status not in (RequestStatus.verified, RequestStatus.completed):
        raise Refused(
            "The requester's identity is not verified: nothing is released before it is.",
            kind="identity-not-verified",
        )
    record = clients.client(request.client_id)
    since = (
        clock.as_utc(request.received_at) - timedelta(days=request.lookback_days)
        if request.lookback_days
        else None
    )
    document = clients.export_document(record)
    if since is not None:
        document = _within(document, since)
    document["bookings"] = [
        {
            "id": b.id,
            "service_id": b.service_id,
            "starts_at": clock.as_utc(b.starts_at).isoformat(),
            "status": b.status.value,
        }
        for b in db.session.scalars(
            select(Booking).where(Booking.client_id == record.id).order_by(Booking.starts_at)
        )
        if since is None or clock.as_utc(b.created_at) >= since
    ]
    document["disclosures"] = [
        {
            "at": clock.as_utc(event.at).isoformat(),
            "action": event.action.value,
            "recipient": event.recipient,
            "purpose": event.reason,
        }
        for event in audit.disclosures(record.id, since)
    ]
    document["privacy_requests"] = [
        {
            "id": r.id,
            "kind": r.kind,
            "status": r.status.value,
            "received_at": clock.as_utc(r.received_at).isoformat(),
            "due_at": clock.as_utc(r.due_at).isoformat(),
        }
        for r in db.session.scalars(
            select(PrivacyRequest).where(PrivacyRequest.client_id == record.id)
        )
    ]
    document["period"] = {
        "from": since.isoformat() if since else None,
        "to": clock.now().isoformat(),
        "rule": request.deadline_clause_text,
    }
    audit.record(
        AuditAction.disclose,
        "privacy_request",
        client_id=record.id,
        resource_id=request.id,
        fields=sorted(document),
        recipient=request.representative_name or request.requester_name,
        reason=f"privacy request {request.id} ({request.kind})",
    )
    return document


def _within(document: dict[str, Any], since: datetime) -> dict[str, Any]:
    """Drop dated entries older than ``since`` from the lists of an export."""
    trimmed = {}
    for key, value in document.items():
        if isinstance(value, list):
            value = [item for item in value if not _older(item, since)]
        trimmed[key] = value
    return trimmed


def _older(item: Any, since: datetime) -> bool:
    if not isinstance(item, dict):
        return False
    for key in ("created_at", "recorded_at", "given_at", "at"):
        stamp = item.get(key)
        if isinstance(stamp, str):
            try:
                return clock.as_utc(datetime.fromisoformat(stamp)) < since
            except ValueError:
                return False
    return False


def readable(document: dict[str, Any], clinic: Clinic) -> str:
    """Return the export as a plain HTML document a person can read and print."""
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>Your information held by {html.escape(clinic.name)}</title>",
        f"<h1>Your information held by {html.escape(clinic.name)}</h1>",
    ]
    for section, value in document.items():
        parts.append(f"<h2>{html.escape(section.replace('_', ' ').capitalize())}</h2>")
        parts.append(_html_value(value))
    parts.append("</html>")
    return "\n".join(parts)


def _html_value(value: Any) -> str:
    if isinstance(value, dict):
        rows = "".join(
            f"<tr><th>{html.escape(str(k).replace('_', ' '))}</th><td>{_html_value(v)}</td></tr>"
            for k, v in value.items()
        )
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if not value:
            return "<p>None.</p>"
        return "<ul>" + "".join(f"<li>{_html_value(v)}</li>" for v in value) + "</ul>"
    if value is None:
        return "-"
    return html.escape(value if isinstance(value, str) else json.dumps(value))
