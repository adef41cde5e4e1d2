"""Hook specifications: the questions the core asks a clinic's plugins.

Each specification is short; ``docs/plugin_hooks.md`` carries the detail
(signature, arguments, return, example) and a test fails if a hook is not
documented there. Policy hooks are ``firstresult``: the clinic's own plugin
answers first and the core default, registered ``trylast``, answers when
none did. Jurisdiction hooks are asked of every enabled plugin and the core
combines the answers. Event hooks are told, and their results ignored.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pluggy
from marshmallow import Schema

from core.hooks.decisions import (
    AgeRule,
    BookingRequirements,
    BreachNotification,
    CancellationDecision,
    ConsentRequirement,
    DisclosureDecision,
    GiftCardTerms,
    GratuityDecision,
    HeldRecords,
    LateArrivalDecision,
    MessageDecision,
    NoShowDecision,
    PackageTerms,
    RefundDecision,
    RequestDeadline,
    RescheduleDecision,
    RetentionRule,
    RightOffered,
    StoreCreditTerms,
)
from core.hooks.views import (
    BookingView,
    ClientView,
    ClinicView,
    IncidentView,
    MessageView,
    PackageView,
    PaymentView,
    PrivacyRequestView,
    ProviderView,
    RecipientView,
    RefundItem,
    ServiceView,
)

PROJECT = "clinic_saas"

hookspec = pluggy.HookspecMarker(PROJECT)


# --- set-up ------------------------------------------------------------------


@hookspec
def clinic_settings_schema() -> Schema | None:
    """Return the marshmallow ``Schema`` that validates this plugin's settings.

    Called once per plugin when a tenants/ file is loaded; the settings are
    those under ``[plugins.settings.<plugin name>]``. ``None``: the plugin
    takes no settings, and any given are refused.

    .. versionadded:: 0.1
    """


# --- clinic policy (firstresult) --------------------------------------------


@hookspec(firstresult=True)
def clinic_booking_requirements(
    clinic: ClinicView, service: ServiceView, client: ClientView, starts_at: datetime
) -> BookingRequirements | None:
    """Return the :class:`BookingRequirements` for ``client`` booking ``service``.

    ``None``: this plugin has no rule; the next one is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_cancellation_decision(
    clinic: ClinicView, booking: BookingView, at: datetime, by: str
) -> CancellationDecision | None:
    """Return the :class:`CancellationDecision` for cancelling ``booking`` at ``at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_reschedule_decision(
    clinic: ClinicView, booking: BookingView, new_starts_at: datetime, at: datetime
) -> RescheduleDecision | None:
    """Return the :class:`RescheduleDecision` for moving ``booking`` to ``new_starts_at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_no_show_decision(clinic: ClinicView, booking: BookingView) -> NoShowDecision | None:
    """Return the :class:`NoShowDecision` for a client who did not come.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_late_arrival_decision(
    clinic: ClinicView, booking: BookingView, arrived_at: datetime
) -> LateArrivalDecision | None:
    """Return the :class:`LateArrivalDecision` for a client arriving at ``arrived_at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_turned_away_decision(
    clinic: ClinicView, booking: BookingView, reason: str
) -> RescheduleDecision | None:
    """Return the :class:`RescheduleDecision` for a client the clinic cannot see as they came.

    ``reason``: ``"children"`` or ``"pets"``. ``None``: the clinic's policy does
    not turn visits away, and the core refuses the request.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_refund_decision(
    clinic: ClinicView, item: RefundItem, reason: str, at: datetime
) -> RefundDecision | None:
    """Return the :class:`RefundDecision` for a refund, return or exchange request.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_store_credit_terms(clinic: ClinicView, reason: str) -> StoreCreditTerms | None:
    """Return the :class:`StoreCreditTerms` for credit issued for ``reason``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_package_terms(clinic: ClinicView, package: PackageView) -> PackageTerms | None:
    """Return the :class:`PackageTerms` for selling and using ``package``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_gift_card_terms(clinic: ClinicView) -> GiftCardTerms | None:
    """Return the :class:`GiftCardTerms` of the clinic's gift cards and certificates.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_gratuity_allowed(
    clinic: ClinicView, service: ServiceView, provider: ProviderView
) -> GratuityDecision | None:
    """Return the :class:`GratuityDecision` for a service performed by ``provider``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


# --- jurisdiction rules (every enabled plugin; the core combines) -----------


@hookspec
def clinic_privacy_rights(clinic: ClinicView) -> Sequence[RightOffered] | None:
    """Return the :class:`RightOffered` items this plugin grants the clinic's clients.

    The core offers the union. ``None`` or an empty list: nothing from here.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_request_deadline(
    clinic: ClinicView, request: PrivacyRequestView, received_at: datetime
) -> RequestDeadline | None:
    """Return the :class:`RequestDeadline` for a privacy ``request``, or ``None``.

    The core takes the earliest ``due_at`` among the answers.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_retention_rule(
    clinic: ClinicView, record: HeldRecords, client: ClientView
) -> RetentionRule | None:
    """Return the :class:`RetentionRule` for ``record`` of ``client``, or ``None``.

    The core keeps a record until the latest ``keep_until`` among the answers.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_consent_requirements(clinic: ClinicView, purpose: str) -> ConsentRequirement | None:
    """Return the :class:`ConsentRequirement` this plugin sets for ``purpose``, or ``None``.

    The core requires a consent if any answer requires it.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_age_rules(clinic: ClinicView) -> Sequence[AgeRule] | None:
    """Return the :class:`AgeRule` items this plugin imposes.

    The core applies all of them, so the strictest gate wins.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_message_allowed(
    clinic: ClinicView, message: MessageView, client: ClientView, now: datetime
) -> MessageDecision | None:
    """Return a :class:`MessageDecision` for sending ``message`` to ``client`` now, or ``None``.

    A single refusal stops the message; the latest ``not_before`` wins.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_breach_obligations(
    clinic: ClinicView, incident: IncidentView
) -> Sequence[BreachNotification] | None:
    """Return the :class:`BreachNotification` items ``incident`` requires.

    The core lists all of them, each with its own clock.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_disclosure_allowed(
    clinic: ClinicView, disclosure: RecipientView
) -> DisclosureDecision | None:
    """Return a :class:`DisclosureDecision` for ``disclosure``, or ``None``.

    A single refusal stops the disclosure.

    .. versionadded:: 0.1
    """


# --- events (every plugin told; results ignored) -----------------------------


@hookspec
def clinic_booking_confirmed(clinic: ClinicView, booking: BookingView) -> None:
    """Tell plugins a booking was confirmed, once that is committed. Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called after the commit, never for a booking rolled back.
    """


@hookspec
def clinic_booking_cancelled(
    clinic: ClinicView, booking: BookingView, decision: CancellationDecision
) -> None:
    """Tell plugins a booking was cancelled, with the decision applied, once committed.

    Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called after the commit.
    """


@hookspec
def clinic_payment_received(clinic: ClinicView, payment: PaymentView) -> None:
    """Tell plugins a payment was received, once per payment, after it is committed.

    Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called at last (it was specified but never called), after commit.
    """


# --- what the host reads of the specs ----------------------------------------

#: What each question hook's answer must be: one of these, or a list of them
#: where the hook collects several. ``None`` always means "no rule here".
ANSWER_TYPES: dict[str, type] = {
    "clinic_booking_requirements": BookingRequirements,
    "clinic_cancellation_decision": CancellationDecision,
    "clinic_reschedule_decision": RescheduleDecision,
    "clinic_no_show_decision": NoShowDecision,
    "clinic_late_arrival_decision": LateArrivalDecision,
    "clinic_turned_away_decision": RescheduleDecision,
    "clinic_refund_decision": RefundDecision,
    "clinic_store_credit_terms": StoreCreditTerms,
    "clinic_package_terms": PackageTerms,
    "clinic_gift_card_terms": GiftCardTerms,
    "clinic_gratuity_allowed": GratuityDecision,
    "clinic_privacy_rights": RightOffered,
    "clinic_request_deadline": RequestDeadline,
    "clinic_retention_rule": RetentionRule,
    "clinic_consent_requirements": ConsentRequirement,
    "clinic_age_rules": AgeRule,
    "clinic_message_allowed": MessageDecision,
    "clinic_breach_obligations": BreachNotification,
    "clinic_disclosure_allowed": DisclosureDecision,
}
#: Hooks that may answer with several items (a list or tuple of the answer type).
MANY_ANSWERS = frozenset({"clinic_privacy_rights", "clinic_age_rules", "clinic_breach_obligations"})
#: Hooks that are told something; what they return is ignored.
EVENTS = frozenset(
    {"clinic_booking_confirmed", "clinic_booking_cancelled", "clinic_payment_received"}
)


def _specs() -> dict[str, Any]:
    module = sys.modules[__name__]
    return {
        name: function
        for name, function in vars(module).items()
        if name.startswith("clinic_") and hasattr(function, PROJECT + "_spec")
    }


@functools.cache
def hook_names() -> frozenset[str]:
    """Return the name of every hook a plugin may implement."""
    return frozenset(_specs())


@functools.cache
def argnames(hook_name: str) -> tuple[str, ...]:
    """Return the arguments the core passes to ``hook_name``, in order."""
    return tuple(inspect.signature(_specs()[hook_name]).parameters)


@functools.cache
def is_firstresult(hook_name: str) -> bool:
    """Return whether the first plugin to answer ``hook_name`` decides (a policy hook)."""
    return bool(getattr(_specs()[hook_name], PROJECT + "_spec").get("firstresult"))


def is_event(hook_name: str) -> bool:
    """Return whether ``hook_name`` tells plugins of an event (its result is ignored)."""
    return hook_name in EVENTS
