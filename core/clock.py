"""The platform's one clock: every "now" in the code comes from here, always UTC."""

from datetime import UTC, datetime


def now() -> datetime:
    """Return the current time as an aware UTC datetime.

    Use this instead of ``datetime.now()`` or ``datetime.utcnow()`` so that
    tests can move time (``time_machine``) and so that no naive or local
    time ever reaches the database.
    """
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime.

    SQLite hands back naive datetimes even for ``DateTime(timezone=True)``
    columns; everything the platform stores is UTC, so a naive value read
    back is UTC by construction.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def from_timestamp(seconds: int) -> datetime:
    """Return a Unix timestamp (as Stripe sends them) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
