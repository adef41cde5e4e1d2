"""Marketing messages: queued only to clients who consented on that channel, and never twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import clock
from core.clients.models import Client
from core.extensions import db
from core.messaging import outbox
from core.messaging.delivery import CONSENT_NEEDED, consenting
from core.messaging.models import OutboxMessage
from core.tenancy.models import Clinic
from core.unit_of_work import transaction


@transaction
def queue_marketing(clinic: Clinic, data: dict[str, Any]) -> dict[str, list[int]]:
    """Queue a campaign's message to each consenting client; say who got it, had it, or did not consent.

    Each is held back while it is night where the client is; consent is
    checked again when it goes.
    """
    needed = CONSENT_NEEDED[("marketing", data["channel"])]
    wanted = set(data["client_ids"])
    known = set(db.session.scalars(select(Client.id).where(Client.id.in_(wanted))))
    allowed = consenting(clinic, known, needed)
    keys = {
        client_id: f"marketing:{data['campaign']}:{data['channel']}:{client_id}"
        for client_id in allowed
    }
    # A campaign sent twice reaches nobody twice.
    queued_before: set[int] = set(
        db.session.scalars(
            select(OutboxMessage.client_id).where(OutboxMessage.dedupe_key.in_(list(keys.values())))
        )
    )
    due = clock.as_utc(data.get("send_at") or clock.now())
    queued = sorted(allowed - queued_before)
    for client_id in queued:
        outbox.queue(
            "marketing",
            channel=data["channel"],
            client_id=client_id,
            dedupe_key=keys[client_id],
            due_at=due,
            subject=data["subject"],
            body=data["body"],
        )
    refused = (wanted - known) | (known - allowed)
    return {
        "queued": queued,
        "already_queued": sorted(queued_before),
        "not_consented": sorted(refused),
    }
