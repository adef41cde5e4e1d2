"""What happened, told to plugins only once it is committed: the event hooks' one door.

Services announce an event (a booking confirmed or cancelled, a payment received)
as they make the change; the announcement waits on the database session. When the
transaction commits, it is kept; when it rolls back, it is dropped, so no plugin
ever acts on a booking that does not exist. Kept announcements are told to the
clinic's plugins when the clinic scope ends (the end of a request, a job or a
command), after every commit of that scope and outside any open transaction.

A plugin that fails in an event hook is logged with its name; what was committed
stands. Anything an event hook writes to the database is its own to commit.

Publications are the other door, for what must be written with its cause rather
than told after it: :func:`publish` hands the event, at once and inside the open
transaction, to the publishers a higher layer registered with :func:`on_publish`
(the clinic's outbound webhooks write their outbox rows there). Lower layers call
it without knowing who listens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from core.extensions import db
from core.hooks.views import VIEW_OF
from core.tenancy import scope

log = logging.getLogger(__name__)

_PENDING = "clinic_saas.pending_events"
_COMMITTED = "clinic_saas.committed_events"


@dataclass(frozen=True)
class Announcement:
    """One event hook to call, for one clinic, with its arguments."""

    hook: str
    clinic: Any
    arguments: dict[str, Any] = field(default_factory=dict)


def announce(hook: str, *, clinic: Any, **arguments: Any) -> None:
    """Tell ``clinic``'s plugins, through event hook ``hook``, once this transaction commits."""
    pending = db.session().info.setdefault(_PENDING, [])
    # Plugins are shown the rows as they are now, as read-only views: when they are
    # told, the session that loaded the rows has closed.
    shown = {
        name: VIEW_OF[name](value) if name in VIEW_OF else value
        for name, value in arguments.items()
    }
    pending.append(Announcement(hook, VIEW_OF["clinic"](clinic), shown))


@event.listens_for(Session, "after_commit")
def _keep(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_COMMITTED, []).extend(pending)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)


def tell_plugins() -> int:
    """Call the event hooks of everything committed and not yet told; return how many."""
    from core.tenancy.services import hooks_for  # tenancy's services build on this layer

    session = db.session()
    announcements = session.info.pop(_COMMITTED, None)
    if not announcements:
        return 0
    # The scope is ending: what is not committed never happened. close() ends any open
    # transaction without expiring what was loaded, so the announced rows keep their values.
    session.close()
    session.info.pop(_PENDING, None)
    told = 0
    while announcements:
        for announcement in announcements:
            try:
                getattr(hooks_for(announcement.clinic), announcement.hook)(
                    clinic=announcement.clinic, **announcement.arguments
                )
            except Exception:
                log.exception("event hook %s failed; what was committed stands", announcement.hook)
            told += 1
        announcements = session.info.pop(_COMMITTED, None)  # what the hooks committed
    return told


scope.before_leaving(tell_plugins)


@dataclass(frozen=True)
class Publication:
    """Something that happened to one of the clinic's records, published in its transaction.

    ``type`` is the event's name (``booking.created``, ``payment.refunded``, ...),
    ``subject`` the row it happened to (a booking, a payment, a client; None when
    there is none, as for a dispute on a payment this clinic never recorded), and
    ``details`` whatever else the event carries (the amount refunded, the dispute).
    """

    type: str
    subject: Any
    details: dict[str, Any] = field(default_factory=dict)


Publisher = Callable[[Publication], None]

_publishers: list[Publisher] = []


def on_publish(publisher: Publisher) -> Publisher:
    """Register ``publisher`` to be handed every publication; registering twice is a no-op.

    A publisher runs inside the cause's transaction: what it writes commits or rolls
    back with the cause, so it must write rows only and never wait on the network.
    """
    if publisher not in _publishers:
        _publishers.append(publisher)
    return publisher


def publish(event_type: str, subject: Any, **details: Any) -> None:
    """Publish that ``event_type`` happened to ``subject``, now, in the open transaction.

    Call it where the change is made, inside the service's unit of work. A
    publisher that raises fails the unit: an event must not be lost while its
    cause commits.
    """
    publication = Publication(event_type, subject, details)
    for publisher in _publishers:
        publisher(publication)
