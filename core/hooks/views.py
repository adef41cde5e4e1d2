"""What plugins are shown: read-only views of the clinic, service, client, booking and payment.

A hook never receives a live database row: it could change it, or reach
through it to another clinic's data. The host turns each argument named
``clinic``, ``service``, ``client``, ``booking`` or ``payment`` into one of
these frozen views before any plugin sees it, and a plugin's tests build the
same views directly (see ``core.testing``). Every field a policy needs is
here and documented; anything else is not part of the contract.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from core.money import Money

#: The contract's version. A plugin may pin it (``CONTRACT_VERSION >= (1, 0)``):
#: a minor step only adds (a field, a hook, an optional argument); a field or
#: hook to be removed is first marked deprecated for a whole minor version.
CONTRACT_VERSION = (1, 0)


@dataclass(frozen=True, slots=True)
class ClinicView:
    """The clinic a hook is asked about.

    ``settings_for(name)`` returns a fresh copy of one plugin's settings as
    the tenants/ file wrote them; ``core.hooks.settings.settings_of`` reads
    them through the plugin's schema, defaults filled in.
    """

    id: int
    slug: str
    name: str
    #: IANA zone of the clinic (``"Pacific/Auckland"``): local days and hours are in it.
    timezone: str
    #: ISO 4217 code of every amount at the clinic (``"NZD"``).
    currency: str
    #: ISO 3166 alpha-2 country (``"NZ"``).
    country: str
    enabled_plugins: tuple[str, ...] = ()
    #: The settings of every enabled plugin, as JSON text: a plugin cannot change them.
    settings_text: str = "{}"

    def settings_for(self, plugin_name: str) -> dict[str, Any]:
        """Return a copy of ``plugin_name``'s settings for this clinic (``{}`` if none)."""
        found: dict[str, Any] = json.loads(self.settings_text).get(plugin_name) or {}
        return dict(found)

    @classmethod
    def of(cls, clinic: Any) -> ClinicView:
        """Return the view of ``clinic`` (a view is returned as it is)."""
        if isinstance(clinic, ClinicView):
            return clinic
        return cls(
            id=clinic.id,
            slug=clinic.slug,
            name=clinic.name,
            timezone=clinic.timezone,
            currency=clinic.currency,
            country=clinic.country,
            enabled_plugins=tuple(clinic.enabled_plugins or ()),
            settings_text=json.dumps(clinic.plugin_settings or {}, sort_keys=True),
        )


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A service on the clinic's menu."""

    id: int
    name: str
    #: The clinic's own grouping (``"injectables"``, ``"facials"``): fee tables match on it.
    category: str
    duration_minutes: int
    price: Money
    buffer_minutes: int = 0
    online_bookable: bool = True

    @classmethod
    def of(cls, service: Any) -> ServiceView:
        """Return the view of ``service``."""
        if isinstance(service, ServiceView):
            return service
        return cls(
            id=service.id,
            name=service.name,
            category=service.category,
            duration_minutes=service.duration_minutes,
            price=Money(service.price_minor, service.currency),
            buffer_minutes=service.buffer_minutes or 0,
            online_bookable=bool(service.online_bookable),
        )


@dataclass(frozen=True, slots=True)
class ClientHistory:
    """What a client has done at this clinic that policies count."""

    #: Bookings the client did not come to.
    no_shows: int = 0
    #: Bookings the client cancelled (or moved) inside the clinic's notice window.
    late_cancellations: int = 0


#: Supplied by the bookings package: counts one client's history at the current clinic.
_history_source: Callable[[int], ClientHistory] | None = None


def provide_client_history(source: Callable[[int], ClientHistory]) -> None:
    """Say how to count a client's history (the bookings package does, once)."""
    global _history_source
    _history_source = source


@dataclass(frozen=True, slots=True)
class ClientView:
    """A client of the clinic, without their health record.

    ``no_shows`` and ``late_cancellations`` are counted from the client's
    bookings here only when a plugin reads them; a test passes ``history``.
    """

    id: int | None
    date_of_birth: date | None = None
    #: The client's own zone when they gave one; messages respect their local hours.
    timezone: str | None = None
    #: E.164 or as entered; its country code tells where the client is.
    phone: str | None = None
    country: str | None = None
    history: ClientHistory | Callable[[], ClientHistory] | None = field(
        default=None, compare=False, repr=False
    )
    _counted: list[ClientHistory] = field(
        default_factory=list, init=False, compare=False, repr=False
    )

    def _history(self) -> ClientHistory:
        if not self._counted:
            history = self.history
            if callable(history):
                history = history()
            elif history is None:
                history = (
                    _history_source(self.id)
                    if _history_source is not None and self.id
                    else ClientHistory()
                )
            self._counted.append(history)
        return self._counted[0]

    @property
    def no_shows(self) -> int:
        """How many bookings here the client did not come to."""
        return self._history().no_shows

    @property
    def late_cancellations(self) -> int:
        """How many bookings here the client cancelled or moved inside the notice window."""
        return self._history().late_cancellations

    @property
    def policy_incidents(self) -> int:
        """No-shows and late cancellations together (what prepayment rules usually count)."""
        history = self._history()
        return history.no_shows + history.late_cancellations

    @classmethod
    def of(cls, client: Any) -> ClientView:
        """Return the view of ``client``."""
        if isinstance(client, ClientView):
            return client
        return cls(
            id=client.id,
            date_of_birth=client.date_of_birth,
            timezone=getattr(client, "timezone", None),
            phone=getattr(client, "phone", None),
            country=getattr(client, "country", None),
        )


@dataclass(frozen=True, slots=True)
class BookingView:
    """A booking: when, what, its price and what has been paid ahead."""

    id: int | None
    status: str
    #: ``"online"`` (the client booked) or ``"staff"``.
    source: str
    starts_at: datetime
    ends_at: datetime
    service: ServiceView
    price: Money
    client_id: int | None = None
    provider_id: int | None = None
    location_id: int | None = None
    #: The deposit or prepayment paid on the booking, if any.
    deposit_paid: Money | None = None
    #: Whether what was paid ahead is a prepayment of the whole price (not a deposit).
    prepaid: bool = False
    created_at: datetime | None = None

    @classmethod
    def of(cls, booking: Any) -> BookingView:
        """Return the view of ``booking``."""
        if isinstance(booking, BookingView):
            return booking
        charges = getattr(booking, "charges", None) or ()
        return cls(
            id=booking.id,
            status=str(booking.status),
            source=booking.source,
            starts_at=booking.starts_at,
            ends_at=booking.ends_at,
            service=ServiceView.of(booking.service),
            price=Money(booking.price_minor, booking.currency),
            client_id=booking.client_id,
            provider_id=booking.provider_id,
            location_id=booking.location_id,
            deposit_paid=booking.deposit_paid,
            prepaid=any(c.kind == "prepayment" and c.status == "paid" for c in charges),
            created_at=booking.created_at,
        )


@dataclass(frozen=True, slots=True)
class PaymentView:
    """A payment received: how much, for what, on which booking."""

    id: int
    amount: Money
    #: ``"deposit"``, ``"prepayment"``, ``"balance"``, ``"fee"`` ...
    purpose: str
    booking_id: int | None = None

    @classmethod
    def of(cls, payment: Any) -> PaymentView:
        """Return the view of ``payment``."""
        if isinstance(payment, PaymentView):
            return payment
        return cls(
            id=payment.id,
            amount=Money(payment.amount_minor, payment.currency),
            purpose=str(payment.purpose),
            booking_id=payment.booking_id,
        )


# --- what other hooks are shown ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundItem:
    """What a refund, return or exchange request is about.

    ``kind`` is the sale line's (``service``, ``product``, ``package``,
    ``gift_certificate``); ``condition`` what the client says of a product
    (``unopened``, ``opened``, ``defective``, ``allergic_reaction``);
    ``amount_paid`` what the request could return at most.
    """

    kind: str
    description: str
    amount_paid: Money
    sold_at: datetime
    quantity: int
    condition: str | None
    has_receipt: bool
    prescription: bool = False
    promotional: bool = False
    service_category: str | None = None
    #: Whether one of the clinic's providers has assessed the case (a corrective refund).
    assessed_by_provider: bool = False
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderView:
    """A provider who performs services."""

    id: int
    display_name: str
    #: Their professional credential as the clinic lists it (``"RN"``, ``"NP"``, ``"MD"``), if any.
    credential: str | None = None

    @classmethod
    def of(cls, provider: Any) -> ProviderView:
        """Return the view of ``provider``."""
        if isinstance(provider, ProviderView):
            return provider
        return cls(provider.id, provider.display_name, getattr(provider, "credential", None))


@dataclass(frozen=True, slots=True)
class PackageView:
    """A package of treatments a client bought."""

    id: int
    name: str
    sessions: int
    price: Money
    #: Sold at a promotional price (some policies treat those apart).
    promotional: bool = False

    @classmethod
    def of(cls, package: Any) -> PackageView:
        """Return the view of ``package``."""
        if isinstance(package, PackageView):
            return package
        return cls(
            id=package.id,
            name=package.name,
            sessions=package.sessions,
            price=Money(package.price_minor, package.currency),
            promotional=bool(package.promotional),
        )


@dataclass(frozen=True, slots=True)
class PrivacyRequestView:
    """A client's privacy request."""

    id: int | None
    #: A :class:`PrivacyRight` value: ``"access"``, ``"delete"``, ``"opt_out_sale_sharing"`` ...
    kind: str

    @classmethod
    def of(cls, request: Any) -> PrivacyRequestView:
        """Return the view of ``request``."""
        if isinstance(request, PrivacyRequestView):
            return request
        return cls(getattr(request, "id", None), str(request.kind))


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message about to be sent to a client."""

    #: ``"reminder"``, ``"marketing"``, ``"receipt"`` ...
    kind: str
    #: ``"sms"`` or ``"email"``.
    channel: str

    @classmethod
    def of(cls, message: Any) -> MessageView:
        """Return the view of ``message``."""
        if isinstance(message, MessageView):
            return message
        return cls(str(message.kind), str(message.channel))


@dataclass(frozen=True, slots=True)
class IncidentView:
    """A breach of the clinic's data, as registered."""

    #: When the clinic learned of it: notification clocks start here.
    discovered_at: datetime
    #: How many people's data it touched.
    affected_count: int
    #: Of them, how many by state or region (``{"CA": 612}``).
    affected_by_region: Mapping[str, int] = field(default_factory=dict)
    #: Whether the data was encrypted and the key not taken.
    encrypted: bool = False
    #: Whether health information was in it.
    health_data: bool = True
    #: The clinic's assessment of serious harm (New Zealand's test).
    serious_harm_likely: bool = True

    @classmethod
    def of(cls, incident: Any) -> IncidentView:
        """Return the view of ``incident``."""
        if isinstance(incident, IncidentView):
            return incident
        return cls(
            discovered_at=incident.discovered_at,
            affected_count=incident.affected_count,
            affected_by_region=MappingProxyType(dict(incident.affected_by_region or {})),
            encrypted=bool(incident.encrypted),
            health_data=bool(incident.health_data),
            serious_harm_likely=bool(incident.serious_harm_likely),
        )


@dataclass(frozen=True, slots=True)
class RecipientView:
    """A recipient the clinic would send a client's data to."""

    name: str
    #: ISO 3166 country where the recipient holds the data.
    country: str
    #: ``"processor"`` (acts for the clinic) or ``"recipient"``.
    role: str
    #: The lawful basis the clinic gave for it, if any.
    basis: str | None = None

    @classmethod
    def of(cls, recipient: Any) -> RecipientView:
        """Return the view of ``recipient``."""
        if isinstance(recipient, RecipientView):
            return recipient
        return cls(recipient.name, recipient.country, recipient.role, recipient.basis)


#: How the host turns each argument, by its name, into what plugins are shown.
VIEW_OF: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {
        "clinic": ClinicView.of,
        "service": ServiceView.of,
        "client": ClientView.of,
        "booking": BookingView.of,
        "payment": PaymentView.of,
        "provider": ProviderView.of,
        "package": PackageView.of,
        "request": PrivacyRequestView.of,
        "message": MessageView.of,
        "incident": IncidentView.of,
        "disclosure": RecipientView.of,
    }
)
