"""The Flask extensions, created unbound here and bound to an app in ``create_app``."""

from flask import request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names, so migrations can alter them on SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for every model of the platform."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _client_address() -> str:
    return request.remote_addr or "unknown"


# Rows stay readable after commit: a clinic scope ends its session, and
# what a request already loaded should not need the database again.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
migrate = Migrate()
login_manager = LoginManager()
limiter = Limiter(key_func=_client_address, default_limits=[])
