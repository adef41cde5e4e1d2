"""Prometheus metrics for the operator: requests by route, Stripe's answers, and the work waiting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Select, func, select

from core import clock
from core.bookings.models import Booking, BookingStatus
from core.extensions import db
from core.integrations import delivery as webhook_deliveries
from core.integrations.models import WebhookDelivery, WebhookEndpoint
from core.messaging import delivery as outbox_delivery
from core.messaging.models import OutboxMessage, OutboxStatus
from core.payments import stripe_api

#: The route of a request no URL rule matched (a 404, a 405).
UNMATCHED = "<unmatched>"
#: Methods counted by name; any other a client invents is counted as "other", so no caller
#: can add series to the label.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "clinic_saas_http_requests_total",
    "Requests answered, by method, route (the URL rule, never the path) and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "clinic_saas_http_request_duration_seconds",
    "Seconds from a request's start to its answer, by method and route (the URL rule).",
    ["method", "route"],
)
STRIPE_REQUESTS = Counter(
    "clinic_saas_stripe_requests_total",
    "Requests sent to Stripe's API (each retry is one), by outcome: error when Stripe gave "
    "no answer, refused the platform's key (401), was overloaded (429) or failed (5xx).",
    ["outcome"],
)


def _count_request(response: Response) -> Response:
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    method = request.method if request.method in _METHODS else "other"
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    # core.request_log took the time as the request began: one clock for the log and the metric.
    started = g.get("request_started")
    if started is not None:
        REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
    return response


def _count_stripe(outcome: str) -> None:
    STRIPE_REQUESTS.labels(outcome).inc()


def init_app(app: Flask) -> None:
    """Count and time every request of ``app`` by its route, and count every request to Stripe.

    Call after ``core.request_log.init_app``, whose start time the duration is measured from.
    """
    app.after_request(_count_request)
    stripe_api.on_request(_count_stripe)
    for outcome in ("ok", "error"):
        STRIPE_REQUESTS.labels(outcome)  # both series exist from the start, so rates work


# --- the work waiting in the database, read at each scrape -----------------------------------


@dataclass(frozen=True)
class WorkDue:
    """What the periodic jobs have to do now, summed over every clinic."""

    messages_due: int
    messages_failed: int
    webhooks_due: int
    oldest_webhook_due: datetime | None
    holds_lapsed: int

    def webhook_lag(self, now: datetime) -> float:
        """Return how many seconds the oldest due webhook delivery has waited past its time."""
        if self.oldest_webhook_due is None:
            return 0.0
        return max((now - self.oldest_webhook_due).total_seconds(), 0.0)


def _count(entity: Any, *where: Any) -> Any:
    return select(func.count()).select_from(entity).where(*where).scalar_subquery()


def _work_due_statement(now: datetime) -> Select[Any]:
    """Return one row of what is due at ``now`` in every clinic the statement can see.

    Due as the jobs see it (``core.messaging.delivery``, ``core.integrations.delivery``,
    ``expire_holds``): waiting for its time, or claimed by a worker whose lease lapsed.
    Webhook deliveries to a disabled endpoint wait for it by design, so they are not due.
    """
    webhooks = (
        select(WebhookDelivery.due_at)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.enabled.is_(True), webhook_deliveries.due(now))
        .subquery()
    )
    return select(
        _count(OutboxMessage, outbox_delivery.due(now)).label("messages_due"),
        _count(OutboxMessage, OutboxMessage.status == OutboxStatus.failed).label("messages_failed"),
        select(func.count()).select_from(webhooks).scalar_subquery().label("webhooks_due"),
        select(func.min(webhooks.c.due_at)).scalar_subquery().label("oldest_webhook_due"),
        _count(Booking, Booking.status == BookingStatus.held, Booking.hold_expires_at <= now).label(
            "holds_lapsed"
        ),
    )


#: Row-level security shows the app's role one clinic per transaction setting, and an
#: aggregate across clinics must not cost a round trip per clinic: this block enters each
#: clinic's scope in turn inside the database, as ``each_clinic`` does from Python, and
#: leaves one small object per clinic in a setting that ends with the transaction.
_EACH_CLINIC_ON_POSTGRES = """
DO $$
DECLARE
    clinic_of_row integer;
    per_clinic jsonb := '[]';
BEGIN
    FOR clinic_of_row IN SELECT id FROM clinic LOOP
        PERFORM set_config('app.clinic_id', clinic_of_row::text, true);
        per_clinic := per_clinic || (SELECT to_jsonb(totals) FROM ({statement}) AS totals);
    END LOOP;
    PERFORM set_config('app.clinic_id', '', true);
    PERFORM set_config('clinic_saas.work_due', per_clinic::text, true);
END
$$
"""


def _rows_on_postgres(connection: Connection, statement: Select[Any]) -> list[dict[str, Any]]:
    # Literal values: a DO block takes no parameters. They are the clock's time and enum
    # values, never anything a caller sent.
    sql = statement.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    connection.exec_driver_sql(_EACH_CLINIC_ON_POSTGRES.format(statement=sql))
    found = connection.exec_driver_sql("SELECT current_setting('clinic_saas.work_due')").scalar()
    rows: list[dict[str, Any]] = json.loads(found or "[]")
    for row in rows:
        if row["oldest_webhook_due"] is not None:
            row["oldest_webhook_due"] = datetime.fromisoformat(row["oldest_webhook_due"])
    return rows


def read_work_due(engine: Engine, now: datetime) -> WorkDue:
    """Return the work due at ``now`` at every clinic, in two statements on PostgreSQL, one elsewhere.

    Read on a connection of its own, outside the ORM's clinic scoping (this is the operator's
    view across clinics), and rolled back: nothing it set outlives the read.
    """
    statement = _work_due_statement(now)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            rows = _rows_on_postgres(connection, statement)
        else:
            # No row-level security: the one statement sees every clinic.
            rows = [dict(connection.execute(statement).mappings().one())]
        connection.rollback()
    oldest = [row["oldest_webhook_due"] for row in rows if row["oldest_webhook_due"] is not None]
    return WorkDue(
        messages_due=sum(row["messages_due"] for row in rows),
        messages_failed=sum(row["messages_failed"] for row in rows),
        webhooks_due=sum(row["webhooks_due"] for row in rows),
        oldest_webhook_due=min(oldest) if oldest else None,
        holds_lapsed=sum(row["holds_lapsed"] for row in rows),
    )


class WorkDueCollector(Collector):
    """Gauges of the work due, read from the database at each scrape.

    Nothing is kept in a process: every app server reads the same rows, so each reports
    the same values (aggregate them across servers with ``max``, not ``sum``).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        now = clock.now()
        work = read_work_due(self._engine, now)
        due = GaugeMetricFamily(
            "clinic_saas_work_due",
            "Work the periodic jobs have due now, at every clinic: outbox messages to send, "
            "webhook deliveries to make, lapsed holds to expire.",
            labels=["kind"],
        )
        due.add_metric(["outbox_messages"], work.messages_due)
        due.add_metric(["webhook_deliveries"], work.webhooks_due)
        due.add_metric(["lapsed_holds"], work.holds_lapsed)
        yield due
        yield GaugeMetricFamily(
            "clinic_saas_outbox_failed_messages",
            "Outbox messages given up after repeated errors, at every clinic.",
            value=work.messages_failed,
        )
        yield GaugeMetricFamily(
            "clinic_saas_webhook_lag_seconds",
            "Seconds the oldest due webhook delivery has waited past its time (0: none waits).",
            value=work.webhook_lag(now),
        )


class _ThisProcess(Collector):
    """The metrics this process counted (one process serving: no PROMETHEUS_MULTIPROC_DIR)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition(accept: str | None) -> tuple[bytes, str]:
    """Return every metric, in the format ``accept`` asks for, and its content type.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, the counts are every worker's, read from the
    files prometheus_client keeps there; otherwise this process's own.
    """
    registry = CollectorRegistry()
    directory = current_app.config.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    registry.register(WorkDueCollector(db.engine))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
