"""The pages where a clinic's clients book, pay up front and manage their visit, in a browser.

Server-rendered, one step per page: the menu, the times, the client's details
with the clinic's policy, the card step (Stripe.js, the only script), then the
visit's own page behind its signed link. Every rule comes from the services the
API uses: these views parse a form, call a service and render.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask_wtf.csrf import generate_csrf, validate_csrf
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse
from wtforms.validators import ValidationError as CsrfRefused

from core import clock
from core.accounts.access import current_clinic, public, public_while_closed
from core.bookings import availability, links
from core.bookings import services as bookings
from core.bookings.calendar import calendar_file
from core.bookings.models import Booking, BookingStatus, PolicyVersion
from core.bookings.schemas import GuestSchema
from core.bookings.settings import booking_settings
from core.catalog import services as catalog
from core.clients.models import Client
from core.errors import (
    DomainError,
    Invalid,
    NotFound,
    Problem,
    Refused,
    as_problem,
    field_error,
    field_errors_from_marshmallow,
    problem_response,
)
from core.extensions import db
from core.hooks.decisions import BookingRequirements, Guarantee
from core.money import Money
from core.payments import services as payments
from core.privacy.routes import carry_gpc
from core.sales import services as sales
from core.schedules import services as schedules
from core.unit_of_work import unit_of_work

pages = Blueprint(
    "client_pages",
    __name__,
    url_prefix="/book/<clinic_slug>",
    template_folder="templates",
)
#: The pages' stylesheet and script, the same for every clinic.
STATIC = Path(__file__).parent / "static"

#: Days of start times shown at once.
DAYS_SHOWN = 14
#: What a client whose hold ran out while paying is told; nothing is asked of the card after it.
LAPSED = "This time was held for you while you paid, and the hold has run out: nothing was charged."
#: An adult booking a week ahead: whom the menu's "asked up front" describes.
_TYPICAL_AGE_YEARS = 30


# --- helpers ---------------------------------------------------------------------------------


def _locale() -> str:
    """The clinic's locale for money and dates: English, as written in the clinic's country."""
    return current_clinic().locale


@functools.lru_cache(maxsize=4096)
def _clock_label(hour: int, minute: int, locale: str) -> str:
    # A fortnight of times repeats a few dozen clock times: each is written by Babel once.
    return format_time(time(hour, minute), "h:mm a", locale=locale)


@pages.app_template_filter("when")
def _when(moment: Any, form: str = "full") -> str:
    """A local time or a day as the clinic's clients read it (Babel, the clinic's locale).

    An instant (a time something was signed, say) is shown in the clinic's zone.
    """
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(_zone())
    if form == "day":
        return format_date(moment, "EEEE d MMMM", locale=_locale())
    if form == "time":
        return _clock_label(moment.hour, moment.minute, _locale())
    return format_datetime(moment, "EEEE d MMMM y, h:mm a", locale=_locale())


@pages.app_template_filter("money")
def _money(amount: Money) -> str:
    return amount.format(_locale())


def _zone() -> ZoneInfo:
    return ZoneInfo(current_clinic().timezone)


def _local(moment: datetime) -> datetime:
    return clock.as_utc(moment).astimezone(_zone())


def _typical_client() -> Client:
    """A stand-in adult, never stored: what most clients booking online are."""
    today = clock.now().astimezone(_zone()).date()
    return Client(
        legal_first_name="",
        legal_last_name="",
        date_of_birth=today.replace(year=today.year - _TYPICAL_AGE_YEARS, day=1),
    )


def _asked_up_front(requirements: BookingRequirements) -> str:
    """Say in a few words what the clinic asks before the visit."""
    if requirements.prepayment:
        return f"Paid in full when you book: {_money(requirements.prepayment)}"
    if requirements.deposit:
        return f"Deposit when you book: {_money(requirements.deposit)}"
    if requirements.guarantee != Guarantee.none:
        return "A card on file holds your booking; nothing is charged now"
    return "Nothing to pay when you book"


def _requirements(service: Any, starts_at: datetime, client: Client | None = None) -> Any:
    return bookings.requirements_for(
        current_clinic(), service, client or _typical_client(), starts_at
    )


@pages.before_request
def _forms_carry_their_token() -> None:
    """Refuse any form posted to these pages without this site's CSRF token: one check for all."""
    if request.method != "POST":
        return
    try:
        # Forms send it as a field; the card step's script sends it as a header.
        validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
    except CsrfRefused as error:
        abort(400, description=f"The form expired or was not sent from this site ({error}).")


#: The session key under which each clinic's opened visit link is kept.
_LINKS = "visit_links"


def _visit() -> Booking:
    """The booking whose link this browser opened at this clinic (kept in the session cookie).

    The link's token is in the address only once, when the email's link is
    opened: from then on it rides in the signed, HttpOnly session cookie, so it
    is in no later address, browser history entry or log line.
    """
    token = (session.get(_LINKS) or {}).get(current_clinic().slug)
    if not isinstance(token, str):
        raise NotFound(
            "Open the link in your booking email to see your booking.", kind="no-visit-link"
        )
    return links.booking_for(token, current_clinic().id)


def _remember(booking: Booking) -> None:
    """Keep the booking's link in the session: this browser now manages that visit."""
    kept = dict(session.get(_LINKS) or {})
    kept[current_clinic().slug] = links.token_for(booking)
    session[_LINKS] = kept


def _refused_on_visit(booking: Booking, error: DomainError | Problem) -> Response:
    """The visit's page again, saying why what was asked could not be done."""
    return _page(
        "visit.html",
        status=409,
        title="Your booking",
        **_visit_context(booking),
        notice=_problem_text(error),
    )


def _page(template: str, status: int = 200, **context: Any) -> Response:
    # An error page for an address naming no clinic of the instance has no clinic to wear.
    clinic = g.get("clinic") if template == "error.html" else current_clinic()
    body = render_template(
        f"client_pages/{template}",
        clinic=clinic,
        lapsed_text=LAPSED,
        has_logo=bool(clinic and booking_settings(clinic)["logo"]),
        csrf_token=generate_csrf(),
        stripe_js_url=current_app.config.get("STRIPE_JS_URL") or "https://js.stripe.com/v3/",
        **context,
    )
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = page_csp()
    if "/visit/" in request.path:
        # A visit's pages hold the client's details (and, in the intake, health answers).
        response.headers["Cache-Control"] = "no-store"
    return response


def page_csp() -> str:
    """The pages' Content-Security-Policy: the app itself, and Stripe's script and frames only."""
    stripe_js = current_app.config.get("STRIPE_JS_URL") or "https://js.stripe.com/v3/"
    origin = "/".join(stripe_js.split("/")[:3])
    return (
        "default-src 'self'; "
        f"script-src 'self' {origin}; "
        f"frame-src {origin} https://hooks.stripe.com; "
        f"connect-src 'self' {origin} https://api.stripe.com; "
        "img-src 'self' data:; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


def _problem_text(error: DomainError | Problem) -> str:
    problem = error if isinstance(error, Problem) else as_problem(error)
    return problem.detail or problem.title


@pages.get("/static/<path:filename>")
@public_while_closed
def static(clinic_slug: str, filename: str) -> Response:
    """The pages' stylesheet and script (Flask's own static view takes no clinic in its URL)."""
    return send_from_directory(STATIC, filename, max_age=3600)


@pages.get("/logo")
@public_while_closed
def logo(clinic_slug: str) -> Response:
    """The clinic's logo, from the file its tenants/ file names (404 when it names none)."""
    name = booking_settings(current_clinic())["logo"]
    if not name:
        abort(404)
    return send_from_directory(current_app.config["TENANTS_DIR"], name, max_age=3600)


@pages.get("/brand.css")
@public_while_closed
def brand(clinic_slug: str) -> Response:
    """The clinic's colour for its pages, from its tenants/ file (checked readable there)."""
    colour = booking_settings(current_clinic())["page_colour"]
    response = Response(f":root {{ --accent: {colour}; }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# --- the menu ----------------------------------------------------------------------------------


@pages.get("/")
@public
def menu(clinic_slug: str) -> Response:
    """The clinic's online menu by category, with what each service asks up front."""
    clinic = current_clinic()
    week_ahead = (clock.now() + timedelta(days=7)).astimezone(_zone()).replace(hour=10, minute=0)
    typical = _typical_client()  # one stand-in for the whole menu
    grouped: dict[str, list[dict[str, Any]]] = {}
    for service in catalog.services(online_only=True):
        grouped.setdefault(service.category, []).append(
            {
                "service": service,
                "price": _money(Money(service.price_minor, service.currency)),
                "asked": _asked_up_front(_requirements(service, week_ahead, typical)),
            }
        )
    return _page("menu.html", categories=sorted(grouped.items()), title=clinic.name)


# --- the times ---------------------------------------------------------------------------------


def _offered_service(service_id: int) -> Any:
    try:
        service = catalog.kept_service(service_id)
    except DomainError:
        abort(404)
    if not service.active or not service.online_bookable:
        abort(404)
    return service


def _times_context(service: Any, location_id: int | None, provider_id: int | None) -> dict:
    """Fourteen days of start times from ``?from=`` (today by default), for one service."""
    locations, performing = catalog.kept_places_and_people(service.id)
    if not locations:
        abort(404)
    location_id = location_id or locations[0].id
    today = clock.now().astimezone(_zone()).date()
    first = request.args.get("from", type=date.fromisoformat) or today
    first = max(first, today)
    last = first + timedelta(days=DAYS_SHOWN - 1)
    found = availability.slots(
        current_clinic(), service, first, last, location_id=location_id, provider_id=provider_id
    )
    by_day: dict[date, list[str]] = {}
    for found_day in found:
        by_day.setdefault(found_day.date, []).extend(found_day.starts)
    days = []
    for offset in range(DAYS_SHOWN):
        day = first + timedelta(days=offset)
        starts = sorted(set(by_day.get(day, [])))
        days.append(
            {"date": day, "starts": [(start, datetime.fromisoformat(start)) for start in starts]}
        )
    return {
        "service": service,
        "locations": locations,
        "location_id": location_id,
        "providers": [p for p in schedules.providers(active_only=True) if p.id in performing],
        "provider_id": provider_id,
        "days": days,
        "next_free": next((d["date"] for d in days if d["starts"]), None),
        "later": last + timedelta(days=1),
    }


@pages.get("/services/<int:service_id>")
@public
def times(clinic_slug: str, service_id: int) -> Response:
    """Fourteen days of start times in the clinic's local time, with the next free day when full."""
    service = _offered_service(service_id)
    context = _times_context(
        service, request.args.get("location", type=int), request.args.get("provider", type=int)
    )

    # One address built, hundreds of times linked: each link only adds its start.
    details = url_for(".details", clinic_slug=clinic_slug, service_id=service.id)
    chosen = urlencode(
        {"location": context["location_id"], "provider": context["provider_id"] or ""}
    )

    def time_link(value: str) -> str:
        return f"{details}?starts_at={quote_plus(value, safe=':')}&{chosen}"

    return _page(
        "times.html", title=f"{service.name}: choose a time", time_link=time_link, **context
    )


# --- the client's details, and the clinic's policy ---------------------------------------------


def _chosen(service_id: int) -> tuple[Any, int, int | None, datetime]:
    service = _offered_service(service_id)
    source = request.form if request.method == "POST" else request.args
    try:
        starts_at = datetime.fromisoformat(source.get("starts_at", ""))
        location_id = int(source.get("location", ""))
    except ValueError:
        abort(400, description="Choose a time from the list.")
    if starts_at.tzinfo is None:
        abort(400, description="Choose a time from the list.")
    provider = source.get("provider") or None
    return service, location_id, int(provider) if provider else None, starts_at


@pages.route("/services/<int:service_id>/details", methods=["GET", "POST"])
@public
def details(clinic_slug: str, service_id: int) -> BaseResponse:
    """The client's details and the clinic's policy for this booking, accepted before paying."""
    service, location_id, provider_id, starts_at = _chosen(service_id)
    errors: list[dict[str, str]] = []
    values: dict[str, str] = {}
    if request.method == "POST":
        values = {k: request.form.get(k, "").strip() for k in GuestSchema().fields}
        try:
            guest = GuestSchema().load({k: v for k, v in values.items() if v})
        except ValidationError as error:
            errors = field_errors_from_marshmallow(error.messages)
        if request.form.get("accept_policy") != "yes":
            errors.append(
                {"field": "accept_policy", "detail": "Accept the clinic's policy to book."}
            )
        if not errors:
            try:
                booking = _book(service, location_id, provider_id, starts_at, guest)
            except (DomainError, Problem) as error:
                errors = [{"field": "", "detail": _problem_text(error)}]
            else:
                _remember(booking)
                if booking.status == BookingStatus.held:
                    return redirect(url_for(".pay", clinic_slug=clinic_slug), 303)
                return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)
    requirements = _requirements(service, starts_at)
    return _page(
        "details.html",
        status=422 if errors else 200,
        title=f"{service.name}: your details",
        service=service,
        starts_at=starts_at,
        local_start=_local(starts_at),
        location_id=location_id,
        provider_id=provider_id,
        requirements=requirements,
        asked=_asked_up_front(requirements),
        errors=errors,
        values=values,
    )


def _book(
    service: Any, location_id: int, provider_id: int | None, starts_at: datetime, guest: dict
) -> Booking:
    """Book as the online API does, with the policy accepted: one unit, all or nothing."""
    with unit_of_work():
        client = bookings.guest_client(guest)
        carry_gpc(client)
        booking = bookings.book(
            current_clinic(),
            client=client,
            service_id=service.id,
            location_id=location_id,
            provider_id=provider_id,
            starts_at=starts_at,
            online=True,
        )
        # The acceptance is the evidence of a disputed fee: the clauses, when, from where.
        bookings.accept_whole_policy(
            booking,
            ip_address=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
            channel="online",
        )
        return booking


# --- paying up front ---------------------------------------------------------------------------


@pages.get("/visit/pay")
@public
def pay(clinic_slug: str) -> BaseResponse:
    """The card step: a deposit or prepayment, or a card saved to hold the booking (Stripe.js)."""
    return _card_step(_visit())


@pages.post("/visit/pay/gift-certificate")
@public
def pay_with_gift_certificate(clinic_slug: str) -> BaseResponse:
    """Hold the booking with a gift certificate, where the clinic's policy accepts one."""
    booking = _visit()
    if _lapsed(booking) or booking.status != BookingStatus.held:
        return _card_step(booking)
    if booking.needs.guarantee != Guarantee.card_or_gift_certificate:
        abort(404)
    try:
        sales.confirm_with_gift_certificate(
            current_clinic(), booking, request.form.get("gift_certificate_code", ""), None
        )
    except DomainError as error:
        return _card_step(booking, gift_error=_problem_text(error), status=422)
    return redirect(url_for(".visit", clinic_slug=current_clinic().slug), 303)


def _card_step(booking: Booking, gift_error: str | None = None, status: int = 200) -> BaseResponse:
    if _lapsed(booking):
        # Its slot may be someone else's by now: nothing is asked of the card for it.
        return _page("visit.html", status=409, title="Your booking", **_visit_context(booking))
    clinic_slug = current_clinic().slug
    if booking.status != BookingStatus.held:
        return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)
    needs = booking.needs
    try:
        if needs.deposit or needs.prepayment:
            step = {"kind": "payment", **payments.deposit_payment(current_clinic(), booking)}
        else:
            step = {"kind": "setup", **payments.card_setup(current_clinic(), booking)}
    except (DomainError, Problem) as error:
        return _refused_on_visit(booking, error)
    return _page(
        "pay.html",
        status=status,
        title="Hold your booking",
        booking=booking,
        local_start=_local(booking.starts_at),
        step=step,
        asked=_asked_up_front(needs),
        gift_certificate=step["kind"] == "setup"
        and needs.guarantee == Guarantee.card_or_gift_certificate,
        gift_error=gift_error,
        card_url=url_for(".pay_with_card", clinic_slug=clinic_slug),
        done_url=url_for(".card_step_done", clinic_slug=clinic_slug),
    )


@pages.post("/visit/pay/card")
@public
def pay_with_card(clinic_slug: str) -> BaseResponse:
    """Pay the deposit with the card Stripe.js turned into a token; JSON for the card step's script.

    Answers the intent's status, with its client secret when the bank asks the
    client to approve the payment (3-D Secure, run by Stripe.js), or a problem
    document whose detail the page shows as it is.
    """
    booking = _visit()
    card_token = (request.get_json(silent=True) or {}).get("card_token")
    if not isinstance(card_token, str) or not card_token.startswith("tok_"):
        problem = Problem(
            422,
            "The card was not read; please enter it again.",
            errors=[field_error("card_token", "A card token from Stripe.js is needed.")],
        )
        return problem_response(problem)
    if _lapsed(booking):
        return problem_response(as_problem(Refused(LAPSED, kind="hold-lapsed")))
    try:
        answer = payments.pay_with_card(current_clinic(), booking, card_token)
    except DomainError as error:
        return problem_response(as_problem(error))
    return jsonify(answer)


@pages.get("/visit/paid")
@public
def card_step_done(clinic_slug: str) -> BaseResponse:
    """Where the card step returns: the outcome is read from Stripe now, not only when its webhook comes."""
    booking = _visit()
    payments.check_card_step(current_clinic(), booking)
    return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)


# --- the visit's own page ----------------------------------------------------------------------


def _lapsed(booking: Booking) -> bool:
    """Whether the booking's hold ran out before its guarantee came in."""
    if booking.status == BookingStatus.expired:
        return True
    return (
        booking.status == BookingStatus.held
        and booking.hold_expires_at is not None
        and clock.as_utc(booking.hold_expires_at) <= clock.now()
    )


def _visit_context(booking: Booking) -> dict[str, Any]:
    preview = None
    if booking.status == BookingStatus.confirmed or (
        booking.status == BookingStatus.held and not _lapsed(booking)
    ):
        preview = bookings.preview_cancellation(current_clinic(), booking, "client")
    version = db.session.get(PolicyVersion, booking.policy_version_id)
    service = catalog.service(booking.service_id, with_links=False)
    coming_up = booking.status == BookingStatus.confirmed or (
        booking.status == BookingStatus.held and not _lapsed(booking)
    )
    return {
        "preparation": bookings.preparation(current_clinic(), booking) if coming_up else None,
        "booking": booking,
        "service": service,
        "lapsed": _lapsed(booking),
        "local_start": _local(booking.starts_at),
        "preview": preview,
        "clauses": version.clauses if version else [],
    }


@pages.get("/visit/<token>")
@public_while_closed
def open_link(clinic_slug: str, token: str) -> BaseResponse:
    """The link from the booking email: kept in the session, then the visit's page without it."""
    _remember(links.booking_for(token, current_clinic().id))
    return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)


@pages.get("/visit")
@public_while_closed
def visit(clinic_slug: str) -> Response:
    """My booking: when, where, its status, and what cancelling now would cost."""
    booking = _visit()
    return _page("visit.html", title="Your booking", **_visit_context(booking))


# --- before the visit -------------------------------------------------------------------------


def _done_on_visit(
    booking: Booking, act: Callable[[], object]
) -> BaseResponse | list[dict[str, Any]]:
    """Do what a visit's form asks: the visit's page when done, the form's field errors when not."""
    try:
        act()
    except Invalid as error:
        return as_problem(error).errors or []
    except DomainError as error:
        return _refused_on_visit(booking, error)
    return redirect(url_for(".visit", clinic_slug=current_clinic().slug), 303)


@pages.route("/visit/intake", methods=["GET", "POST"])
@public
def intake(clinic_slug: str) -> BaseResponse:
    """The clinic's health questions, answered by the client before the visit."""
    booking = _visit()
    questions = bookings.intake_questions(current_clinic())
    values: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    if request.method == "POST":
        values = {q["id"]: request.form.get(q["id"], "") for q in questions}
        done = _done_on_visit(
            booking, lambda: bookings.answer_intake(current_clinic(), booking, values)
        )
        if not isinstance(done, list):
            return done
        errors = done
    return _page(
        "intake.html",
        status=422 if errors else 200,
        title="Health questions",
        booking=booking,
        questions=questions,
        labels={q["id"]: q["question"] for q in questions},  # the error summary names each
        values=values,
        errors=errors,
    )


@pages.route("/visit/consents/<form_id>", methods=["GET", "POST"])
@public
def consent(clinic_slug: str, form_id: str) -> BaseResponse:
    """One consent document the treatment needs, read and signed with the client's typed name."""
    booking = _visit()
    form = next(
        (f for f in bookings.consent_forms(current_clinic(), booking) if f.id == form_id), None
    )
    if form is None:
        abort(404)
    errors: list[dict[str, Any]] = []
    typed = ""
    if request.method == "POST":
        typed = request.form.get("typed_name", "")
        agreed = request.form.get("agree") == "yes"
        done = _done_on_visit(
            booking,
            lambda: bookings.sign_consent(
                current_clinic(),
                booking,
                form_id,
                typed,
                agreed,
                ip_address=request.remote_addr,
                user_agent=request.headers.get("User-Agent"),
            ),
        )
        if not isinstance(done, list):
            return done
        errors = done
    return _page(
        "consent.html",
        status=422 if errors else 200,
        title=form.title,
        booking=booking,
        form=form,
        statement=bookings.SIGNING_STATEMENT,
        typed=typed,
        errors=errors,
    )


@pages.post("/visit/cancel")
@public_while_closed
def cancel(clinic_slug: str) -> BaseResponse:
    """Cancel my booking, after seeing what it costs; the policy decides the fee."""
    booking = _visit()
    try:
        bookings.cancel(current_clinic(), booking, by="client", actor_user_id=None)
    except (DomainError, Problem) as error:
        return _refused_on_visit(booking, error)
    return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)


@pages.get("/visit/move")
@public
def move(clinic_slug: str) -> Response:
    """Other times for the same treatment, at the same place, to move my booking to."""
    booking = _visit()
    service = catalog.kept_service(booking.service_id)
    context = _times_context(service, booking.location_id, None)

    def time_link(value: str) -> str:
        return url_for(".move_terms", clinic_slug=clinic_slug, starts_at=value)

    return _page(
        "times.html",
        title="Move my booking",
        time_link=time_link,
        moving=booking,
        **{**context, "locations": [], "providers": []},
    )


@pages.route("/visit/move/terms", methods=["GET", "POST"])
@public
def move_terms(clinic_slug: str) -> BaseResponse:
    """What moving to this time means (a fee, the deposit moved or kept), then moving it."""
    booking = _visit()
    source = request.form if request.method == "POST" else request.args
    try:
        new_start = datetime.fromisoformat(source.get("starts_at", ""))
    except ValueError:
        abort(400, description="Choose a time from the list.")
    if new_start.tzinfo is None:
        abort(400, description="Choose a time from the list.")
    decision = bookings.preview_reschedule(current_clinic(), booking, new_start)
    if request.method == "POST":
        try:
            bookings.reschedule(
                current_clinic(), booking, new_start, by="client", actor_user_id=None, online=True
            )
        except (DomainError, Problem) as error:
            return _page(
                "move.html",
                status=409,
                title="Move my booking",
                booking=booking,
                starts_at=new_start,
                local_new=_local(new_start),
                decision=decision,
                notice=_problem_text(error),
            )
        return redirect(url_for(".visit", clinic_slug=clinic_slug), 303)
    return _page(
        "move.html",
        title="Move my booking",
        booking=booking,
        starts_at=new_start,
        local_new=_local(new_start),
        decision=decision,
    )


@pages.get("/visit/calendar.ics")
@public_while_closed
def calendar(clinic_slug: str) -> Response:
    """The visit as a calendar file (RFC 5545), to add it to the client's own calendar."""
    booking = _visit()
    service = catalog.service(booking.service_id, with_links=False)
    response = Response(
        calendar_file(booking, service.name, current_clinic()), mimetype="text/calendar"
    )
    response.headers["Content-Disposition"] = 'attachment; filename="visit.ics"'
    return response


@pages.errorhandler(404)
def _not_found(error: Exception) -> Response:
    return _page("error.html", status=404, title="Not found", message="This page does not exist.")


@pages.errorhandler(400)
def _bad_request(error: Any) -> Response:
    detail = getattr(error, "description", None) or "Something in the request was not right."
    return _page("error.html", status=400, title="Please try again", message=detail)


@pages.errorhandler(DomainError)
@pages.errorhandler(Problem)
def _refused(error: DomainError | Problem) -> Response:
    """A refusal from a service, as a page: the same words the API would give."""
    problem = error if isinstance(error, Problem) else as_problem(error)
    return _page(
        "error.html", status=problem.status, title=problem.title, message=problem.detail or ""
    )
