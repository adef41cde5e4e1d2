"""Whether this server should be sent traffic: its database, Redis and photo bucket, its schema current."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import redis
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import text

import migrations
from core.extensions import db

#: Seconds a readiness probe waits on Redis: a load balancer asks often, and waits little.
REDIS_TIMEOUT = 1.0


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships (read once: it cannot change while it runs)."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
    return ScriptDirectory.from_config(config).get_current_head()


def _database() -> tuple[str, str | None]:
    """Return the database's state, and the migration it is at."""
    try:
        version = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception as error:  # any failure means "not ready"
        db.session.rollback()
        return f"unreachable ({type(error).__name__})", None
    finally:
        db.session.rollback()  # a probe holds nothing open
    return "ok", version


def redis_urls() -> list[str]:
    """The Redis servers this server needs: throttling counters, and the jobs' broker."""
    config = current_app.config
    urls = [config.get("RATELIMIT_STORAGE_URI") or ""]
    if config.get("JOBS_BACKEND") == "celery":
        urls.append(config.get("CELERY_BROKER_URL") or "")
    return sorted({url for url in urls if url.startswith(("redis://", "rediss://", "unix://"))})


def _redis(url: str) -> str:
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        client.ping()
    except redis.RedisError as error:
        return f"unreachable ({type(error).__name__})"
    return "ok"


def checks() -> dict[str, Any]:
    """Every check, by name: "ok" or what is wrong; the migrations with both revisions."""
    found: dict[str, Any] = {}
    found["database"], version = _database()
    head = head_revision()
    if version is None and found["database"] == "ok":
        found["migrations"] = {"state": "not migrated", "at": None, "head": head}
    elif version is not None:
        state = "ok" if version == head else "behind" if version < (head or "") else "ahead"
        found["migrations"] = {"state": state, "at": version, "head": head}
    for index, url in enumerate(redis_urls()):
        found["redis" if index == 0 else f"redis_{index + 1}"] = _redis(url)
    # A shared photo store (a bucket) is checked; a local directory has nothing to answer.
    check_store = getattr(current_app.extensions.get("clinic_saas.photo_store"), "check", None)
    if check_store is not None:
        found["photo_store"] = check_store()
    return found


def ready(found: dict[str, Any]) -> bool:
    """Whether every check passed."""
    return (
        all(
            (value.get("state") if isinstance(value, dict) else value) == "ok"
            for value in found.values()
        )
        and "migrations" in found
    )
