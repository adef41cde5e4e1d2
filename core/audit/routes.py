"""HTTP API for managers to query and verify the audit trail."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from core.accounts.access import Permission, requires
from core.api import Blueprint, keyset_page, position
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
        after = args.pop("after", None)
        before_seq = position(after, (int,))[0] if after else None
        # One more than the page: whether another follows.
        found = services.events(limit=limit + 1, before_seq=before_seq, **args)
        return keyset_page(found, limit, lambda event: (event.seq,))


@blp.route("/verification")
class AuditVerification(MethodView):
    @requires(Permission.view_audit)
    @blp.response(200, ChainReportSchema)
    def get(self, clinic_slug: str) -> Any:
        """Recompute the clinic's audit hash chain and report the first break, if any."""
        return services.verify_chain()
