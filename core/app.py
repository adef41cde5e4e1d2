"""The application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

import migrations
from core import config
from core.extensions import db, limiter, login_manager, migrate

#: The migrations ship with the package (``migrations`` is a package), installed or not.
MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
log = logging.getLogger(__name__)


class ClinicFlask(Flask):
    """Flask, running a request once more when a dependency failed before anything committed.

    A database connection dropped mid-request (a failover, a restarted pooler) rolls the
    request's transaction back; if the request had not yet committed anything, running it
    again is the same as the client retrying, so it is done here, once, before anyone is
    told of an error. A second failure is answered 503 (see ``core.errors``).
    """

    def full_dispatch_request(self) -> Response:
        from core.errors import TransientFailure

        try:
            return super().full_dispatch_request()
        except TransientFailure as failure:
            log.warning(
                "retrying %s %s once after %r", request.method, request.path, failure.__cause__
            )
            self._forget_request_state()
            g.retried_after_transient_failure = True
            return super().full_dispatch_request()

    @staticmethod
    def _forget_request_state() -> None:
        from core.accounts.access import close_request_scope

        close_request_scope()
        db.session.remove()  # the connection is gone: the next statement takes a fresh one
        for name in ("principal", "clinic", "_login_user"):
            g.pop(name, None)


def _hide_link_tokens_in_access_logs() -> None:
    """The servers' access logs (werkzeug, gunicorn) print each address: not its link tokens."""
    from core.bookings.links import LinkTokensHidden

    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, LinkTokensHidden) for f in logger.filters):
            logger.addFilter(LinkTokensHidden())


def create_app(
    overrides: Mapping[str, Any] | None = None, *, instance_path: str | None = None
) -> Flask:
    """Build the application: configuration, extensions, plugins, blueprints, in that order.

    ``overrides`` replace settings read from the environment (tests use it);
    ``instance_path`` overrides INSTANCE_PATH. Nothing here touches the
    database, so importing ``wsgi`` is always safe.
    """
    app = ClinicFlask(
        "core",
        instance_path=str(
            instance_path or os.environ.get("INSTANCE_PATH") or config.default_instance_path()
        ),
        static_folder=None,
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(config.from_environment(Path(app.instance_path)))
    if overrides:
        app.config.from_mapping(overrides)

    trusted_proxies = int(os.environ.get("TRUSTED_PROXIES", "0"))
    if trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies, x_host=trusted_proxies
        )

    _hide_link_tokens_in_access_logs()
    _init_extensions(app)
    _init_plugins(app)
    _init_health_data(app)
    _init_jobs(app)
    _init_api(app)
    return app


def _init_extensions(app: Flask) -> None:
    from core import errors, request_ids, request_log, security_headers
    from core.accounts import throttle
    from core.platform import metrics

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), render_as_batch=True)
    login_manager.init_app(app)
    login_manager.session_protection = None  # sessions are bound to a clinic and idle out instead
    limiter.init_app(app)
    throttle.check_counters_are_shared(app)
    errors.register_error_handlers(app, db.metadata)
    request_ids.init_app(app)
    request_log.init_app(app)
    security_headers.init_app(app)
    metrics.init_app(app)  # after request_log: its start time times each request

    # Import every model so metadata (and Alembic's autogenerate) sees it.
    import core.accounts.models
    import core.audit.models
    import core.bookings.models
    import core.catalog.models
    import core.clients.models
    import core.encryption.models

    # Event hooks are told after commit, when a clinic scope ends.
    import core.events
    import core.idempotency

    # Outbound webhooks: their tables, and the publisher writing their outbox rows.
    import core.integrations.models
    import core.integrations.publishing
    import core.ledger.models
    import core.messaging.models
    import core.schedules.models
    import core.tenancy.models  # noqa: F401


def _init_plugins(app: Flask) -> None:
    from core.hooks.host import PluginHost
    from core.tenancy.services import PLUGIN_HOST_KEY

    host = app.config.get("PLUGIN_HOST") or PluginHost()
    app.extensions[PLUGIN_HOST_KEY] = host


def _init_health_data(app: Flask) -> None:
    from core.clients.photos import make_photo_store
    from core.encryption.keys import MasterKeys, install

    install(app, MasterKeys.parse(app.config["MASTER_KEYS"]))
    app.extensions["clinic_saas.photo_store"] = make_photo_store(app.config)


def _init_jobs(app: Flask) -> None:
    import threading

    from core.messaging import channels

    channels.install(app)
    if app.config["JOBS_BACKEND"] != "inprocess" or app.testing:
        return
    lock = threading.Lock()

    @app.before_request
    def _start_jobs() -> None:
        # Started by the first request, not at import: CLI commands and
        # test apps never start a thread they do not need.
        if "clinic_saas.jobs" in app.extensions:
            return
        with lock:
            if "clinic_saas.jobs" not in app.extensions:
                from core.jobs.runner import InProcessRunner

                runner = InProcessRunner(app, app.config["JOBS_TICK_SECONDS"])
                app.extensions["clinic_saas.jobs"] = runner
                # Stopped when the process exits (a gunicorn worker after SIGTERM): the
                # tick in progress finishes, no other starts (see InProcessRunner).
                runner.start()


def _init_api(app: Flask) -> None:
    from core import cli
    from core.accounts import access
    from core.accounts.routes import blp as accounts_blp
    from core.api import ClinicApi, refuse_unstorable_text
    from core.audit.routes import blp as audit_blp
    from core.bookings.routes import blp as bookings_blp
    from core.bookings.routes import self_service
    from core.catalog.routes import blp as catalog_blp
    from core.client_pages.routes import pages as client_pages
    from core.clients.routes import blp as clients_blp
    from core.integrations.routes import blp as integrations_blp
    from core.messaging.routes import blp as messaging_blp
    from core.messaging.routes import webhooks as sms_webhooks
    from core.onboarding.routes import blp as onboarding_blp
    from core.payments.routes import blp as payments_blp
    from core.payments.routes import webhooks as stripe_webhooks
    from core.platform.routes import blp as platform_blp
    from core.platform.routes import health
    from core.platform.routes import scrape as metrics_scrape
    from core.privacy.routes import blp as privacy_blp
    from core.privacy.routes import remember_gpc
    from core.reports.routes import blp as reports_blp
    from core.sales.routes import blp as sales_blp
    from core.schedules.routes import blp as schedules_blp
    from core.tenancy.routes import blp as clinics_blp

    api = ClinicApi(app)
    app.before_request(refuse_unstorable_text)
    app.before_request(remember_gpc)
    for blueprint in (
        clinics_blp,
        accounts_blp,
        clients_blp,
        audit_blp,
        catalog_blp,
        schedules_blp,
        bookings_blp,
        self_service,
        privacy_blp,
        messaging_blp,
        payments_blp,
        sales_blp,
        platform_blp,
        onboarding_blp,
        integrations_blp,
        reports_blp,
    ):
        api.register_blueprint(blueprint)
    app.register_blueprint(client_pages)
    app.register_blueprint(health)
    app.register_blueprint(metrics_scrape)
    app.register_blueprint(sms_webhooks)
    app.register_blueprint(stripe_webhooks)
    access.init_app(app)
    _declare_api_docs_public(app)
    cli.init_app(app)


def _declare_api_docs_public(app: Flask) -> None:
    """Mark flask-smorest's OpenAPI endpoints public; everything else declares its own access."""
    from core.accounts.access import declare_public

    for endpoint in list(app.view_functions):
        if endpoint.startswith("api-docs.") or endpoint == "static":
            declare_public(app, endpoint)


def main() -> None:
    """Run the ``clinic-saas`` command: the app's ``flask`` commands, without ``--app``."""
    from flask.cli import FlaskGroup

    FlaskGroup(create_app=lambda: create_app(), help="clinic-saas: the operator's commands.")()
