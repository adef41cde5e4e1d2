"""``flask plugins check``: run an installed plugin's hooks on sample cases and report each answer."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from marshmallow import ValidationError

from core.defaults.policy import CREDIT_ORIGIN, REFUND_REASONS
from core.hooks import answers, specs
from core.hooks.decisions import (
    CancellationDecision,
    Clause,
    DepositOutcome,
    HeldRecords,
    RecordKind,
)
from core.hooks.host import CORE_DEFAULTS, PluginHost, contract_problems
from core.hooks.views import (
    ClinicView,
    IncidentView,
    MessageView,
    PackageView,
    PaymentView,
    PrivacyRequestView,
    ProviderView,
    RecipientView,
    RefundItem,
)
from core.money import Money
from core.testing.kit import ClinicKit, KitError

#: Reasons each hook that takes one is asked with.
_REASONS = {
    "clinic_turned_away_decision": ("children", "pets"),
    "clinic_refund_decision": REFUND_REASONS,
    "clinic_store_credit_terms": tuple(CREDIT_ORIGIN),
}


@dataclass(frozen=True)
class CaseResult:
    """One call of one hook on one sample case."""

    hook: str
    case: str
    answer: str
    problem: str | None = None


@dataclass
class CheckReport:
    """What ``plugins check`` found for one plugin."""

    plugin: str
    refused: str | None = None
    settings_problem: str | None = None
    results: list[CaseResult] | None = None

    @property
    def ok(self) -> bool:
        return (
            self.refused is None
            and self.settings_problem is None
            and all(r.problem is None for r in self.results or ())
        )


def check_plugin(
    name: str, tenants: Path | None = None, host: PluginHost | None = None
) -> CheckReport:
    """Check the installed plugin ``name`` against the contract and run each of its hooks.

    ``tenants``: a tenants/ file enabling the plugin, for its settings and
    services; without it the plugin is tried with no settings.
    """
    host = host or PluginHost()
    report = CheckReport(name)
    if name in host.refused:
        report.refused = host.refused[name]
        return report
    plugin = host.get_plugin(name)
    if plugin is None:
        report.refused = "not installed (no entry point of that name in the clinic_saas group)"
        return report
    problems = contract_problems(plugin)
    if problems:
        report.refused = "; ".join(problems)
        return report
    kit = ClinicKit(host)
    try:
        if tenants is not None:
            clinic = kit.clinic(tenants)
            if name not in clinic.enabled_plugins and name not in CORE_DEFAULTS:
                report.settings_problem = f"{tenants} does not enable {name!r}"
                return report
        else:
            schema = host.settings_schema(name)
            if schema is not None:
                try:
                    schema.load({})
                except ValidationError as error:
                    needed = ", ".join(sorted(error.normalized_messages()))
                    report.settings_problem = (
                        f"the plugin needs settings ({needed}); "
                        "give --tenants FILE with a clinic that enables it"
                    )
                    return report
            clinic = kit.clinic(plugins=[] if name in CORE_DEFAULTS else [name], settings={})
    except (KitError, OSError) as error:
        report.settings_problem = str(error)
        return report
    report.results = list(_run_hooks(host, kit, clinic, name))
    return report


def _run_hooks(
    host: PluginHost, kit: ClinicKit, clinic: ClinicView, name: str
) -> Iterator[CaseResult]:
    for impl in host.pm.hook.clinic_settings_schema.get_hookimpls():
        if impl.plugin_name == name:
            reason = answers.settings_schema_problem(_call(impl.function, {}))
            yield CaseResult("clinic_settings_schema", "-", "schema", reason)
    for hook_name in host.hooks_of(name):
        if hook_name == "clinic_settings_schema":
            continue
        impl = next(
            i for i in getattr(host.pm.hook, hook_name).get_hookimpls() if i.plugin_name == name
        )
        for case, kwargs in _cases(hook_name, kit, clinic):
            try:
                answer = impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception as error:  # reported, not raised: the report lists every case
                yield CaseResult(hook_name, case, "raised", f"{type(error).__name__}: {error}")
                continue
            if specs.is_event(hook_name):
                yield CaseResult(hook_name, case, "told")
                continue
            problem = answers.problem(hook_name, answer, clinic) if answer is not None else None
            yield CaseResult(hook_name, case, _describe(answer), problem)


def _call(function: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return function(**kwargs)
    except Exception as error:
        return error


def _describe(answer: Any) -> str:
    if answer is None:
        return "None (the next plugin answers)"
    items = answer if isinstance(answer, list | tuple) else [answer]
    parts = []
    for item in items:
        text = type(item).__name__
        clause = getattr(item, "clause", None)
        if isinstance(clause, Clause):
            text += f" [{clause.id}]"
        for money_field in ("fee", "amount", "deposit"):
            value = getattr(item, money_field, None)
            if isinstance(value, Money):
                text += f" {money_field}={value.format()}"
            elif value is not None and money_field == "deposit":
                text += f" deposit={value}"
        parts.append(text)
    return ", ".join(parts) or "[] (nothing)"


def _cases(
    hook_name: str, kit: ClinicKit, clinic: ClinicView
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Sample arguments for each of the hook's parameters, in every combination (at most 24)."""
    starts = datetime(2027, 3, 10, 14, 0, tzinfo=UTC)
    declared = list(kit._services.get(clinic.slug, {}).values())
    services = declared[:2] or [kit.service(clinic)]
    bookings = [
        kit.booking(clinic, starts_at=starts, service=services[0]),
        kit.booking(
            clinic, starts_at=starts, service=services[-1], deposit_paid=_amount(services[-1].price)
        ),
    ]
    samples: dict[str, list[tuple[str, Any]]] = {
        "clinic": [(clinic.slug, clinic)],
        "booking": [
            ("unpaid booking", bookings[0]),
            ("booking with a deposit", bookings[1]),
        ],
        "service": [(s.name, s) for s in services],
        "client": [
            ("new client", kit.client()),
            ("client with 3 no-shows", kit.client(no_shows=3)),
            ("client aged 16", kit.client(date_of_birth="2010-06-01")),
        ],
        "at": [(f"{hours}h before", starts - timedelta(hours=hours)) for hours in (1, 23, 25, 72)],
        "by": [("by the client", "client"), ("by the clinic", "clinic")],
        "starts_at": [("at 14:00 UTC", starts)],
        "new_starts_at": [("moved a week", starts + timedelta(days=7))],
        "arrived_at": [(f"{m} min late", starts + timedelta(minutes=m)) for m in (5, 20)],
        "reason": [(r, r) for r in _REASONS.get(hook_name, ("other",))],
        "item": [
            ("a product", _item("product", clinic.currency)),
            ("a service", _item("service", clinic.currency)),
        ],
        "package": [
            ("a package of 6", PackageView(1, "Six facials", 6, Money(60000, clinic.currency))),
            (
                "a promotional package",
                PackageView(2, "Summer six", 6, Money(45000, clinic.currency), promotional=True),
            ),
        ],
        "provider": [("a provider", ProviderView(1, "Sample Provider", "RN"))],
        "request": [(f"{k} request", PrivacyRequestView(1, k)) for k in ("access", "delete")],
        "received_at": [("received", starts)],
        "record": [
            (kind.value, HeldRecords(kind, last_service_on=starts.date(), newest_on=starts.date()))
            for kind in (RecordKind.medical_record, RecordKind.financial, RecordKind.marketing)
        ],
        "purpose": [(p, p) for p in ("marketing", "treatment", "photos")],
        "message": [
            (f"{k} {c}", MessageView(k, c))
            for k, c in (("reminder", "sms"), ("marketing", "email"))
        ],
        "now": [("now", starts - timedelta(days=1))],
        "incident": [("a breach of 600 records", _incident(starts))],
        "disclosure": [
            ("a recipient abroad", RecipientView("Sample Lab", "US", "recipient", None))
        ],
        "decision": [
            (
                "a late cancellation",
                CancellationDecision(
                    Clause("sample", "Sample."),
                    Money.zero(clinic.currency),
                    DepositOutcome.none,
                    True,
                ),
            )
        ],
        "payment": [("a deposit", PaymentView(1, Money(5000, clinic.currency), "deposit", 1))],
    }
    names = specs.argnames(hook_name)
    choices = [samples.get(n, [(n, None)]) for n in names]
    for combination in itertools.islice(itertools.product(*choices), 24):
        label = ", ".join(
            label for (label, _), n in zip(combination, names, strict=True) if n != "clinic"
        )
        yield label or "-", {n: value for n, (_, value) in zip(names, combination, strict=True)}


def _amount(price: Money) -> str:
    return f"{price.minor // 2 / 100:.2f}"


def _item(kind: str, currency: str) -> RefundItem:
    return RefundItem(
        kind=kind,
        description=f"A sample {kind}",
        amount_paid=Money(10000, currency),
        sold_at=datetime(2027, 3, 1, tzinfo=UTC),
        quantity=1,
        condition="unopened" if kind == "product" else None,
        has_receipt=True,
    )


def _incident(at: datetime) -> IncidentView:
    return IncidentView(
        discovered_at=at,
        affected_count=600,
        affected_by_region={"CA": 600},
        encrypted=False,
        health_data=True,
        serious_harm_likely=True,
    )
