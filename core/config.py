"""Configuration from environment variables, with embedded defaults for one machine."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def normalise_database_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver.

    Hosting providers hand out ``postgres://`` and ``postgresql://`` URLs;
    SQLAlchemy would pick psycopg2 for those, which is not installed.
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class SettingError(RuntimeError):
    """A setting is missing where it must be given, or malformed; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return float(raw.strip())
    except ValueError:
        raise SettingError(f"{name} must be a number (seconds), got {raw!r}") from None


def _list(env: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret_key(instance_path: Path, production: bool) -> str:
    """Return SECRET_KEY from the environment; outside production, one kept in the instance folder.

    A key generated once and kept on disk lets the embedded default survive
    restarts without anyone choosing a key. Production must set SECRET_KEY: a key
    made silently on one server would not match its neighbours', and replacing it
    would break every self-service link already sent (rotate with
    SECRET_KEY_FALLBACKS instead).
    """
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if production:
        raise SettingError(
            "SECRET_KEY must be set in production (see README: Configuration); "
            "to replace one, keep the old key in SECRET_KEY_FALLBACKS"
        )
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    key_file.write_text(key)
    key_file.chmod(0o600)
    return key


def _master_keys(instance_path: Path, production: bool) -> str:
    """Return MASTER_KEYS from the environment; outside production, one kept in the instance folder.

    Production must bring its own (from a secrets manager): a key generated
    next to the database it protects protects nothing.
    """
    keys = os.environ.get("MASTER_KEYS")
    if keys:
        return keys
    if production:
        raise RuntimeError("MASTER_KEYS must be set in production (see README: Encryption keys)")
    from core.encryption.keys import MasterKeys

    key_file = instance_path / "master_keys"
    if key_file.exists():
        return key_file.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    keys = MasterKeys.generate("dev1")
    key_file.write_text(keys)
    key_file.chmod(0o600)
    return keys


def _throttle_store(env: Mapping[str, str]) -> str:
    """Return where throttling counters live: as set, else the configured Redis, else memory."""
    if env.get("RATELIMIT_STORAGE_URI"):
        return env["RATELIMIT_STORAGE_URI"]
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        if env.get(name, "").startswith(("redis://", "rediss://", "unix://")):
            return env[name]
    return "memory://"


def _photo_store(env: Mapping[str, str], instance_path: Path) -> dict[str, Any]:
    """Return the photo store's settings; an S3 store must name its bucket."""
    kind = (env.get("PHOTO_STORE") or "local").strip().lower()
    if kind not in {"local", "s3"}:
        raise SettingError(f"PHOTO_STORE must be local or s3, got {env['PHOTO_STORE']!r}")
    bucket = (env.get("PHOTO_S3_BUCKET") or "").strip() or None
    if kind == "s3" and not bucket:
        raise SettingError("PHOTO_S3_BUCKET must name the bucket when PHOTO_STORE is s3")
    return {
        "PHOTO_STORE": kind,
        "PHOTO_STORAGE_DIR": env.get("PHOTO_STORAGE_DIR") or str(instance_path / "photos"),
        "PHOTO_S3_BUCKET": bucket,
        "PHOTO_S3_PREFIX": env.get("PHOTO_S3_PREFIX", ""),
        "PHOTO_S3_ENDPOINT_URL": env.get("PHOTO_S3_ENDPOINT_URL") or None,
        "PHOTO_S3_REGION": env.get("PHOTO_S3_REGION") or None,
    }


def _metrics(env: Mapping[str, str]) -> dict[str, Any]:
    """Return the metrics settings: the scraper's token, and where workers share their counts."""
    token = (env.get("METRICS_TOKEN") or "").strip() or None
    if token is not None and len(token) < 32:
        # It guards a route on the open internet: a short token would be guessed.
        raise SettingError(f"METRICS_TOKEN must be at least 32 characters, got {len(token)}")
    directory = env.get("PROMETHEUS_MULTIPROC_DIR") or None
    if directory is not None and not Path(directory).is_dir():
        # prometheus_client writes each worker's counts there and would fail at the first one.
        raise SettingError(f"PROMETHEUS_MULTIPROC_DIR must be a directory, got {directory!r}")
    return {"METRICS_TOKEN": token, "PROMETHEUS_MULTIPROC_DIR": directory}


def _default_tenants_dir(instance_path: Path) -> Path:
    checkout = PROJECT_ROOT / "tenants"
    return checkout if checkout.is_dir() else instance_path / "tenants"


def default_instance_path() -> Path:
    """Return where the app keeps its instance files when INSTANCE_PATH is not set.

    In a checkout, ``instance/`` beside ``pyproject.toml``; installed as a
    package, ``$XDG_DATA_HOME/clinic-saas`` (``~/.local/share/clinic-saas``),
    never the package's own directory inside site-packages.
    """
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "core").is_dir():
        return PROJECT_ROOT / "instance"
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "clinic-saas"


def from_environment(instance_path: Path) -> dict[str, Any]:
    """Build the configuration mapping from environment variables.

    Every setting the operator may change is read here and nowhere else, so
    the README's configuration table and this function tell the same story.
    """
    env = os.environ
    default_db = f"sqlite:///{instance_path / 'clinic_saas.sqlite3'}"
    database_url = normalise_database_url(env.get("DATABASE_URL", default_db))
    owner_url = env.get("DATABASE_OWNER_URL")
    production = env.get("CLINIC_SAAS_ENV", "development") == "production"
    return {
        "ENV_NAME": "production" if production else "development",
        "SECRET_KEY": _secret_key(instance_path, production),
        # Former keys, oldest first: what they signed (self-service links, sessions) still
        # verifies; only SECRET_KEY signs.
        "SECRET_KEY_FALLBACKS": _list(env, "SECRET_KEY_FALLBACKS"),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "DATABASE_OWNER_URL": normalise_database_url(owner_url) if owner_url else None,
        # hide_parameters: an error about a statement must never put its
        # values (health data, before encryption) into a log. No ping before each
        # checkout (a round trip on every request): a pooled connection found dead by a
        # request's first statement has committed nothing, so the request runs once more on
        # a fresh one (ClinicFlask), and the pool drops every connection as old as it.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": False, "hide_parameters": True},
        "TENANTS_DIR": env.get("TENANTS_DIR", str(_default_tenants_dir(instance_path))),
        # Health data: master keys wrap each clinic's data keys; photos are stored
        # encrypted, under PHOTO_STORAGE_DIR (one machine) or in an S3-compatible bucket
        # (more than one app server).
        "MASTER_KEYS": _master_keys(instance_path, production),
        **_photo_store(env, instance_path),
        "PHOTO_MAX_BYTES": _int(env, "PHOTO_MAX_BYTES", 15 * 1024 * 1024),
        "MAX_CONTENT_LENGTH": _int(env, "PHOTO_MAX_BYTES", 15 * 1024 * 1024) + 1024 * 1024,
        # Sessions: the cookie is HTTP-only and same-site; Secure in production.
        "SESSION_COOKIE_NAME": "clinic_session",
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), production),
        "REMEMBER_COOKIE_DURATION": 0,
        # Idle timeout for clinics that do not set their own (HIPAA automatic logoff).
        "DEFAULT_IDLE_TIMEOUT_MINUTES": _int(env, "DEFAULT_IDLE_TIMEOUT_MINUTES", 15),
        # However active, a session ends this long after sign-in.
        "SESSION_MAX_HOURS": _int(env, "SESSION_MAX_HOURS", 12),
        # Throttling counters: shared in Redis wherever Redis is configured, so every web
        # worker counts the same attempts; per-process memory only for one process.
        "REDIS_URL": env.get("REDIS_URL"),
        "RATELIMIT_STORAGE_URI": _throttle_store(env),
        "RATELIMIT_ALLOW_PER_PROCESS": _bool(env.get("RATELIMIT_ALLOW_PER_PROCESS"), False),
        "RATELIMIT_HEADERS_ENABLED": True,
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour"),
        # A clinic's public routes (times, booking, clients' links, privacy requests), per
        # address: reads are cheap and many (a booking page asks for times as it is used).
        "PUBLIC_READ_RATE_LIMIT": env.get("PUBLIC_READ_RATE_LIMIT", "300 per minute"),
        "PUBLIC_WRITE_RATE_LIMIT": env.get("PUBLIC_WRITE_RATE_LIMIT", "30 per minute;300 per hour"),
        "LOGIN_ACCOUNT_RATE_LIMIT": env.get("LOGIN_ACCOUNT_RATE_LIMIT", "5 per minute;20 per hour"),
        # Jobs: "inprocess" runs them in the web process (embedded default),
        # "celery" leaves them to Celery workers and beat, "none" to nobody.
        "JOBS_BACKEND": env.get("JOBS_BACKEND", "inprocess"),
        "JOBS_TICK_SECONDS": _float(env, "JOBS_TICK_SECONDS", 60),
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
        "CELERY_RESULT_BACKEND": env.get("CELERY_RESULT_BACKEND"),
        # Email: SMTP when SMTP_HOST is set, else written to the log.
        "SMTP_HOST": env.get("SMTP_HOST"),
        "SMTP_PORT": _int(env, "SMTP_PORT", 25),
        "SMTP_USERNAME": env.get("SMTP_USERNAME"),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD"),
        "SMTP_STARTTLS": _bool(env.get("SMTP_STARTTLS"), False),
        # One JSON event per request on standard error (route, status, duration, clinic).
        "LOG_REQUESTS": _bool(env.get("LOG_REQUESTS"), True),
        # GET /metrics for the operator's Prometheus (README: Running in production).
        **_metrics(env),
        # The address clients reach the booking pages at, for links in messages.
        "PUBLIC_URL": env.get("PUBLIC_URL", "http://localhost:5000"),
        # The right-hand side of every email's Message-ID: the instance's own domain.
        "MESSAGE_ID_DOMAIN": env.get("MESSAGE_ID_DOMAIN")
        or (urlsplit(env.get("PUBLIC_URL", "http://localhost:5000")).hostname or "localhost"),
        # SMS: Twilio when TWILIO_ACCOUNT_SID is set, else written to the log.
        "TWILIO_ACCOUNT_SID": env.get("TWILIO_ACCOUNT_SID"),
        "TWILIO_AUTH_TOKEN": env.get("TWILIO_AUTH_TOKEN"),
        "TWILIO_FROM_NUMBER": env.get("TWILIO_FROM_NUMBER"),
        "TWILIO_BASE_URL": env.get("TWILIO_BASE_URL"),
        # Stripe: the platform's keys; each clinic takes payments on its own
        # connected account. STRIPE_API_BASE points the SDK elsewhere (tests).
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY"),
        # Where Stripe.js is loaded from on the card step (the local Stripe server's stand-in
        # in tests and on a laptop).
        "STRIPE_JS_URL": env.get("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY"),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET"),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE"),
        # Outbound time budgets (seconds). One Stripe call on a page waits at most
        # (retries + 1) x (connect + read) + back-off, and all of a request's Stripe calls
        # together at most STRIPE_WEB_BUDGET; jobs may wait longer.
        "STRIPE_CONNECT_TIMEOUT": _float(env, "STRIPE_CONNECT_TIMEOUT", 2),
        "STRIPE_WEB_TIMEOUT": _float(env, "STRIPE_WEB_TIMEOUT", 4),
        "STRIPE_WEB_RETRIES": _int(env, "STRIPE_WEB_RETRIES", 1),
        "STRIPE_WEB_BUDGET": _float(env, "STRIPE_WEB_BUDGET", 10),
        "STRIPE_JOB_TIMEOUT": _float(env, "STRIPE_JOB_TIMEOUT", 20),
        "STRIPE_JOB_RETRIES": _int(env, "STRIPE_JOB_RETRIES", 2),
        "SMTP_TIMEOUT": _float(env, "SMTP_TIMEOUT", 10),
        "SMS_TIMEOUT": _float(env, "SMS_TIMEOUT", 10),
        # Outbound webhooks to clinics' systems: https:// to public addresses only, unless
        # the operator allows http:// or private and loopback addresses (a private network).
        "WEBHOOKS_ALLOW_HTTP": _bool(env.get("WEBHOOKS_ALLOW_HTTP"), False),
        "WEBHOOKS_ALLOW_PRIVATE": _bool(env.get("WEBHOOKS_ALLOW_PRIVATE"), False),
        "WEBHOOKS_CONNECT_TIMEOUT": _float(env, "WEBHOOKS_CONNECT_TIMEOUT", 3),
        "WEBHOOKS_READ_TIMEOUT": _float(env, "WEBHOOKS_READ_TIMEOUT", 5),
        # Self-service links for clients stay valid this long after the appointment.
        "SELF_SERVICE_LINK_DAYS": _int(env, "SELF_SERVICE_LINK_DAYS", 30),
        # OpenAPI, served by flask-smorest at /api/openapi.json.
        "API_TITLE": "clinic-saas",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
    }
