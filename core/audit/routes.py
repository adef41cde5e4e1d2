"""HTTP API for managers to query and verify the audit trail."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from core.accounts.access import Permission, requires
from core.api import Blueprint
from core.audit import services
from core.audit.schemas import AuditEventListSchema, AuditQueryArgs, ChainReportSchema

blp = Blueprint(
    "audit",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>/audit",
    description="Who read, wrote or exported health data, and proof nothing was altered.",
)


@blp.route("/events")
class AuditEvents(MethodView):
    @requires(Permission.view_audit)
    @blp.arguments(AuditQueryArgs, location="query")
    @blp.response(200, AuditEventListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """Query audit events, newest first (owners and managers)."""
        limit = args.pop("limit")
        before = args.pop("before", None)
        found = services.events(limit=limit, before_seq=before, **args)
        return {
            "items": found,
            "count": len(found),
            "next_before": found[-1].seq if len(found) == limit else None,
        }


@blp.route("/verification")
class AuditVerification(MethodView):
    @requires(Permission.view_audit)
    @blp.response(200, ChainReportSchema)
    def get(self, clinic_slug: str) -> Any:
        """Recompute the clinic's audit hash chain and report the first break, if any."""
        return services.verify_chain()
