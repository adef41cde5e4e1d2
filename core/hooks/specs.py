"""Hook specifications: the questions the core asks a clinic's plugins.

Each specification is short; ``docs/plugin_hooks.md`` carries the detail
(signature, arguments, return, example) and a test fails if a hook is not
documented there. Policy hooks are ``firstresult``: the clinic's own plugin
answers first and the core default, registered ``trylast``, answers when
none did. Jurisdiction hooks are asked of every enabled plugin and the core
combines the answers. Event hooks are told, and their results ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pluggy

PROJECT = "clinic_saas"

hookspec = pluggy.HookspecMarker(PROJECT)


# --- set-up ------------------------------------------------------------------


@hookspec
def clinic_settings_schema() -> Any:
    """Return the marshmallow ``Schema`` that validates this plugin's settings.

    Called once per plugin when a tenants/ file is loaded; the settings are
    those under ``[plugins.settings.<plugin name>]``. ``None``: the plugin
    takes no settings, and any given are refused.

    .. versionadded:: 0.1
    """


# --- clinic policy (firstresult) --------------------------------------------


@hookspec(firstresult=True)
def clinic_booking_requirements(clinic: Any, service: Any, client: Any, starts_at: datetime) -> Any:
    """Return the :class:`BookingRequirements` for ``client`` booking ``service``.

    ``None``: this plugin has no rule; the next one is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_cancellation_decision(clinic: Any, booking: Any, at: datetime, by: str) -> Any:
    """Return the :class:`CancellationDecision` for cancelling ``booking`` at ``at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_reschedule_decision(
    clinic: Any, booking: Any, new_starts_at: datetime, at: datetime
) -> Any:
    """Return the :class:`RescheduleDecision` for moving ``booking`` to ``new_starts_at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_no_show_decision(clinic: Any, booking: Any) -> Any:
    """Return the :class:`NoShowDecision` for a client who did not come.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_late_arrival_decision(clinic: Any, booking: Any, arrived_at: datetime) -> Any:
    """Return the :class:`LateArrivalDecision` for a client arriving at ``arrived_at``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_turned_away_decision(clinic: Any, booking: Any, reason: str) -> Any:
    """Return the :class:`RescheduleDecision` for a client the clinic cannot see as they came.

    ``reason``: ``"children"`` or ``"pets"``. ``None``: the clinic's policy does
    not turn visits away, and the core refuses the request.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_refund_decision(clinic: Any, item: Any, reason: str, at: datetime) -> Any:
    """Return the :class:`RefundDecision` for a refund, return or exchange request.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_store_credit_terms(clinic: Any, reason: str) -> Any:
    """Return the :class:`StoreCreditTerms` for credit issued for ``reason``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_package_terms(clinic: Any, package: Any) -> Any:
    """Return the :class:`PackageTerms` for selling and using ``package``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_gift_card_terms(clinic: Any) -> Any:
    """Return the :class:`GiftCardTerms` of the clinic's gift cards and certificates.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def clinic_gratuity_allowed(clinic: Any, service: Any, provider: Any) -> Any:
    """Return the :class:`GratuityDecision` for a service performed by ``provider``.

    ``None``: no rule here; the next plugin is asked.

    .. versionadded:: 0.1
    """


# --- jurisdiction rules (every enabled plugin; the core combines) -----------


@hookspec
def clinic_privacy_rights(clinic: Any) -> Any:
    """Return the :class:`RightOffered` items this plugin grants the clinic's clients.

    The core offers the union. ``None`` or an empty list: nothing from here.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_request_deadline(clinic: Any, request: Any, received_at: datetime) -> Any:
    """Return the :class:`RequestDeadline` for a privacy ``request``, or ``None``.

    The core takes the earliest ``due_at`` among the answers.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_retention_rule(clinic: Any, record: Any, client: Any) -> Any:
    """Return the :class:`RetentionRule` for ``record`` of ``client``, or ``None``.

    The core keeps a record until the latest ``keep_until`` among the answers.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_consent_requirements(clinic: Any, purpose: str) -> Any:
    """Return the :class:`ConsentRequirement` this plugin sets for ``purpose``, or ``None``.

    The core requires a consent if any answer requires it.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_age_rules(clinic: Any) -> Any:
    """Return the :class:`AgeRule` items this plugin imposes.

    The core applies all of them, so the strictest gate wins.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_message_allowed(clinic: Any, message: Any, client: Any, now: datetime) -> Any:
    """Return a :class:`MessageDecision` for sending ``message`` to ``client`` now, or ``None``.

    A single refusal stops the message; the latest ``not_before`` wins.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_breach_obligations(clinic: Any, incident: Any) -> Any:
    """Return the :class:`BreachNotification` items ``incident`` requires.

    The core lists all of them, each with its own clock.

    .. versionadded:: 0.1
    """


@hookspec
def clinic_disclosure_allowed(clinic: Any, disclosure: Any) -> Any:
    """Return a :class:`DisclosureDecision` for ``disclosure``, or ``None``.

    A single refusal stops the disclosure.

    .. versionadded:: 0.1
    """


# --- events (every plugin told; results ignored) -----------------------------


@hookspec
def clinic_booking_confirmed(clinic: Any, booking: Any) -> None:
    """Tell plugins a booking was confirmed, once that is committed. Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called after the commit, never for a booking rolled back.
    """


@hookspec
def clinic_booking_cancelled(clinic: Any, booking: Any, decision: Any) -> None:
    """Tell plugins a booking was cancelled, with the decision applied, once committed.

    Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called after the commit.
    """


@hookspec
def clinic_payment_received(clinic: Any, payment: Any) -> None:
    """Tell plugins a payment was received, once per payment, after it is committed.

    Return value ignored.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2 called at last (it was specified but never called), after commit.
    """
