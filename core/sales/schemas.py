"""API schemas for bills, tenders, products, packages, gift certificates, store credit and refunds."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.api import CursorPage
from core.hooks.settings import Amount
from core.sales.models import TenderKind
from core.schemas import Id, UtcDateTime, text

ITEM_KINDS = ("product", "package", "gift_certificate")


class RetailProductInputSchema(Schema):
    sku = fields.String(required=True, validate=text(63))
    name = fields.String(required=True, validate=text(200))
    price = Amount(required=True)
    prescription = fields.Boolean(load_default=False)


class RetailProductSchema(Schema):
    id = fields.Integer()
    sku = fields.String()
    name = fields.String()
    price = fields.Function(lambda p: p.price.to_dict())
    prescription = fields.Boolean()
    active = fields.Boolean()


class RetailProductListSchema(CursorPage):
    items = fields.List(fields.Nested(RetailProductSchema))


class SaleItemSchema(Schema):
    """One thing to sell: a product, a package of sessions, or a gift certificate."""

    kind = fields.String(required=True, validate=validate.OneOf(ITEM_KINDS))
    product_id = Id()
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))
    service_id = Id()
    sessions = fields.Integer(validate=validate.Range(min=1, max=100))
    price = Amount()
    name = fields.String(validate=text(200))
    promotional = fields.Boolean(load_default=False)
    amount = Amount()
    recipient_name = fields.String(validate=text(200))

    @validates_schema
    def _complete(self, data: dict[str, Any], **kwargs: Any) -> None:
        needs = {
            "product": ("product_id",),
            "package": ("service_id", "sessions", "price"),
            "gift_certificate": ("amount",),
        }[data["kind"]]
        missing = {name: ["required for this kind"] for name in needs if data.get(name) is None}
        if missing:
            raise ValidationError(missing)


class SaleInputSchema(Schema):
    booking_id = Id(
        allow_none=True, metadata={"description": "The appointment being settled, once checked in."}
    )
    client_id = Id(allow_none=True)
    items = fields.List(fields.Nested(SaleItemSchema), load_default=list)
    gratuity = Amount(metadata={"description": "Only where the clinic's policy offers it."})


class SaleLineSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    description = fields.String()
    quantity = fields.Integer()
    amount = fields.Function(lambda line: line.amount.to_dict())
    client_package_id = fields.Integer(allow_none=True)
    gift_certificate_id = fields.Integer(allow_none=True)


class TenderSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    amount = fields.Function(lambda t: t.amount.to_dict())
    status = fields.String()
    partner = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)


class SaleSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    client_id = fields.Integer(allow_none=True)
    booking_id = fields.Integer(allow_none=True)
    total = fields.Dict()
    paid = fields.Dict()
    balance_due = fields.Dict()
    lines = fields.List(fields.Nested(SaleLineSchema))
    tenders = fields.List(fields.Nested(TenderSchema))
    paid_at = UtcDateTime(allow_none=True)
    gift_certificate_codes = fields.List(
        fields.String(), metadata={"description": "Shown once, when the bill is opened."}
    )


class TenderInputSchema(Schema):
    kind = fields.Enum(TenderKind, by_value=True, required=True)
    amount = Amount(metadata={"description": "At most the balance due; default: all of it."})
    code = fields.String(validate=text(40), metadata={"description": "A gift certificate's code."})
    store_credit_id = Id()
    client_package_id = Id()
    partner = fields.String(validate=text(32))
    reference = fields.String(validate=text(120))


class TenderResultSchema(Schema):
    tender = fields.Nested(TenderSchema)
    sale = fields.Nested(SaleSchema)
    payment = fields.Dict(allow_none=True, metadata={"description": "For Stripe.js, for a card."})


class GiftCertificateCodeSchema(Schema):
    code = fields.String(required=True, validate=text(40))


class GiftCertificateSchema(Schema):
    id = fields.Integer()
    code_hint = fields.String()
    recipient_name = fields.String(allow_none=True)
    active = fields.Boolean()
    amount = fields.Dict()
    balance = fields.Dict()


class StoreCreditSchema(Schema):
    id = fields.Integer()
    amount = fields.Function(lambda c: {"amount": c.amount_minor, "currency": c.currency})
    balance = fields.Dict()
    reason = fields.String()
    clause = fields.Function(lambda c: {"id": c.clause_id, "text": c.clause_text})
    terms = fields.Function(lambda c: {"id": c.terms_clause_id, "text": c.terms_clause_text})
    expires_on = fields.Date(allow_none=True)
    services_only = fields.Boolean()


class PackageSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    service_id = fields.Integer()
    sessions = fields.Integer()
    sessions_left = fields.Integer()
    status = fields.String()
    store_credit = fields.Dict(allow_none=True)


class RefundInputSchema(Schema):
    reason = fields.String(
        required=True,
        validate=validate.OneOf(
            ["changed_mind", "dissatisfied", "allergic_reaction", "defective", "other"]
        ),
    )
    condition = fields.String(
        validate=validate.OneOf(["unopened", "opened", "defective", "allergic_reaction"])
    )
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100))
    has_receipt = fields.Boolean(load_default=True)
    assessed_by_provider_id = Id(
        metadata={"description": "The provider who assessed a corrective case, where asked."}
    )
    note = fields.String(validate=text(2000))


class RefundRequestSchema(Schema):
    id = fields.Integer()
    sale_line_id = fields.Integer()
    reason = fields.String()
    outcome = fields.String()
    status = fields.String()
    amount = fields.Function(lambda r: r.amount.to_dict())
    clause = fields.Function(lambda r: {"id": r.clause_id, "text": r.clause_text})
    refusal_reason = fields.String(allow_none=True)
    store_credit_id = fields.Integer(allow_none=True)
    stripe_refund_id = fields.String(allow_none=True)
    decided_at = UtcDateTime(allow_none=True)


class ApprovalSchema(Schema):
    approve = fields.Boolean(required=True)


class MembershipPlanInputSchema(Schema):
    name = fields.String(required=True, validate=text(200))
    price = Amount(required=True)
    interval = fields.String(required=True, validate=validate.OneOf(["month", "year"]))
    benefits = fields.String(validate=text(2000))


class MembershipPlanSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    price = fields.Function(lambda p: p.price.to_dict())
    interval = fields.String()
    benefits = fields.String(allow_none=True)
    stripe_plan_id = fields.String(allow_none=True)


class MembershipPlanListSchema(CursorPage):
    items = fields.List(fields.Nested(MembershipPlanSchema))


class EnrolmentSchema(Schema):
    plan_id = Id(required=True)


class ClientMembershipSchema(Schema):
    id = fields.Integer()
    client_id = fields.Integer()
    plan_id = fields.Integer()
    status = fields.String()
    stripe_subscription_id = fields.String(allow_none=True)
    current_period_end = UtcDateTime(allow_none=True)
    canceled_at = UtcDateTime(allow_none=True)


class ClientMembershipListSchema(CursorPage):
    items = fields.List(fields.Nested(ClientMembershipSchema))
