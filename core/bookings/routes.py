"""HTTP API for availability, bookings and their transitions, and clients' self-service links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import stripe
from flask import current_app, request, url_for
from flask.views import MethodView
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import SQLAlchemyError

from core.accounts.access import (
    Permission,
    current_clinic,
    current_principal,
    public,
    public_while_closed,
    requires,
)
from core.api import Blueprint, json_response, keyset_page, position
from core.bookings import availability, links
from core.bookings import services as bookings
from core.bookings.models import Booking, BookingStatus, ChargeStatus
from core.bookings.schemas import (
    AvailabilityArgs,
    BookingListSchema,
    BookingQueryArgs,
    BookingSchema,
    CancelSchema,
    ConfirmSchema,
    DecisionSchema,
    LateArrivalSchema,
    OnlineBookingResultSchema,
    OnlineBookingSchema,
    OwnBookingSchema,
    OwnDecisionSchema,
    RescheduleSchema,
    SlotListSchema,
    StaffBookingSchema,
    TurnedAwaySchema,
)
from core.catalog import services as catalog
from core.errors import DomainError, Problem
from core.extensions import db
from core.idempotency import Idempotent, StoredAnswer
from core.payments import services as payments
from core.privacy.routes import carry_gpc
from core.sales import services as sales
from core.unit_of_work import unit_of_work

blp = Blueprint(
    "bookings",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>",
    description="Availability, bookings and their lifecycle.",
)
self_service = Blueprint(
    "self_service",
    __name__,
    url_prefix="/api/v1/clinics/<clinic_slug>/self-service/<token>",
    description="A client's own booking, through the signed link they were sent.",
)


# Built once: a schema's construction costs about as much as the dump of a new booking.
_BOOKING_SCHEMA = BookingSchema()
_ONLINE_RESULT_SCHEMA = OnlineBookingResultSchema()


def _user_id() -> int | None:
    principal = current_principal()
    return principal.user.id


@blp.route("/availability")
class Availability(MethodView):
    @public
    @blp.arguments(AvailabilityArgs, location="query")
    @blp.response(200, SlotListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> Any:
        """List bookable start times for a service between two local dates (inclusive)."""
        service = catalog.kept_service(args["service_id"])
        if not service.active or not service.online_bookable:
            raise Problem(404, "No such service is bookable online.")
        found = availability.slots(
            current_clinic(),
            service,
            args["start"],
            args["end"],
            location_id=args.get("location_id"),
            provider_id=args.get("provider_id"),
        )
        # Built by hand, not by the schema: thousands of starts per fortnight.
        return json_response(
            {
                "duration_minutes": service.duration_minutes,
                "items": [
                    {
                        "provider_id": day.provider_id,
                        "provider_name": day.provider_name,
                        "location_id": day.location_id,
                        "date": day.date.isoformat(),
                        "starts": day.starts,
                    }
                    for day in found
                ],
                "count": sum(len(day.starts) for day in found),
            },
            200,
        )


def _online_result(booking: Booking) -> dict[str, Any]:
    from core.bookings.models import PolicyVersion

    version = db.session.get(PolicyVersion, booking.policy_version_id)
    return {
        "booking": booking,
        "self_service_token": links.token_for(booking),
        "policy": version.clauses,
    }


def _payment_step(clinic: Any, booking: Booking, token: str) -> dict[str, Any]:
    """Start paying what a new online booking owes up front; say how to retry if that fails.

    Returns ``{"payment": ...}`` (what Stripe.js needs), ``{"payment_retry": ...}`` when the
    payment could not be started, or ``{}`` when nothing is owed. Called after the booking
    is committed: the booking stands, held, whatever happens here.
    """
    owes = any(
        c.kind in payments.PAID_UP_FRONT and c.status == ChargeStatus.owed for c in booking.charges
    )
    if booking.status != BookingStatus.held or not owes or not clinic.stripe_account_id:
        return {}
    try:
        return {"payment": payments.deposit_payment(clinic, booking)}
    except (DomainError, Problem, stripe.StripeError, SQLAlchemyError) as error:
        current_app.logger.warning(
            "could not start the deposit of booking %s: %r", booking.id, error
        )
        detail = (
            error.detail
            if isinstance(error, DomainError | Problem) and error.detail
            else "The deposit could not be started just now; your booking is held."
        )
        return {
            "payment_retry": {
                "detail": detail,
                "method": "POST",
                "href": url_for(
                    "self_service.OwnDepositPayment",
                    clinic_slug=clinic.slug,
                    token=token,
                    _external=False,
                ),
                "retry_after": 5,
            }
        }


@blp.route("/bookings/online")
class OnlineBookings(MethodView):
    @public
    @blp.arguments(OnlineBookingSchema)
    @blp.response(201, OnlineBookingResultSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Book online as a guest. Accepts an Idempotency-Key header: a retry returns the first result.

        The answer carries the deposit's payment step (``payment``), or, when it could not be
        started, how to retry it (``payment_retry``); a retry with the same key tries again.
        """
        idempotent = Idempotent("bookings.online", data)
        replay = idempotent.claim_answer()
        clinic = current_clinic()
        if replay is not None:
            return _online_replay(clinic, idempotent, replay)
        with unit_of_work():  # the booking and the answer to a retry commit together
            client = bookings.guest_client(data["client"])
            carry_gpc(client)
            booking = bookings.book(
                clinic,
                client=client,
                service_id=data["service_id"],
                location_id=data["location_id"],
                provider_id=data.get("provider_id"),
                starts_at=data["starts_at"],
                online=True,
            )
            if data["accept_policy"]:
                _accept_policy(booking, "online")
            body = _ONLINE_RESULT_SCHEMA.dump(_online_result(booking))
            idempotent.finish(201, body)
        # After the commit: no call to Stripe is made while the calendar is locked.
        step = _payment_step(clinic, booking, body["self_service_token"])
        if step:
            body = {**body, "payment_retry": None, **step}
            idempotent.finish(201, body)  # a retry replays the payment step too
        return json_response(body, 201)


def _accept_policy(booking: Booking, channel: str) -> None:
    """Record that the client accepted every clause of the booking's policy, from this request.

    A policy with no clauses to show has nothing to accept, and nothing is recorded.
    """
    bookings.accept_whole_policy(
        booking,
        ip_address=request.remote_addr,
        user_agent=request.headers.get("User-Agent"),
        channel=channel,
    )


def _online_replay(clinic: Any, idempotent: Idempotent, replay: StoredAnswer) -> Any:
    """Answer a repeated online booking: the first answer, with its payment step if it lacked one."""
    body = replay.body
    if replay.status == 201 and not body.get("payment"):
        booking = bookings.booking(body["booking"]["id"])
        step = _payment_step(clinic, booking, body["self_service_token"])
        if "payment" in step:
            body = {**body, "payment_retry": None, **step}
            idempotent.refresh(body)
        elif step:
            body = {**body, **step}
    return idempotent.replayed(replay.status, body)


def _booking_position(booking: Booking) -> tuple[datetime, int]:
    return booking.starts_at, booking.id


@blp.route("/bookings")
class Bookings(MethodView):
    @requires(Permission.view_bookings)
    @blp.arguments(BookingQueryArgs, location="query")
    @blp.response(200, BookingListSchema)
    def get(self, args: dict[str, Any], clinic_slug: str) -> dict[str, Any]:
        """List bookings (the day's schedule, a provider's week, a client's history).

        By start, then id; `has_more` says another page follows, `next_after` asks for it.
        """
        limit = args.pop("limit")
        if "after" in args:
            args["after"] = position(args["after"], (datetime, int))
        found = bookings.bookings(limit=limit + 1, **args)
        return keyset_page(found, limit, _booking_position)

    @requires(Permission.manage_bookings)
    @blp.arguments(StaffBookingSchema)
    @blp.response(201, BookingSchema)
    def post(self, data: dict[str, Any], clinic_slug: str) -> Any:
        """Book for a client, as staff. Accepts an Idempotency-Key header."""
        idempotent = Idempotent("bookings.staff", data)
        replay = idempotent.claim()
        if replay is not None:
            return replay
        with unit_of_work():  # the booking and the answer to a retry commit together
            booking = bookings.book(
                current_clinic(),
                client=data["client_id"],
                service_id=data["service_id"],
                location_id=data["location_id"],
                provider_id=data.get("provider_id"),
                starts_at=data["starts_at"],
                online=False,
                actor_user_id=_user_id(),
            )
            body = _BOOKING_SCHEMA.dump(booking)
            idempotent.finish(201, body)
        return json_response(body, 201)


@blp.route("/bookings/<id:booking_id>")
class BookingItem(MethodView):
    @requires(Permission.view_bookings)
    @blp.response(200, BookingSchema)
    def get(self, clinic_slug: str, booking_id: int) -> Booking:
        """Show a booking with its charges and every transition, each with its clause."""
        return bookings.booking(booking_id)


def _decision(decision: Any, booking: Booking) -> dict[str, Any]:
    return {"decision": bookings.as_record(decision), "booking": booking}


@blp.route("/bookings/<id:booking_id>/confirmation")
class Confirmation(MethodView):
    @requires(Permission.manage_bookings)
    @blp.arguments(ConfirmSchema)
    @blp.response(200, BookingSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, booking_id: int) -> Booking:
        """Confirm a held booking once its guarantee is in.

        A gift certificate guarantees only with its code, and only while it has a balance.
        """
        booking = bookings.booking(booking_id)
        if data["method"] == "gift_certificate":
            return sales.confirm_with_gift_certificate(
                current_clinic(), booking, data.get("gift_certificate_code") or "", _user_id()
            )
        return bookings.confirm(current_clinic(), booking, data["method"], _user_id())


@blp.route("/bookings/<id:booking_id>/cancellation-preview")
class CancellationPreview(MethodView):
    @requires(Permission.view_bookings)
    @blp.arguments(CancelSchema, location="query")
    @blp.response(200, DecisionSchema)
    def get(self, args: dict[str, Any], clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Say what cancelling now would cost, without cancelling."""
        booking = bookings.booking(booking_id)
        return _decision(
            bookings.preview_cancellation(current_clinic(), booking, args["by"]), booking
        )


@blp.route("/bookings/<id:booking_id>/cancellation")
class Cancellation(MethodView):
    @requires(Permission.manage_bookings)
    @blp.arguments(CancelSchema)
    @blp.response(200, DecisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Cancel for the client or by the clinic; the policy decides the fee and the deposit."""
        booking = bookings.booking(booking_id)
        decision = bookings.cancel(
            current_clinic(), booking, by=data["by"], actor_user_id=_user_id()
        )
        return _decision(decision, booking)


@blp.route("/bookings/<id:booking_id>/reschedule")
class Reschedule(MethodView):
    @requires(Permission.manage_bookings)
    @blp.arguments(RescheduleSchema)
    @blp.response(200, DecisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Move a booking to a new time under the clinic's policy."""
        booking = bookings.booking(booking_id)
        decision = bookings.reschedule(
            current_clinic(),
            booking,
            data["starts_at"],
            by="staff",
            actor_user_id=_user_id(),
            provider_id=data.get("provider_id"),
            online=False,
        )
        return _decision(decision, booking)


@blp.route("/bookings/<id:booking_id>/check-in")
class CheckIn(MethodView):
    @requires(Permission.manage_bookings)
    @blp.response(200, DecisionSchema)
    def post(self, clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Check the client in; a late client gets the policy's options instead."""
        booking = bookings.booking(booking_id)
        decision = bookings.check_in(current_clinic(), booking, _user_id())
        return _decision(decision, booking)


@blp.route("/bookings/<id:booking_id>/late-arrival")
class LateArrival(MethodView):
    @requires(Permission.manage_bookings)
    @blp.arguments(LateArrivalSchema)
    @blp.response(200, DecisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Carry out the option a late client chose (shorten at full price, or reschedule)."""
        booking = bookings.booking(booking_id)
        decision = bookings.resolve_late_arrival(
            current_clinic(), booking, data["option"], _user_id(), data.get("new_starts_at")
        )
        return _decision(decision, booking)


@blp.route("/bookings/<id:booking_id>/turned-away")
class TurnedAway(MethodView):
    @requires(Permission.manage_bookings)
    @blp.arguments(TurnedAwaySchema)
    @blp.response(200, DecisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Reschedule a client who came with children or pets, as the clinic's policy says."""
        booking = bookings.booking(booking_id)
        decision = bookings.turn_away(
            current_clinic(), booking, data["reason"], data["new_starts_at"], _user_id()
        )
        return _decision(decision, booking)


@blp.route("/bookings/<id:booking_id>/completion")
class Completion(MethodView):
    @requires(Permission.manage_bookings)
    @blp.response(200, BookingSchema)
    def post(self, clinic_slug: str, booking_id: int) -> Booking:
        """Mark the treatment done."""
        booking = bookings.complete(bookings.booking(booking_id), _user_id())
        return booking


@blp.route("/bookings/<id:booking_id>/no-show")
class NoShow(MethodView):
    @requires(Permission.manage_bookings)
    @blp.response(200, DecisionSchema)
    def post(self, clinic_slug: str, booking_id: int) -> dict[str, Any]:
        """Record that the client did not come; the policy decides the fee."""
        booking = bookings.booking(booking_id)
        decision = bookings.mark_no_show(current_clinic(), booking, _user_id())
        return _decision(decision, booking)


# --- self-service ---------------------------------------------------------------------------


def _own_booking(token: str) -> Booking:
    return links.booking_for(token, current_clinic().id)


@self_service.route("")
class OwnBooking(MethodView):
    @public_while_closed
    @self_service.response(200, OwnBookingSchema)
    def get(self, clinic_slug: str, token: str) -> Booking:
        """Show my booking."""
        booking = _own_booking(token)
        carry_gpc(booking.client)
        return booking


@self_service.route("/cancellation-preview")
class OwnCancellationPreview(MethodView):
    @public_while_closed
    @self_service.response(200, OwnDecisionSchema)
    def get(self, clinic_slug: str, token: str) -> dict[str, Any]:
        """What happens if I cancel now? The policy's answer, without cancelling."""
        booking = _own_booking(token)
        return _decision(
            bookings.preview_cancellation(current_clinic(), booking, "client"), booking
        )


@self_service.route("/cancellation")
class OwnCancellation(MethodView):
    @public_while_closed
    @self_service.response(200, OwnDecisionSchema)
    def post(self, clinic_slug: str, token: str) -> dict[str, Any]:
        """Cancel my booking; the response says what it cost and why."""
        booking = _own_booking(token)
        decision = bookings.cancel(current_clinic(), booking, by="client", actor_user_id=None)
        return _decision(decision, booking)


@self_service.route("/deposit-payment")
class OwnDepositPayment(MethodView):
    @public
    @self_service.response(200)
    def post(self, clinic_slug: str, token: str) -> dict[str, Any]:
        """Pay what my booking owes up front: what Stripe.js needs, the same on every call."""
        result = payments.deposit_payment(current_clinic(), _own_booking(token))
        return result


class CardSetupSchema(Schema):
    accept_policy = fields.Boolean(
        required=True,
        validate=validate.Equal(True, error="The clinic's policy must be accepted."),
        metadata={"description": "The client accepts the policy their booking shows."},
    )


@self_service.route("/card-setup")
class OwnCardSetup(MethodView):
    @public
    @self_service.arguments(CardSetupSchema)
    @self_service.response(200)
    def post(self, data: dict[str, Any], clinic_slug: str, token: str) -> dict[str, Any]:
        """Save my card to guarantee my booking, accepting the clinic's policy.

        The acceptance (the booking's policy clauses, the time, address and browser) is
        recorded with the booking once the card's setup has started.
        """
        booking = _own_booking(token)
        with unit_of_work():  # the setup's agreement and the acceptance commit together
            result = payments.card_setup(current_clinic(), booking)
            _accept_policy(booking, "self_service")
        return result


@self_service.route("/payments/<id:payment_id>")
class OwnPaymentApproval(MethodView):
    @public
    @self_service.response(200)
    def post(self, clinic_slug: str, token: str, payment_id: int) -> dict[str, Any]:
        """Approve a fee my bank wants me to confirm myself: what Stripe.js needs."""
        return payments.payment_to_approve(current_clinic(), _own_booking(token), payment_id)


@self_service.route("/reschedule")
class OwnReschedule(MethodView):
    @public
    @self_service.arguments(RescheduleSchema)
    @self_service.response(200, OwnDecisionSchema)
    def post(self, data: dict[str, Any], clinic_slug: str, token: str) -> dict[str, Any]:
        """Move my booking to another available time."""
        booking = _own_booking(token)
        decision = bookings.reschedule(
            current_clinic(),
            booking,
            data["starts_at"],
            by="client",
            actor_user_id=None,
            provider_id=data.get("provider_id"),
            online=True,
        )
        return _decision(decision, booking)
