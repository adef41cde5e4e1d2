"""Services, the locations and providers offering them, and bookable resources."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core import clock
from core.extensions import Model, UtcTimestamp
from core.money import Money
from core.tenancy.kept import part_of_setup
from core.tenancy.scope import ClinicScoped


@part_of_setup()
class Service(ClinicScoped, Model):
    """Something a client can book: a treatment with a duration and a price.

    ``category`` is the clinic's own grouping (``injection_laser``,
    ``esthetician``, ``wellness``, ``consultation``...) that policies key
    their fees on.
    """

    __tablename__ = "service"
    __table_args__ = (UniqueConstraint("clinic_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(63))
    duration_minutes: Mapped[int]
    # Cleanup or turnover time after the appointment, when the provider is busy.
    buffer_minutes: Mapped[int] = mapped_column(default=0)
    price_minor: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    online_bookable: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    resource_id: Mapped[int | None] = mapped_column(ForeignKey("resource.id"))
    created_at: Mapped[datetime] = mapped_column(UtcTimestamp(), default=clock.now)

    location_links: Mapped[list[ServiceLocation]] = relationship(cascade="all, delete-orphan")
    provider_links: Mapped[list[ServiceProvider]] = relationship(cascade="all, delete-orphan")

    @property
    def price(self) -> Money:
        """Return the service's price."""
        return Money(self.price_minor, self.currency)

    @property
    def location_ids(self) -> list[int]:
        return sorted(link.location_id for link in self.location_links)

    @property
    def provider_ids(self) -> list[int]:
        return sorted(link.provider_id for link in self.provider_links)


@part_of_setup()
class ServiceLocation(ClinicScoped, Model):
    """A location that offers a service."""

    __tablename__ = "service_location"
    __table_args__ = (UniqueConstraint("clinic_id", "service_id", "location_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"))
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))


@part_of_setup()
class ServiceProvider(ClinicScoped, Model):
    """A provider who performs a service."""

    __tablename__ = "service_provider"
    __table_args__ = (UniqueConstraint("clinic_id", "service_id", "provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id", ondelete="CASCADE"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))


class Resource(ClinicScoped, Model):
    """A room or device at a location; ``capacity`` appointments may use it at once."""

    __tablename__ = "resource"
    __table_args__ = (UniqueConstraint("clinic_id", "location_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"))
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int] = mapped_column(default=1)
    # Bumped under lock when a booking takes the resource, to serialise capacity checks.
    lock_version: Mapped[int] = mapped_column(default=0)
