"""The marketing consents a privacy request or a deletion withdraws."""

from __future__ import annotations

from core.clients import services as clients
from core.clients.models import Client, ConsentKind

MARKETING_CONSENTS = (
    ConsentKind.marketing_email,
    ConsentKind.marketing_sms,
    ConsentKind.marketing_photos,
)


def _revoke(record: Client, kinds: tuple[ConsentKind, ...], method: str) -> list[str]:
    return sorted(c.kind.value for c in clients.withdraw_consents([record.id], kinds, method))
