"""HTTP endpoints for checkout, products, packages, gift certificates, store credit and refunds."""

from __future__ import annotations

import uuid
from typing import Any

from flask import request
from flask.views import MethodView
from sqlalchemy import select

from core.accounts.access import Permission, current_clinic, current_principal, requires
from core.api import Blueprint, PageArgs, by, by_id, json_response, page
from core.clients import services as clients
from core.errors import Problem
from core.extensions import db
from core.idempotency import Idempotent
from core.sales import memberships, schemas
from core.sales import services as sales
from core.sales.models import (
    ClientMembership,
    ClientPackage,
    MembershipPlan,
    Product,
    RefundRequest,
)
from core.unit_of_work import unit_of_work

blp = Blueprint(
    "sales",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Checkout, retail products, packages, gift certificates, store credit, refunds.",
)


def _user_id() -> int:
    return current_principal().user.id


def _sale_body(bill: Any, codes: list[str] | None = None) -> dict[str, Any]:
    return schemas.SaleSchema().dump(
        {
            "id": bill.id,
            "status": bill.status.value,
            "client_id": bill.client_id,
            "booking_id": bill.booking_id,
            "total": bill.total.to_dict(),
            "paid": sales.paid_toward(bill).to_dict(),
            "balance_due": sales.balance_due(bill).to_dict(),
            "lines": bill.lines,
            "tenders": bill.tenders,
            "paid_at": bill.paid_at,
            "gift_certificate_codes": codes or [],
        }
    )


@blp.route("/products")
class Products(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.RetailProductListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the clinic's retail products."""
        return page(
            list(db.session.scalars(select(Product).order_by(Product.name))),
            args,
            by("name", "id"),
        )

    @requires(Permission.edit_catalog)
    @blp.arguments(schemas.RetailProductInputSchema)
    @blp.response(201, schemas.RetailProductSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Product:
        """Add a retail product."""
        product = sales.add_product(current_clinic(), data)
        return product


@blp.route("/sales")
class Sales(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(schemas.SaleInputSchema)
    @blp.response(201, schemas.SaleSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Open a bill: an appointment on its day, products, packages or gift certificates.

        Accepts an Idempotency-Key header: a retry returns the first bill.
        """
        idempotent = Idempotent("sales.open", data)
        replay = idempotent.claim()
        if replay is not None:
            return replay
        with unit_of_work():  # the bill and the answer to a retry commit together
            bill, codes = sales.open_sale(current_clinic(), data, _user_id())
            body = _sale_body(bill, codes)
            # Codes are shown once, here: the stored answer a retry replays leaves them out.
            idempotent.finish(201, {**body, "gift_certificate_codes": []})
        return json_response(body, 201)


@blp.route("/sales/<id:sale_id>")
class SaleItem(MethodView):
    @requires(Permission.take_payments)
    @blp.response(200, schemas.SaleSchema)
    def get(self, clinic_slug: str, sale_id: int) -> Any:
        """Show a bill, what is paid and what is due."""
        return json_response(_sale_body(sales.sale(sale_id)), 200)


@blp.route("/sales/<id:sale_id>/void")
class SaleVoid(MethodView):
    @requires(Permission.take_payments)
    @blp.response(200, schemas.SaleSchema)
    def post(self, clinic_slug: str, sale_id: int) -> Any:
        """Void a bill opened by mistake, before anything is paid on it."""
        bill = sales.void_sale(sales.sale(sale_id))
        return json_response(_sale_body(sales.sale(bill.id)), 200)


@blp.route("/sales/<id:sale_id>/tenders")
class Tenders(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(schemas.TenderInputSchema)
    @blp.response(201, schemas.TenderResultSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, sale_id: int) -> Any:
        """Pay toward a bill: card, card on file, gift certificate, store credit, package
        session, or a financing partner (Cherry, CareCredit) or cash with its reference.

        Accepts an Idempotency-Key header: a retry never pays twice.
        """
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        if len(key) > 120:
            raise Problem(422, "The Idempotency-Key header must be at most 120 characters.")
        tender, payment = sales.add_tender(current_clinic(), sales.sale(sale_id), data, key)
        body = {
            "tender": schemas.TenderSchema().dump(tender),
            "sale": _sale_body(sales.sale(sale_id)),
            "payment": payment,
        }
        return json_response(body, 201)


@blp.route("/gift-certificates/lookup")
class GiftCertificateLookup(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(schemas.GiftCertificateCodeSchema)
    @blp.response(200, schemas.GiftCertificateSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Check a gift certificate's balance by its code (sent in the body, never the URL)."""
        found = sales.gift_certificate(data["code"])
        return {
            "id": found.id,
            "code_hint": found.code_hint,
            "recipient_name": found.recipient_name,
            "active": found.active,
            "amount": {"amount": found.amount_minor, "currency": found.currency},
            "balance": sales.gift_certificate_balance(found).to_dict(),
        }


def _credit_body(credit: Any, balance: Any) -> dict[str, Any]:
    body = schemas.StoreCreditSchema().dump(credit)
    return {**body, "balance": balance.to_dict()}


@blp.route("/clients/<id:client_id>/store-credit")
class ClientStoreCredit(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List a client's store credit with what each has left and when it expires."""
        found = sales.client_store_credit(clients.client(client_id).id)
        items = [_credit_body(c, left) for c, left in found]
        return page(items, args, by("expires_on", "id"))


def _package_body(package: ClientPackage, credit: Any = None) -> dict[str, Any]:
    return {
        "id": package.id,
        "name": package.name,
        "service_id": package.service_id,
        "sessions": package.sessions,
        "sessions_left": sales.package_sessions_left(package),
        "status": package.status,
        "store_credit": _credit_body(credit, sales.store_credit_balance(credit))
        if credit
        else None,
    }


@blp.route("/packages/<id:package_id>")
class PackageItem(MethodView):
    @requires(Permission.take_payments)
    @blp.response(200, schemas.PackageSchema)
    def get(self, clinic_slug: str, package_id: int) -> dict[str, Any]:
        """Show a client's package and the sessions left."""
        return _package_body(sales.client_package(package_id))


@blp.route("/packages/<id:package_id>/closure")
class PackageClosure(MethodView):
    @requires(Permission.approve_refunds)
    @blp.response(200, schemas.PackageSchema)
    def post(self, clinic_slug: str, package_id: int) -> dict[str, Any]:
        """Close a package; its unused part becomes what the clinic's policy says."""
        package = sales.client_package(package_id)
        credit = sales.close_package(current_clinic(), package)
        return _package_body(package, credit)


@blp.route("/sales/<id:sale_id>/lines/<id:line_id>/refund-requests")
class RefundRequests(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(schemas.RefundInputSchema)
    @blp.response(201, schemas.RefundRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, sale_id: int, line_id: int) -> Any:
        """Ask for a refund, return or exchange: the policy decides, with its clause.

        Where the policy needs a manager, the request waits for one. Accepts
        an Idempotency-Key header: a repeated request never refunds twice.
        """
        bill = sales.sale(sale_id)
        if line_id not in {line.id for line in bill.lines}:
            raise Problem(404, "No such line on this bill.")
        key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
        found = sales.request_refund(current_clinic(), line_id, data, key[:120])
        return found


@blp.route("/refund-requests")
class RefundQueue(MethodView):
    @requires(Permission.approve_refunds)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List refund requests waiting for a manager, oldest first."""
        waiting = db.session.scalars(
            select(RefundRequest)
            .where(RefundRequest.status == "awaiting_approval")
            .order_by(RefundRequest.id)
        )
        return page(schemas.RefundRequestSchema(many=True).dump(list(waiting)), args, by_id)


@blp.route("/refund-requests/<id:request_id>/approval")
class RefundApproval(MethodView):
    @requires(Permission.approve_refunds)
    @blp.arguments(schemas.ApprovalSchema)
    @blp.response(200, schemas.RefundRequestSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, request_id: int) -> Any:
        """Approve or refuse a refund request; approving twice refunds once."""
        found = sales.refund_request(request_id)
        decided = sales.decide_refund(current_clinic(), found, data["approve"], _user_id())
        return decided


@blp.route("/membership-plans")
class MembershipPlans(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.MembershipPlanListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List the memberships the clinic offers."""
        found = db.session.scalars(
            select(MembershipPlan).where(MembershipPlan.active).order_by(MembershipPlan.id)
        )
        return page(list(found), args, by_id)

    @requires(Permission.edit_catalog)
    @blp.arguments(schemas.MembershipPlanInputSchema)
    @blp.response(201, schemas.MembershipPlanSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> MembershipPlan:
        """Offer a membership, billed monthly or yearly through the clinic's Stripe account."""
        found = memberships.add_plan(current_clinic(), data)
        return found


@blp.route("/clients/<id:client_id>/memberships")
class ClientMemberships(MethodView):
    @requires(Permission.take_payments)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, schemas.ClientMembershipListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, client_id: int) -> dict[str, Any]:
        """List a client's memberships and where each stands."""
        return page(memberships.client_memberships(clients.client(client_id)), args, by_id)

    @requires(Permission.take_payments)
    @blp.arguments(schemas.EnrolmentSchema)
    @blp.response(201, schemas.ClientMembershipSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, client_id: int) -> ClientMembership:
        """Enrol a client in a membership, billed to their card on file."""
        found = memberships.enrol(
            current_clinic(), clients.client(client_id), memberships.plan(data["plan_id"])
        )
        return found


@blp.route("/memberships/<id:membership_id>/cancellation")
class MembershipCancellation(MethodView):
    @requires(Permission.take_payments)
    @blp.response(200, schemas.ClientMembershipSchema)
    def post(self, clinic_slug: str, membership_id: int) -> ClientMembership:
        """End a membership now; Stripe stops billing it."""
        found = memberships.cancel(current_clinic(), memberships.membership(membership_id))
        return found
