"""HTTP API for a clinic's webhook endpoints, their delivery log and replays (owners and managers)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from core.accounts.access import Permission, requires
from core.api import Blueprint, PageArgs, by, by_id, json_response, keyset_page, page, position
from core.idempotency import Idempotent
from core.integrations import services
from core.integrations.models import WebhookEndpoint
from core.integrations.schemas import (
    CreatedEndpointSchema,
    DeliveryListSchema,
    DeliveryQueryArgs,
    DeliverySchema,
    EndpointInputSchema,
    EndpointListSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    EventTypeListSchema,
)
from core.unit_of_work import unit_of_work

blp = Blueprint(
    "integrations",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Webhooks: events signed and sent to the clinic's own systems.",
)

_DELIVERY_SCHEMA = DeliverySchema()


@blp.route("/events/types")
class EventTypes(MethodView):
    @requires(Permission.manage_webhooks)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, EventTypeListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the event types an endpoint may listen for."""
        return page(services.event_types(), args, by("type"))


@blp.route("/webhook-endpoints")
class Endpoints(MethodView):
    @requires(Permission.manage_webhooks)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, EndpointListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's webhook endpoints (never their secrets)."""
        return page(services.endpoints(), args, by_id)

    @requires(Permission.manage_webhooks)
    @blp.arguments(EndpointInputSchema)
    @blp.response(201, CreatedEndpointSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> WebhookEndpoint:
        """Register an endpoint; the answer shows its signing secret, once.

        The URL must be https:// and its host must resolve to public addresses only.
        """
        return services.create_endpoint(data)


@blp.route("/webhook-endpoints/<id:endpoint_id>")
class Endpoint(MethodView):
    @requires(Permission.manage_webhooks)
    @blp.response(200, EndpointSchema)
    def get(self, clinic_slug: str, endpoint_id: int) -> WebhookEndpoint:
        """Show an endpoint: its events, whether it is enabled, and since when it fails."""
        return services.endpoint(endpoint_id)

    @requires(Permission.manage_webhooks)
    @blp.arguments(EndpointUpdateSchema)
    @blp.response(200, EndpointSchema)
    def patch(self, data: dict[str, Any], clinic_slug: str, endpoint_id: int) -> WebhookEndpoint:
        """Change an endpoint; ``enabled: true`` sends again, in order, what waited for it."""
        return services.update_endpoint(services.endpoint(endpoint_id), data)

    @requires(Permission.manage_webhooks)
    @blp.response(204)
    def delete(self, clinic_slug: str, endpoint_id: int) -> None:
        """Remove an endpoint and its delivery log."""
        services.delete_endpoint(services.endpoint(endpoint_id))


@blp.route("/webhook-endpoints/<id:endpoint_id>/deliveries")
class Deliveries(MethodView):
    @requires(Permission.manage_webhooks)
    @blp.arguments(DeliveryQueryArgs, location="query")
    @blp.response(200, DeliveryListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, endpoint_id: int) -> dict[str, Any]:
        """List an endpoint's deliveries, newest first: status, attempts, the last answer or error."""
        limit = args["limit"]
        before = position(args["after"], (int,))[0] if args.get("after") else None
        found = services.deliveries(endpoint_id, limit=limit + 1, before=before)
        return keyset_page(found, limit, lambda line: (line["id"],))


@blp.route("/webhook-deliveries/<id:delivery_id>/replay")
class Replay(MethodView):
    @requires(Permission.manage_webhooks)
    @blp.response(201, DeliverySchema)
    def post(self, clinic_slug: str, delivery_id: int) -> Any:
        """Send a delivery's event again (the same event id), as a new delivery.

        Accepts an Idempotency-Key header: a retry returns the first replay.
        """
        idempotent = Idempotent(f"webhooks.replay:{delivery_id}", {})
        replayed = idempotent.claim()
        if replayed is not None:
            return replayed
        with unit_of_work():  # the new delivery and the answer to a retry commit together
            body = _DELIVERY_SCHEMA.dump(services.replay(delivery_id))
            idempotent.finish(201, body)
        return json_response(body, 201)
