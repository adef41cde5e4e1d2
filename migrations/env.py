"""Alembic environment: runs migrations as the schema's owner, for SQLite and PostgreSQL alike."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import create_engine

config = context.config
if config.config_file_name:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db


def _engine():
    # On PostgreSQL the app connects as a role that owns nothing, so that
    # row-level security binds it; migrations run as the owner instead.
    owner_url = current_app.config.get("DATABASE_OWNER_URL")
    if owner_url:
        return create_engine(owner_url)
    return target_db.engine


def run_migrations_offline() -> None:
    """Emit the migration SQL without a database connection."""
    url = (
        current_app.config.get("DATABASE_OWNER_URL")
        or current_app.config["SQLALCHEMY_DATABASE_URI"]
    )
    context.configure(url=url, target_metadata=target_db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Apply migrations over a connection."""

    def skip_empty(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", skip_empty)
    engine = _engine()
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection, target_metadata=target_db.metadata, **conf_args
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        if engine is not target_db.engine:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
