"""The booking lifecycle: each transition asks the clinic's policy and records the clause it applied."""

# States: held (waiting for its guarantee, for a limited time) -> confirmed ->
# checked_in -> completed; or cancelled, no_show, expired. Every change of a
# booking's time takes a lock on the provider's calendar first, so two
# requests can never both get one slot; on PostgreSQL an exclusion constraint
# refuses an overlap even then.

from core.bookings.services.acceptance import (
    accept_policy,
    accept_whole_policy,
    acceptances,
    policy_clause_ids,
)
from core.bookings.services.arrival import check_in, resolve_late_arrival, turn_away
from core.bookings.services.before_visit import (
    SIGNING_STATEMENT,
    ConsentForm,
    Preparation,
    answer_intake,
    consent_forms,
    intake_questions,
    preparation,
    sign_consent,
)
from core.bookings.services.cancellation import cancel, mark_no_show, preview_cancellation
from core.bookings.services.lifecycle import complete, confirm
from core.bookings.services.new_booking import book
from core.bookings.services.notices import DEPOSIT_TOLD, tell_client
from core.bookings.services.records import as_record, booking, bookings, policy_version
from core.bookings.services.requirements import (
    client_history,
    guest_client,
    requirements_for,
)
from core.bookings.services.rescheduling import preview_reschedule, reschedule
from core.bookings.services.slots import REFUSALS, ProviderLock, expire_holds, refusal

__all__ = [
    "DEPOSIT_TOLD",
    "REFUSALS",
    "SIGNING_STATEMENT",
    "ConsentForm",
    "Preparation",
    "ProviderLock",
    "accept_policy",
    "accept_whole_policy",
    "acceptances",
    "answer_intake",
    "as_record",
    "book",
    "booking",
    "bookings",
    "cancel",
    "check_in",
    "client_history",
    "complete",
    "confirm",
    "consent_forms",
    "expire_holds",
    "guest_client",
    "intake_questions",
    "mark_no_show",
    "policy_clause_ids",
    "policy_version",
    "preparation",
    "preview_cancellation",
    "preview_reschedule",
    "refusal",
    "requirements_for",
    "reschedule",
    "resolve_late_arrival",
    "sign_consent",
    "tell_client",
    "turn_away",
]
