"""Client records: who may see what (minimum necessary), and every health access audited."""

# Contact details are for all staff; health data (intake, notes, products,
# reactions, photos) only for the roles that need it, or under a break-glass
# grant, and every read or write of it leaves an audit event (``access``).

from core.clients.services.access import emergency_grant, require_health_access
from core.clients.services.age import (
    AgeGate,
    age_gates,
    age_on,
    age_rules_for,
    has_parental_consent,
    today_at,
)
from core.clients.services.break_glass import (
    MAX_EMERGENCY_MINUTES,
    emergency_grants,
    open_emergency_access,
    review_emergency_access,
)
from core.clients.services.clinical_photos import (
    add_photo,
    in_marketing_use,
    photo_image,
    photos,
    photos_in_marketing_use,
)
from core.clients.services.consent import (
    active_consent,
    consent_from_client,
    consents,
    give_consent,
    revoke_consent,
    withdraw_consents,
)
from core.clients.services.exports import export, export_document, record_disclosure, when
from core.clients.services.health import (
    add_note,
    add_product,
    add_reaction,
    intake,
    intake_from_client,
    intake_versions,
    notes,
    products,
    reactions,
    record_intake,
)
from core.clients.services.records import (
    add_guardian,
    client,
    create_client,
    fold,
    search,
    update_client,
)

__all__ = [
    "MAX_EMERGENCY_MINUTES",
    "AgeGate",
    "active_consent",
    "add_guardian",
    "add_note",
    "add_photo",
    "add_product",
    "add_reaction",
    "age_gates",
    "age_on",
    "age_rules_for",
    "client",
    "consent_from_client",
    "consents",
    "create_client",
    "cursor_of",
    "emergency_grant",
    "emergency_grants",
    "export",
    "export_document",
    "fold",
    "give_consent",
    "has_parental_consent",
    "in_marketing_use",
    "intake",
    "intake_from_client",
    "intake_versions",
    "notes",
    "open_emergency_access",
    "photo_image",
    "photos",
    "photos_in_marketing_use",
    "position_of",
    "products",
    "reactions",
    "record_disclosure",
    "record_intake",
    "require_health_access",
    "review_emergency_access",
    "revoke_consent",
    "search",
    "today_at",
    "update_client",
    "when",
    "withdraw_consents",
]
