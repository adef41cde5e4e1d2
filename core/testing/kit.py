"""The plugin test kit: clinics from tenants documents, bookings at given times, the clinic's hooks.

No database is needed: a plugin's hooks see read-only views, and the kit
builds those views directly. Its clinics are validated as ``flask clinics
load`` validates a tenants/ file (the plugin's settings schema included),
and its hooks are called through a real plugin host, so the core defaults
and the clinic's other plugins answer as they would in production and every
answer is checked against the contract.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.hooks.host import ClinicHooks, PluginHost
from core.hooks.views import (
    BookingView,
    ClientHistory,
    ClientView,
    ClinicView,
    ServiceView,
)
from core.money import Money

#: A tenants document small enough to start from; ``clinic()`` fills in what a test leaves out.
MINIMAL_DOCUMENT: dict[str, Any] = {
    "slug": "test-clinic",
    "name": "Test Clinic",
    "country": "US",
    "timezone": "America/Los_Angeles",
    "currency": "USD",
}


class KitError(ValueError):
    """A clinic, service or booking the kit was asked to build is not valid; the message says why."""


class ClinicKit:
    """Build what hooks are shown and call a clinic's hooks, through one plugin host.

    ``ClinicKit()`` loads every installed plugin (the core defaults, the
    jurisdiction plugins, yours once ``pip install -e .`` has run);
    ``kit.use(plugin, "name")`` puts a plugin in place of the installed one
    of that name for the kit's life (or adds it, when it is not installed).
    """

    def __init__(self, host: PluginHost | None = None) -> None:
        self.host = host or PluginHost()
        self._services: dict[str, dict[str, ServiceView]] = {}
        self._ids = itertools.count(1)
        self._undo: list[AbstractContextManager[object]] = []

    # -- plugins ----------------------------------------------------------

    def use(self, plugin: object, name: str) -> object:
        """Register ``plugin`` as ``name`` in place of any installed one; undone by :meth:`close`."""
        context = self.host.registered(plugin, name)
        context.__enter__()
        self._undo.append(context)
        return plugin

    def close(self) -> None:
        """Put back what :meth:`use` replaced."""
        while self._undo:
            self._undo.pop().__exit__(None, None, None)

    def hooks(self, clinic: ClinicView) -> ClinicHooks:
        """Return the caller of ``clinic``'s hooks: its plugins, then the core defaults."""
        return self.host.for_clinic(clinic)

    # -- what hooks are shown ---------------------------------------------

    def clinic(
        self,
        document: str | Path | Mapping[str, Any] | None = None,
        *,
        plugins: list[str] | tuple[str, ...] | None = None,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        **fields: Any,
    ) -> ClinicView:
        """Return a clinic from a tenants document, validated as ``flask clinics load`` would.

        ``document``: a path to a tenants/ TOML file, its text, or the same
        as a dict; ``None`` starts from a minimal US clinic. ``plugins`` and
        ``settings`` replace the document's ``[plugins]``; other keyword
        arguments (``timezone="Pacific/Auckland"``) replace top-level fields.
        Services the document declares are kept for :meth:`booking`.
        """
        from core.tenancy.tenants_file import validate_tenant_document

        name, raw = self._document(document, plugins, settings, fields)
        data, errors = validate_tenant_document(raw, name, self.host)
        if data is None:
            raise KitError("the tenants document is refused:\n" + "\n".join(map(str, errors)))
        clinic = ClinicView(
            id=next(self._ids),
            slug=data["slug"],
            name=data["name"],
            timezone=data["timezone"],
            currency=data["currency"],
            country=data["country"],
            enabled_plugins=tuple(data["plugins"]["enabled"]),
            settings_text=json.dumps(data["plugins"]["settings"], sort_keys=True),
        )
        self._services[clinic.slug] = {
            service["slug"]: ServiceView(
                id=next(self._ids),
                name=service["name"],
                category=service["category"],
                duration_minutes=service["duration_minutes"],
                price=Money.parse(service["price"], clinic.currency),
                buffer_minutes=service["buffer_minutes"],
                online_bookable=service["online_bookable"],
            )
            for service in data["services"]
        }
        return clinic

    def _document(
        self,
        document: str | Path | Mapping[str, Any] | None,
        plugins: list[str] | tuple[str, ...] | None,
        settings: Mapping[str, Mapping[str, Any]] | None,
        fields: Mapping[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        import tomllib

        if document is None:
            name, raw = "(minimal clinic)", dict(MINIMAL_DOCUMENT)
        elif isinstance(document, Mapping):
            name, raw = "(document)", dict(document)
        elif isinstance(document, Path) or "\n" not in str(document):
            path = Path(document)
            name, raw = str(path), tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            name, raw = "(document)", tomllib.loads(str(document))
        raw.update(fields)
        if document is None:
            # The minimal clinic's one location is where the clinic is.
            raw["locations"] = [
                {
                    "slug": "main",
                    "name": "Main",
                    "country": raw["country"],
                    "timezone": raw["timezone"],
                }
            ]
        if plugins is not None or settings is not None:
            given = dict(raw.get("plugins") or {})
            if plugins is not None:
                given["enabled"] = list(plugins)
            if settings is not None:
                given["settings"] = {k: dict(v) for k, v in settings.items()}
            raw["plugins"] = given
        return name, raw

    def service(
        self,
        clinic: ClinicView,
        slug: str | None = None,
        *,
        name: str = "Consultation",
        category: str = "consultation",
        duration_minutes: int = 60,
        price: str = "100.00",
        buffer_minutes: int = 0,
        online_bookable: bool = True,
    ) -> ServiceView:
        """Return the service ``slug`` the clinic's document declares, or a new one as described."""
        if slug is not None:
            declared = self._services.get(clinic.slug, {})
            if slug not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise KitError(f"the clinic's document declares no service {slug!r} ({known})")
            return declared[slug]
        return ServiceView(
            id=next(self._ids),
            name=name,
            category=category,
            duration_minutes=duration_minutes,
            price=Money.parse(price, clinic.currency),
            buffer_minutes=buffer_minutes,
            online_bookable=online_bookable,
        )

    def client(
        self,
        *,
        date_of_birth: date | str | None = "1990-01-01",
        no_shows: int = 0,
        late_cancellations: int = 0,
        phone: str | None = None,
        timezone: str | None = None,
        country: str | None = None,
    ) -> ClientView:
        """Return a client with the given history at the clinic."""
        if isinstance(date_of_birth, str):
            date_of_birth = date.fromisoformat(date_of_birth)
        return ClientView(
            id=next(self._ids),
            date_of_birth=date_of_birth,
            phone=phone,
            timezone=timezone,
            country=country,
            history=ClientHistory(no_shows=no_shows, late_cancellations=late_cancellations),
        )

    def booking(
        self,
        clinic: ClinicView,
        *,
        starts_at: datetime | str,
        service: ServiceView | str | None = None,
        client: ClientView | None = None,
        status: str = "confirmed",
        source: str = "online",
        deposit_paid: str | None = None,
        prepaid: bool = False,
    ) -> BookingView:
        """Return a booking of ``service`` at ``starts_at``.

        ``starts_at``: an aware datetime, or ``"2027-03-10 14:00"`` read in
        the clinic's zone. ``service``: a view, a slug the clinic's document
        declares, or ``None`` for a one-hour consultation at the clinic's
        price. ``deposit_paid``: the amount paid ahead (``"50.00"``).
        """
        if isinstance(starts_at, str):
            starts_at = local_time(clinic, starts_at)
        if starts_at.tzinfo is None:
            raise KitError("starts_at needs a time zone; or give it as text in the clinic's zone")
        if service is None or isinstance(service, str):
            service = self.service(clinic, service)
        client = client or self.client()

        return BookingView(
            id=next(self._ids),
            status=status,
            source=source,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=service.duration_minutes),
            service=service,
            price=service.price,
            client_id=client.id,
            deposit_paid=Money.parse(deposit_paid, clinic.currency) if deposit_paid else None,
            prepaid=prepaid,
        )


def local_time(clinic: ClinicView, text: str) -> datetime:
    """Return ``"2027-03-10 14:00"`` as an aware datetime in the clinic's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(clinic.timezone))
