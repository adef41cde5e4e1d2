"""The Flask extensions, created unbound here and bound to an app in ``create_app``."""

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session
from sqlalchemy import DateTime, Enum, MetaData, event
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcTimestamp(TypeDecorator[datetime]):
    """A moment in time, stored in UTC and read back as an aware UTC datetime.

    SQLite keeps no offset: an aware 10:00-08:00 would be stored as 10:00 and
    read back naive. Converting on the way in (and tagging UTC on the way
    out) makes both engines hold and return the same instant.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the platform stores only aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def StoredEnum(enum_type: type[enum.Enum], length: int = 32) -> Enum:
    """Return the column type for a Python enum: its values as checked text, on every engine."""
    return Enum(enum_type, native_enum=False, length=length, validate_strings=True)


class Base(DeclarativeBase):
    """Declarative base for every model of the platform."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ClinicSession(Session):
    """The app's session: refuses bulk operations on clinic-owned models.

    ``bulk_save_objects`` and the ``bulk_*_mappings`` methods skip the
    per-row events that keep each clinic's rows apart; use ``add()`` or an
    ORM ``insert()`` statement instead.
    """

    def _refuse(self, mapper_or_class: Any) -> None:
        cls = getattr(mapper_or_class, "class_", mapper_or_class)
        if getattr(cls, "__clinic_scoped__", False):
            raise RuntimeError(
                f"bulk operations bypass clinic scoping; use session.add() for {cls.__name__}"
            )

    def bulk_save_objects(self, objects: Any, *args: Any, **kwargs: Any) -> None:
        objects = list(objects)
        for obj in objects:
            self._refuse(type(obj))
        super().bulk_save_objects(objects, *args, **kwargs)

    def bulk_insert_mappings(self, mapper: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse(mapper)
        super().bulk_insert_mappings(mapper, *args, **kwargs)

    def bulk_update_mappings(self, mapper: Any, *args: Any, **kwargs: Any) -> None:
        self._refuse(mapper)
        super().bulk_update_mappings(mapper, *args, **kwargs)


def _client_address() -> str:
    return request.remote_addr or "unknown"


# Rows stay readable after commit: a clinic scope ends its session, and
# what a request already loaded should not need the database again.
db = SQLAlchemy(
    model_class=Base, session_options={"expire_on_commit": False, "class_": ClinicSession}
)
migrate = Migrate()
login_manager = LoginManager()
limiter = Limiter(key_func=_client_address, default_limits=[])


@event.listens_for(ClinicSession, "before_commit")
def _note_commit(session: Session) -> None:
    # Set before the COMMIT is sent: if the connection drops during it, the work may have
    # committed, so the request must not be run again (see core.app.ClinicFlask).
    if has_request_context():
        g.committed = True


if TYPE_CHECKING:
    # Flask-SQLAlchemy builds db.Model at run time; to a type checker it is the declarative base.
    Model = Base
else:
    Model = db.Model
