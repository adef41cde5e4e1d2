"""Clinics declared in tenants/ TOML files: validate them all, then apply them idempotently."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from sqlalchemy import func, select

from core.bookings.settings import BookingSettingsSchema, dump_booking_settings
from core.catalog.models import Service, ServiceLocation
from core.catalog.services import sync_links
from core.encryption.services import ensure_data_key
from core.errors import Invalid, NotFound, Refused, field_error, flatten_messages
from core.extensions import db
from core.hooks.host import CORE_DEFAULTS, PluginHost
from core.hooks.settings import Amount
from core.money import Money, validate_currency
from core.schemas import Email, TimeZone, normalise_phone
from core.tenancy.documents import LOCATION_FIELDS, document_of
from core.tenancy.models import Clinic, ClinicRevision, ClinicStatus, Location
from core.tenancy.scope import clinic_scope
from core.unit_of_work import unit_of_work

SLUG = validate.Regexp(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", error="Use lower-case letters, digits and hyphens."
)


@dataclass(frozen=True)
class FileError:
    """One reason a tenants/ file was refused."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class TenantFileError(Exception):
    """One or more tenants/ files were refused; nothing was applied."""

    def __init__(self, errors: list[FileError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class ContactSchema(Schema):
    """How clients reach the clinic."""

    class Meta:
        unknown = RAISE

    email = Email(load_default=None)
    phone = fields.String(load_default=None, validate=validate.Length(max=40))
    privacy_email = Email(load_default=None)
    website = fields.Url(
        load_default=None, schemes={"https", "http"}, validate=validate.Length(max=500)
    )


class LocationFileSchema(Schema):
    """A location as a tenants/ file declares it."""

    class Meta:
        unknown = RAISE

    slug = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    street = fields.String(load_default=None, validate=validate.Length(max=200))
    unit = fields.String(load_default=None, validate=validate.Length(max=100))
    city = fields.String(load_default=None, validate=validate.Length(max=100))
    region = fields.String(load_default=None, validate=validate.Length(max=100))
    postal_code = fields.String(load_default=None, validate=validate.Length(max=20))
    country = fields.String(required=True, validate=validate.Length(equal=2))
    phone = fields.String(load_default=None, validate=validate.Length(max=40))
    timezone = TimeZone(required=True)
    active = fields.Boolean(load_default=True)


class PluginsSchema(Schema):
    """Which plugins the clinic enables, and their settings (checked by each plugin)."""

    class Meta:
        unknown = RAISE

    enabled = fields.List(fields.String(validate=validate.Length(min=1)), load_default=list)
    settings = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)


class ServiceFileSchema(Schema):
    """A service as a tenants/ file declares it; the price is in the clinic's currency."""

    class Meta:
        unknown = RAISE

    slug = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None, validate=validate.Length(max=5000))
    category = fields.String(required=True, validate=SLUG)
    duration_minutes = fields.Integer(required=True, validate=validate.Range(min=5, max=12 * 60))
    buffer_minutes = fields.Integer(load_default=0, validate=validate.Range(min=0, max=240))
    price = Amount(required=True)
    online_bookable = fields.Boolean(load_default=True)
    locations = fields.List(
        fields.String(validate=SLUG), required=True, validate=validate.Length(min=1)
    )


def _parse_locale(value: str) -> Locale:
    return Locale.parse(value, sep="-" if "-" in value else "_")


def _check_locale(value: str) -> None:
    """Refuse a locale Babel does not know, or one not in English (the messages' language)."""
    try:
        found = _parse_locale(value)
    except (ValueError, TypeError, UnknownLocaleError):
        raise ValidationError(f"{value!r} is not a locale (en_GB, en_AU...)", "locale") from None
    if found.language != "en":
        raise ValidationError(
            f"{value!r} is not in English: messages and pages are written in English, "
            "so the locale sets how money and dates are written (en_GB, en_AU...)",
            "locale",
        )


class ClinicFileSchema(Schema):
    """A whole tenants/ file: one clinic."""

    class Meta:
        unknown = RAISE

    slug = fields.String(required=True, validate=SLUG)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    legal_name = fields.String(load_default=None, validate=validate.Length(max=200))
    country = fields.String(required=True, validate=validate.Length(equal=2))
    timezone = TimeZone(required=True)
    currency = fields.String(required=True)
    locale = fields.String(
        load_default=None,
        validate=validate.Length(max=16),
        metadata={
            "description": "How money and dates are written for its clients (en_GB, en_AU...); "
            "English as written in its country when omitted."
        },
    )
    # Omitted: a new clinic starts active, and a reload leaves the operator's
    # suspension alone.
    status = fields.Enum(ClinicStatus, by_value=True, load_default=None)
    idle_timeout_minutes = fields.Integer(load_default=15, validate=validate.Range(min=1, max=60))
    contact = fields.Nested(ContactSchema, load_default=dict)
    locations = fields.List(
        fields.Nested(LocationFileSchema), required=True, validate=validate.Length(min=1)
    )
    plugins = fields.Nested(PluginsSchema, load_default=lambda: {"enabled": [], "settings": {}})
    bookings = fields.Nested(
        BookingSettingsSchema, load_default=lambda: BookingSettingsSchema().load({})
    )
    services = fields.List(fields.Nested(ServiceFileSchema), load_default=list)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            validate_currency(data["currency"])
        except ValueError as error:
            raise ValidationError(str(error), "currency") from None
        if data.get("locale") is not None:
            _check_locale(data["locale"])
        slugs = [loc["slug"] for loc in data["locations"]]
        duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
        if duplicates:
            raise ValidationError(f"duplicate location slugs: {', '.join(duplicates)}", "locations")
        services = [service["slug"] for service in data["services"]]
        twice = sorted({s for s in services if services.count(s) > 1})
        if twice:
            raise ValidationError(f"duplicate service slugs: {', '.join(twice)}", "services")
        for index, service in enumerate(data["services"]):
            unknown = sorted(set(service["locations"]) - set(slugs))
            if unknown:
                raise ValidationError(
                    {index: {"locations": [f"no location {', '.join(unknown)} in this file"]}},
                    "services",
                )

    @post_load
    def _normalise(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data.get("locale") is not None:
            data["locale"] = str(_parse_locale(data["locale"]))  # en-gb and en_GB: "en_GB"
        data["currency"] = data["currency"].upper()
        data["country"] = data["country"].upper()
        errors: dict[str, Any] = {}
        # Numbers written without a country code are read in the clinic's
        # (or the location's) own country, then stored in E.164.
        if data["contact"].get("phone"):
            try:
                data["contact"]["phone"] = normalise_phone(
                    data["contact"]["phone"], data["country"]
                )
            except ValueError as error:
                errors["contact"] = {"phone": [str(error)]}
        for index, loc in enumerate(data["locations"]):
            loc["country"] = loc["country"].upper()
            if loc.get("phone"):
                try:
                    loc["phone"] = normalise_phone(loc["phone"], loc["country"])
                except ValueError as error:
                    errors.setdefault("locations", {})[index] = {"phone": [str(error)]}
        if errors:
            raise ValidationError(errors)
        return data


@dataclass
class LoadReport:
    """What loading tenants/ files did, clinic by clinic."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def tenant_files(directory: str | Path) -> list[Path]:
    """Return the tenants/ files in ``directory``, sorted by name."""
    return sorted(Path(directory).glob("*.toml"))


def read_tenant_file(path: Path, host: PluginHost) -> tuple[dict[str, Any] | None, list[FileError]]:
    """Parse and validate one file; return its clinic data or the reasons it is refused."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        return None, [FileError(name, "(file)", f"cannot be read: {error.strerror}")]
    except UnicodeDecodeError as error:
        return None, [FileError(name, "(file)", f"is not valid TOML: {error}")]
    return read_tenant_text(text, name, host)


def read_tenant_text(
    text: str, name: str, host: PluginHost
) -> tuple[dict[str, Any] | None, list[FileError]]:
    """Parse and validate one tenants document given as text; ``name`` labels its errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return None, [FileError(name, "(file)", f"is not valid TOML: {error}")]
    return validate_tenant_document(raw, name, host)


def validate_tenant_document(
    raw: dict[str, Any], name: str, host: PluginHost
) -> tuple[dict[str, Any] | None, list[FileError]]:
    """Validate a tenants document already parsed from TOML, plugin settings included."""
    try:
        data = ClinicFileSchema().load(raw)
    except ValidationError as error:
        return None, [
            FileError(name, f or "(file)", reason) for f, reason in flatten_messages(error.messages)
        ]
    errors = _check_plugins(name, data, host)
    return (None, errors) if errors else (data, [])


def _check_plugins(name: str, data: dict[str, Any], host: PluginHost) -> list[FileError]:
    errors: list[FileError] = []
    enabled = data["plugins"]["enabled"]
    for index, plugin in enumerate(enabled):
        if plugin in CORE_DEFAULTS:
            errors.append(
                FileError(
                    name,
                    f"plugins.enabled.{index}",
                    f"{plugin!r} is always enabled; do not list it",
                )
            )
        elif plugin in host.refused:
            errors.append(
                FileError(
                    name,
                    f"plugins.enabled.{index}",
                    f"plugin {plugin!r} is installed but refused: {host.refused[plugin]}",
                )
            )
        elif not host.has_plugin(plugin):
            known = ", ".join(p for p in host.plugin_names() if p not in CORE_DEFAULTS) or "none"
            errors.append(
                FileError(
                    name,
                    f"plugins.enabled.{index}",
                    f"no plugin named {plugin!r} is installed (installed: {known})",
                )
            )
    validated: dict[str, Any] = {}
    for plugin, settings in data["plugins"]["settings"].items():
        where = f"plugins.settings.{plugin}"
        if plugin not in enabled and plugin not in CORE_DEFAULTS:
            errors.append(FileError(name, where, f"settings for {plugin!r}, which is not enabled"))
            continue
        if not host.has_plugin(plugin):
            continue  # already reported above
        schema = host.settings_schema(plugin)
        if schema is None:
            errors.append(FileError(name, where, f"{plugin!r} takes no settings"))
            continue
        try:
            validated[plugin] = schema.dump(schema.load(settings, unknown=RAISE))
        except ValidationError as error:
            errors.extend(
                FileError(name, f"{where}.{f}", reason)
                for f, reason in flatten_messages(error.messages)
            )
    data["plugins"]["settings"] = validated
    return errors


_CLINIC_FIELDS = (
    "name",
    "legal_name",
    "country",
    "timezone",
    "currency",
    "status",
    "idle_timeout_minutes",
)


def _assign(obj: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(obj, key) != value:
            setattr(obj, key, value)
            changed = True
    return changed


def _apply(data: dict[str, Any], source: str) -> str:
    """Create or update one clinic from validated ``data``; return what happened."""
    found = db.session.scalar(select(Clinic).where(Clinic.slug == data["slug"]))
    created = found is None
    clinic = Clinic(slug=data["slug"]) if found is None else found
    if created:
        db.session.add(clinic)
    values = {key: data[key] for key in _CLINIC_FIELDS if data[key] is not None}
    contact = data["contact"]
    values.update(
        contact_email=contact.get("email"),
        contact_phone=contact.get("phone"),
        privacy_email=contact.get("privacy_email"),
        website=contact.get("website"),
        enabled_plugins=list(data["plugins"]["enabled"]),
        plugin_settings=dict(data["plugins"]["settings"]),
        booking_settings=dump_booking_settings(data["bookings"]),
        source_file=Path(source).name,
        # Dropped from the file, it goes back to English as written in the clinic's country.
        chosen_locale=data.get("locale"),
    )
    changed = _assign(clinic, values)
    db.session.flush()
    with clinic_scope(clinic), unit_of_work():  # committed inside the clinic's scope
        existing = {loc.slug: loc for loc in db.session.scalars(select(Location))}
        for declared in data["locations"]:
            location = existing.pop(declared["slug"], None)
            if location is None:
                location = Location(slug=declared["slug"])
                db.session.add(location)
                changed = True
            changed |= _assign(location, {k: declared[k] for k in LOCATION_FIELDS})
        for gone in existing.values():
            # Locations are never deleted: bookings and records point at them.
            changed |= _assign(gone, {"active": False})
        db.session.flush()
        changed |= _apply_services(data, clinic.currency)
        ensure_data_key()
    if created:
        return "created"
    return "updated" if changed else "unchanged"


def _apply_services(data: dict[str, Any], currency: str) -> bool:
    """Create or update the clinic's declared services; retire the ones no longer declared."""
    changed = False
    locations = {loc.slug: loc.id for loc in db.session.scalars(select(Location))}
    existing = {service.slug: service for service in db.session.scalars(select(Service))}
    for declared in data["services"]:
        service = existing.pop(declared["slug"], None)
        if service is None:
            service = Service(slug=declared["slug"], currency=currency)
            db.session.add(service)
            changed = True
        values = {
            k: declared[k]
            for k in (
                "name",
                "description",
                "category",
                "duration_minutes",
                "buffer_minutes",
                "online_bookable",
            )
        }
        values.update(
            price_minor=Money.parse(declared["price"], currency).minor,
            currency=currency,
            active=True,
        )
        changed |= _assign(service, values)
        wanted = {locations[slug] for slug in declared["locations"]}
        if wanted != set(service.location_ids):
            sync_links(service.location_links, wanted, "location_id", ServiceLocation)
            changed = True
    for gone in existing.values():
        changed |= _assign(gone, {"active": False})
    return changed


def load_tenant_files(paths: Iterable[Path], host: PluginHost) -> LoadReport:
    """Validate every file, then create or update their clinics.

    If any file is refused, :class:`TenantFileError` lists every reason
    (file, field, reason) and no clinic is touched. Each clinic is then
    applied in a transaction of its own; running it again changes nothing.
    """
    paths = list(paths)
    parsed: list[tuple[Path, dict[str, Any]]] = []
    errors: list[FileError] = []
    for path in paths:
        data, problems = read_tenant_file(path, host)
        errors.extend(problems)
        if data is not None:
            parsed.append((path, data))
    seen: dict[str, Path] = {}
    for path, data in parsed:
        if data["slug"] in seen:
            errors.append(
                FileError(
                    str(path), "slug", f"{data['slug']!r} is also declared in {seen[data['slug']]}"
                )
            )
        seen[data["slug"]] = path
    if errors:
        raise TenantFileError(errors)
    report = LoadReport()
    for path, data in parsed:
        getattr(report, _apply_and_keep(data, path.name)[1]).append(data["slug"])
    return report


def _apply_and_keep(
    data: dict[str, Any], source: str, actor_user_id: int | None = None
) -> tuple[Clinic, str]:
    """Apply a validated document and keep it as the clinic's next revision if anything changed."""
    outcome = _apply(data, source)
    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == data["slug"]))
    assert clinic is not None  # _apply has just written it
    if outcome != "unchanged":
        with clinic_scope(clinic), unit_of_work():
            document = document_of(clinic)
            # One writer of a clinic's revisions at a time: the next number is read under the lock.
            db.session.execute(select(Clinic.id).where(Clinic.id == clinic.id).with_for_update())
            last = db.session.scalar(
                select(func.max(ClinicRevision.number)).where(ClinicRevision.clinic_id == clinic.id)
            )
            db.session.add(
                ClinicRevision(
                    clinic_id=clinic.id,
                    number=(last or 0) + 1,
                    document=document,
                    source=source,
                    changed_by_user_id=actor_user_id,
                )
            )
    return clinic, outcome


def apply_document(
    raw: dict[str, Any],
    host: PluginHost,
    *,
    actor_user_id: int | None,
    slug: str | None = None,
) -> tuple[Clinic, str]:
    """Create a clinic from a tenants document given through the API, or replace one's (``slug``).

    Validated by the same code as a tenants/ file, with the same field-level
    errors; a clinic created this way starts ``onboarding``. Returns the
    clinic and ``"created"``, ``"updated"`` or ``"unchanged"``.
    """
    data, errors = validate_tenant_document(raw, "document", host)
    if "status" in raw:
        # Opening, suspending and retiring have rules of their own (the clinic's readiness,
        # its bookings still to come): PATCH /api/v1/platform/clinics/<slug> applies them.
        data, errors = (
            None,
            [
                *errors,
                FileError("document", "status", "set with PATCH /api/v1/platform/clinics/<slug>"),
            ],
        )
    if data is None:
        raise Invalid(
            "The clinic's document is refused: see errors for each field.",
            kind="invalid-clinic-document",
            errors=[field_error(e.field, e.reason) for e in errors],
        )
    if slug is None:
        if db.session.scalar(select(Clinic.id).where(Clinic.slug == data["slug"])) is not None:
            raise Refused(f"A clinic {data['slug']!r} exists already.", kind="clinic-exists")
    else:
        existing = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        if existing is None:
            raise NotFound("No such clinic.")
        if data["slug"] != slug:
            raise Invalid(
                "A clinic's slug cannot change: it is in every address of the clinic.",
                errors=[field_error("slug", f"must be {slug!r}")],
            )
        if existing.status == ClinicStatus.retired:
            raise Refused(
                "This clinic is retired; its document cannot change.", kind="clinic-retired"
            )
    if slug is None and data["status"] is None:
        data["status"] = ClinicStatus.onboarding
    return _apply_and_keep(data, "api", actor_user_id)
