"""Memberships: a recurring price billed by a Stripe subscription on the clinic's account.

Stripe bills each period and says how it went; the platform follows what
Stripe says (the subscription is fetched again on every event, so events
arriving out of order cannot leave an old status behind) and records each
paid invoice in the ledger once.
"""

from __future__ import annotations

from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import clock, ledger
from core.clients.models import Client
from core.errors import NotFound, Refused, UpstreamFailed, field_error
from core.extensions import db
from core.ledger import LedgerKind
from core.money import Money
from core.payments import handlers as payment_handlers
from core.payments import services as payments
from core.payments import stripe_api
from core.sales.models import ClientMembership, MembershipPlan
from core.tenancy.models import Clinic
from core.unit_of_work import no_open_unit, transaction, unit_of_work

#: Statuses in which a client is a member, or is becoming one.
CURRENT = ("incomplete", "active", "past_due", "trialing")


@transaction
def add_plan(clinic: Clinic, data: dict[str, Any]) -> MembershipPlan:
    """Offer a membership: the plan is made on the clinic's Stripe account, once."""
    price = Money.parse(data["price"], clinic.currency)
    plan = MembershipPlan(
        name=data["name"],
        amount_minor=price.minor,
        currency=price.currency,
        interval=data["interval"],
        benefits=data.get("benefits"),
    )
    db.session.add(plan)
    db.session.flush()
    created = stripe_api.client().v1.plans.create(
        {
            "amount": price.minor,
            "currency": price.currency.lower(),
            "interval": plan.interval,
            "product": {"name": plan.name},
            "metadata": {"membership_plan_id": str(plan.id)},
        },
        stripe_api.on(clinic, f"membership-plan:{plan.id}"),
    )
    plan.stripe_plan_id = created.id
    return plan


def plan(plan_id: int) -> MembershipPlan:
    found = db.session.get(MembershipPlan, plan_id)
    if found is None or not found.active:
        raise NotFound("No such membership plan.", errors=[field_error("plan_id", "no such plan")])
    return found


def membership(membership_id: int) -> ClientMembership:
    found = db.session.get(ClientMembership, membership_id)
    if found is None:
        raise NotFound("No such membership.")
    return found


def client_memberships(client: Client) -> list[ClientMembership]:
    """Return the client's memberships, oldest first."""
    return list(
        db.session.scalars(
            select(ClientMembership)
            .where(ClientMembership.client_id == client.id)
            .order_by(ClientMembership.id)
        )
    )


def enrol(clinic: Clinic, client: Client, chosen: MembershipPlan) -> ClientMembership:
    """Start a client's membership, billed to their card on file from today."""
    if not (client.stripe_customer_id and client.stripe_payment_method_id):
        raise Refused(
            "A membership is billed to the client's card on file; save a card first.",
            kind="no-card-on-file",
        )
    # Committed before Stripe is asked; an enrolment Stripe never answered is resumed
    # under the same keys, so Stripe gives back the subscription it may have made.
    with unit_of_work():
        stripe_api.charging_account(clinic)
        # The client's row is locked first, so two enrolments at once make one membership.
        db.session.execute(
            update(Client)
            .where(Client.id == client.id)
            .values(updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        member = db.session.scalar(
            select(ClientMembership).where(
                ClientMembership.client_id == client.id,
                ClientMembership.plan_id == chosen.id,
                ClientMembership.status.in_(CURRENT),
            )
        )
        if member is not None and member.stripe_subscription_id:
            raise Refused(
                "The client already has this membership.",
                kind="already-a-member",
                membership=member.id,
            )
        if member is None:
            member = ClientMembership(client_id=client.id, plan_id=chosen.id)
            db.session.add(member)
    no_open_unit("starting a membership")
    api = stripe_api.client()
    try:
        api.v1.customers.update(
            client.stripe_customer_id,
            {"invoice_settings": {"default_payment_method": client.stripe_payment_method_id}},
            stripe_api.on(clinic, f"membership-card:{member.id}"),
        )
        subscription = api.v1.subscriptions.create(
            {
                "customer": client.stripe_customer_id,
                "items": [{"plan": chosen.stripe_plan_id}],
                "metadata": {"membership_id": str(member.id)},
            },
            stripe_api.on(clinic, f"membership:{member.id}"),
        )
    except stripe.StripeError as error:
        raise UpstreamFailed(
            f"Stripe did not start the membership ({error.user_message or 'no answer'}); "
            "try again.",
            kind="stripe-error",
        ) from None
    with unit_of_work():
        member.stripe_subscription_id = subscription.id
        _follow(member, subscription)
    return member


@transaction
def cancel(clinic: Clinic, member: ClientMembership) -> ClientMembership:
    """End a membership now; Stripe stops billing it."""
    if member.status not in CURRENT:
        return member
    if member.stripe_subscription_id:
        subscription = stripe_api.client().v1.subscriptions.cancel(
            member.stripe_subscription_id, options=stripe_api.on(clinic)
        )
        _follow(member, subscription)
    member.status = "canceled"
    member.canceled_at = member.canceled_at or clock.now()
    return member


def _follow(member: ClientMembership, subscription: Any) -> None:
    """Take Stripe's word on the membership, except to bring a cancelled one back.

    A cancelled subscription never starts again at Stripe, so a status read before
    the cancellation (a webhook's, answered late) must not undo it.
    """
    if member.status == "canceled" and subscription.status != "canceled":
        return
    member.status = subscription.status
    end = getattr(subscription, "current_period_end", None)
    if isinstance(end, int):
        member.current_period_end = clock.from_timestamp(end)
    if subscription.status == "canceled" and member.canceled_at is None:
        member.canceled_at = clock.now()


def apply_event(clinic: Clinic, kind: str, obj: dict[str, Any]) -> str:
    """Apply a subscription or invoice event to the membership it bills (payments routes them)."""
    subscription_id = obj.get("id") if kind.startswith("customer.subscription.") else None
    subscription_id = subscription_id or obj.get("subscription")
    if not isinstance(subscription_id, str):
        return "not a membership"
    member = db.session.scalar(
        select(ClientMembership)
        .where(ClientMembership.stripe_subscription_id == subscription_id)
        .with_for_update()
    )
    if member is None:
        return "not a membership of this clinic"
    account = stripe_api.account_of(clinic)
    try:
        subscription = stripe_api.retrieve("subscriptions", subscription_id, account)
    except stripe.InvalidRequestError:
        return "subscription not found on the account"
    _follow(member, subscription)
    outcome = f"membership {member.status}"
    if kind == "invoice.payment_succeeded" and isinstance(obj.get("id"), str):
        invoice = stripe_api.retrieve("invoices", obj["id"], account)
        if invoice.status == "paid" and _paid_once(member, invoice):
            outcome += ", invoice recorded"
    elif kind == "invoice.payment_failed":
        payments.alert_clinic(
            clinic,
            f"membership-unpaid:{obj.get('id')}",
            f"A membership payment failed (membership {member.id})",
            "Stripe could not charge the client's card for their membership and will retry; "
            "ask the client to update their card.",
        )
    return outcome


def _paid_once(member: ClientMembership, invoice: Any) -> bool:
    try:
        with db.session.begin_nested():
            ledger.record(
                LedgerKind.membership_payment,
                Money(invoice.amount_paid, invoice.currency.upper()),
                client_id=member.client_id,
                reference=invoice.id,
                account=f"membership:{member.id}",
                membership=member.id,
            )
    except IntegrityError:
        return False  # recorded already: the database allows one per invoice
    return True


# Payments routes Stripe's subscription and invoice events here.
payment_handlers.register(membership_event=apply_event)
