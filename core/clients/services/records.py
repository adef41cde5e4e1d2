"""Client records: searching clients by name, email or phone; contact details and guardians."""

from __future__ import annotations

import contextlib
import unicodedata
from typing import Any

from sqlalchemy import and_, or_, select, tuple_

from core import events
from core.clients.models import Client, Guardian
from core.errors import Invalid, NotFound, field_error
from core.extensions import db
from core.schemas import normalise_phone
from core.tenancy.models import Location
from core.unit_of_work import transaction


def fold(text: str | None) -> str:
    """Return ``text`` lower-cased without accents, the form names are searched in."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _prefix(column: Any, prefix: str) -> Any:
    # A range, not LIKE, so the btree index serves it on SQLite and PostgreSQL alike.
    return and_(column >= prefix, column < prefix + "\U0010ffff")


def search(
    query: str | None = None,
    *,
    limit: int = 25,
    after: tuple[str, str, int] | None = None,
    country: str | None = None,
) -> list[Client]:
    """Find the current clinic's clients by name, email or phone.

    Every word of ``query`` must start one of the client's names; a query
    with ``@`` matches an email prefix; digits match a phone number (a whole
    number read in ``country``, or the end of one). Sorted by name, then id;
    ``after`` is the (last name, first name, id) the page starts after.
    """
    statement = select(Client).order_by(Client.search_last, Client.search_first, Client.id)
    text = (query or "").strip()
    if "@" in text:
        statement = statement.where(_prefix(Client.email, text.lower()))
    elif text and sum(c.isdigit() for c in text) >= 4 and not any(c.isalpha() for c in text):
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) >= 10:
            # A whole number: match it in E.164, through the index.
            candidates = {f"+{digits}"}
            with contextlib.suppress(ValueError):
                candidates.add(normalise_phone(text, country or "US"))
            statement = statement.where(
                or_(*(_prefix(Client.phone, candidate) for candidate in candidates))
            )
        else:
            # The end of a number ("555-0134"): rarer, and a scan.
            statement = statement.where(Client.phone.like(f"%{digits}"))
    elif text:
        for word in fold(text).split():
            statement = statement.where(
                or_(
                    _prefix(Client.search_first, word),
                    _prefix(Client.search_last, word),
                    _prefix(Client.search_preferred, word),
                )
            )
    if after is not None:
        # Keyset paging on the sort itself: stable, and every client is reached.
        statement = statement.where(
            tuple_(Client.search_last, Client.search_first, Client.id) > tuple_(*after)
        )
    return list(db.session.scalars(statement.limit(limit)))


# --- contact records (all staff) -----------------------------------------------


_CONTACT_FIELDS = (
    "legal_first_name",
    "legal_last_name",
    "preferred_name",
    "date_of_birth",
    "gender",
    "email",
    "phone",
    "street",
    "unit",
    "city",
    "region",
    "postal_code",
    "country",
    "emergency_contact_name",
    "emergency_contact_phone",
    "emergency_contact_relationship",
    "preferred_location_id",
    "preferred_channel",
    "language",
    "timezone",
)


def client(client_id: int) -> Client:
    """Return the current clinic's client ``client_id`` or raise 404."""
    found = db.session.get(Client, client_id)
    if found is None:
        raise NotFound("No such client at this clinic.")
    return found


def _check_location(location_id: int | None) -> None:
    if location_id is not None and db.session.get(Location, location_id) is None:
        raise Invalid(
            "No such location.",
            errors=[field_error("preferred_location_id", "not a location of this clinic")],
        )


def _apply_contact(record: Client, data: dict[str, Any]) -> None:
    for key in _CONTACT_FIELDS:
        if key in data:
            setattr(record, key, data[key])
    record.search_first = fold(record.legal_first_name)
    record.search_last = fold(record.legal_last_name)
    record.search_preferred = fold(record.preferred_name) or None


@transaction
def create_client(data: dict[str, Any]) -> Client:
    """Add a client to the current clinic from validated ``data``."""
    _check_location(data.get("preferred_location_id"))
    record = Client()
    _apply_contact(record, data)
    db.session.add(record)
    db.session.flush()
    events.publish("client.created", record)
    return record


@transaction
def update_client(record: Client, data: dict[str, Any]) -> Client:
    """Change a client's contact details."""
    _check_location(data.get("preferred_location_id"))
    _apply_contact(record, data)
    db.session.flush()
    events.publish("client.updated", record)
    return record


@transaction
def add_guardian(record: Client, data: dict[str, Any]) -> Guardian:
    """Record a parent or guardian of ``record``."""
    guardian = Guardian(client_id=record.id, **data)
    db.session.add(guardian)
    db.session.flush()
    return guardian
