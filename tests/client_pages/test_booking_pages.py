"""A client books, pays the deposit and manages the visit through the hosted pages.

The pages are driven as a browser's forms would be (the test client posts what the
page's form holds), against the local Stripe server; each test checks the database
and the ledger afterwards, not only the page.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from core.bookings.models import Booking, BookingStatus, PolicyAcceptance, PolicyVersion
from core.extensions import db
from tests.local_days import clinic_day, local_time
from tests.payment_flows import (
    GUEST,
    ledger_of,
    pay_in_browser,
    save_card_in_browser,
    scoped,
    wait_for,
)

ZONE = "America/Los_Angeles"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _starts(days: int = 3, hour: int = 10) -> str:
    return local_time(ZONE, clinic_day(ZONE, days), hour).isoformat()


def _details_url(live) -> str:
    return (
        f"/book/alpha/services/{live['service']}/details"
        f"?starts_at={_starts()}&location={live['location']}&provider="
    )


def _form(page: str, **fields) -> dict:
    starts = re.search(r'name="starts_at" value="([^"]+)"', page).group(1)
    location = re.search(r'name="location" value="([^"]+)"', page).group(1)
    return {
        "csrf_token": _csrf(page),
        "starts_at": starts,
        "location": location,
        "provider": "",
        **{k: str(v) for k, v in GUEST.items()},
        "accept_policy": "yes",
        **fields,
    }


def test_the_menu_shows_each_service_with_its_price_and_what_is_asked_up_front(client, live):
    page = client.get("/book/alpha/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Facial" in html or "facial" in html
    assert "$" in html and "minutes" in html
    assert "Deposit when you book: $50.00" in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_times_are_the_clinics_local_starts_for_fourteen_days(client, live):
    html = client.get(f"/book/alpha/services/{live['service']}").get_data(as_text=True)
    days = re.findall(r'<section class="day" id="day-(\d{4}-\d\d-\d\d)"', html)
    assert len(days) == 14
    assert days[0] == clinic_day(ZONE, 0).isoformat()
    # Each start links to the details step with its UTC offset, in the clinic's zone.
    starts = re.findall(r"starts_at=([^&\"]+)", html)
    assert starts and all(s.endswith(("-07%3A00", "-08%3A00", "-07:00", "-08:00")) for s in starts)


def test_bad_details_get_the_api_messages_in_a_summary_that_links_to_each_field(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    response = client.post(
        _details_url(live), data=_form(page, email="not an email", accept_policy="")
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'class="error-summary"' in html
    assert 'href="#email"' in html and 'href="#accept_policy"' in html
    assert 'aria-invalid="true" aria-describedby="email-error"' in html
    assert scoped(live["app"], lambda: db.session.scalar(select(Booking.id))) is None


def test_a_form_without_its_token_is_refused_and_books_nothing(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    response = client.post(_details_url(live), data=_form(page, csrf_token="forged"))
    assert response.status_code == 400
    assert scoped(live["app"], lambda: db.session.scalar(select(Booking.id))) is None


def test_a_client_books_with_the_policy_shown_pays_the_deposit_and_sees_it_confirmed(client, live):
    # Issue: "the clinic's policy in its own words before paying ... and an explicit acceptance"
    page = client.get(_details_url(live)).get_data(as_text=True)
    assert "policy for this booking" in page and 'name="accept_policy"' in page
    booked = client.post(
        _details_url(live), data=_form(page), headers={"User-Agent": "PhoneBrowser/1.0"}
    )
    assert booked.status_code == 303, booked.get_data(as_text=True)
    # The acceptance is stored with the booking: version, clause ids, time, address, browser.
    (accepted,) = scoped(live["app"], lambda: list(db.session.scalars(select(PolicyAcceptance))))
    version = scoped(
        live["app"],
        lambda: (
            db.session.get(
                PolicyVersion, db.session.scalar(select(Booking.policy_version_id))
            ).clauses
        ),
    )
    assert accepted.clause_ids == [c["id"] for c in version] and accepted.clause_ids
    assert (accepted.ip_address, accepted.user_agent, accepted.channel) == (
        "127.0.0.1",
        "PhoneBrowser/1.0",
        "online",
    )
    pay_url = booked.headers["Location"]
    assert pay_url.endswith("/pay")
    pay_page = client.get(pay_url)
    html = pay_page.get_data(as_text=True)
    secret = re.search(r'data-secret="([^"]+)"', html).group(1)
    assert 'data-account="acct_alpha"' in html and 'data-kind="payment"' in html
    # Stripe.js's origin (here the local server's stand-in) is the only other script allowed.
    assert (
        f"script-src 'self' {live['stripe'].upstream};"
        in pay_page.headers["Content-Security-Policy"]
    )
    # A second visit to the card step asks for the same payment, never a second one.
    again = client.get(pay_url).get_data(as_text=True)
    assert re.search(r'data-secret="([^"]+)"', again).group(1) == secret
    pay_in_browser(live, {"client_secret": secret})
    wait_for(lambda: ledger_of(live))
    booking = scoped(live["app"], lambda: db.session.scalar(select(Booking)))
    assert booking.status == BookingStatus.confirmed
    assert ledger_of(live) == [("deposit_received", 5000)]
    visit = client.get(pay_url.removesuffix("/pay"))
    assert "Confirmed" in visit.get_data(as_text=True)


def test_the_visit_page_shows_the_cost_of_cancelling_and_cancels_with_the_clause(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    visit_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    visit_url = visit_url.removesuffix("/pay")
    html = client.get(visit_url).get_data(as_text=True)
    assert "What if I cancel now?" in html and "<blockquote>" in html
    token = _csrf(html)
    refused = client.post(f"{visit_url}/cancel", data={"csrf_token": "forged"})
    assert refused.status_code == 400
    done = client.post(f"{visit_url}/cancel", data={"csrf_token": token})
    assert done.status_code == 303
    status = scoped(live["app"], lambda: db.session.scalar(select(Booking.status)))
    assert status == BookingStatus.cancelled
    assert "Cancelled" in client.get(visit_url).get_data(as_text=True)


def test_the_visit_can_be_added_to_a_calendar(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    visit_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    ics = client.get(visit_url.removesuffix("/pay") + "/calendar.ics")
    assert ics.mimetype == "text/calendar"
    body = ics.get_data(as_text=True)
    starts = scoped(live["app"], lambda: db.session.scalar(select(Booking.starts_at)))
    assert f"DTSTART:{starts.strftime('%Y%m%dT%H%M%SZ')}" in body
    assert body.startswith("BEGIN:VCALENDAR\r\n") and "END:VEVENT\r\n" in body


def test_a_link_that_is_not_valid_is_a_plain_not_found_page(client, live):
    response = client.get("/book/alpha/visit/not-a-token")
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_moving_a_paid_booking_shows_the_deposit_moving_first_and_moves_it(client, live):
    # Issue: "reschedule on the same calendar (the deposit moves or is forfeited as the policy
    # says, shown before confirming)".
    page = client.get(_details_url(live)).get_data(as_text=True)
    pay_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    html = client.get(pay_url).get_data(as_text=True)
    pay_in_browser(live, {"client_secret": re.search(r'data-secret="([^"]+)"', html).group(1)})
    wait_for(lambda: ledger_of(live))
    visit_url = pay_url.removesuffix("/pay")
    intents_before = len(live["stripe"].calls_to("/v1/payment_intents"))
    times = client.get(f"{visit_url}/move").get_data(as_text=True)
    new_start = _starts(days=4)
    assert new_start.replace(":", "%3A").replace("+", "%2B") in times or new_start in times
    terms = client.get(f"{visit_url}/move/terms", query_string={"starts_at": new_start})
    html = terms.get_data(as_text=True)
    assert "What you paid ahead moves with it." in html and "<blockquote>" in html
    moved = client.post(
        f"{visit_url}/move/terms", data={"csrf_token": _csrf(html), "starts_at": new_start}
    )
    assert moved.status_code == 303, moved.get_data(as_text=True)
    booking = scoped(live["app"], lambda: db.session.scalar(select(Booking)))
    assert booking.starts_at.replace(tzinfo=None) == (
        datetime.fromisoformat(new_start).astimezone(UTC).replace(tzinfo=None)
    )
    assert ledger_of(live) == [("deposit_moved", 5000), ("deposit_received", 5000)]
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == intents_before


def test_a_time_taken_meanwhile_is_said_plainly_and_nothing_is_booked_twice(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    first = client.post(_details_url(live), data=_form(page))
    assert first.status_code == 303
    # Another client takes the same time with the same provider while this one was typing.
    other = {**_form(page), "email": "other@example.com", "legal_first_name": "Ana"}
    taken = client.post(_details_url(live), data=other)
    assert taken.status_code == 422
    assert "error-summary" in taken.get_data(as_text=True)
    count = scoped(live["app"], lambda: len(list(db.session.scalars(select(Booking.id)))))
    assert count == 1


def test_a_hold_that_lapsed_while_paying_asks_nothing_of_the_card_and_offers_a_new_time(
    client, live
):
    # Issue: "a hold that lapsed while paying ... give[s] a plain message and a way forward;
    # nothing is charged twice and no slot is held forever."
    import time_machine

    page = client.get(_details_url(live)).get_data(as_text=True)
    pay_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    intents_before = len(live["stripe"].calls_to("/v1/payment_intents"))
    expires = scoped(live["app"], lambda: db.session.scalar(select(Booking.hold_expires_at)))
    with time_machine.travel(expires.replace(tzinfo=UTC), tick=False):
        lapsed = client.get(pay_url)
    assert lapsed.status_code == 409
    html = lapsed.get_data(as_text=True)
    assert 'id="lapsed"' in html and "nothing was charged" in html
    assert f"/book/alpha/services/{live['service']}" in html
    assert "data-secret" not in html
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == intents_before


def test_a_clinic_that_asks_for_a_card_gets_one_saved_and_the_booking_confirmed(client, live):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the
    # reservation" - with no deposit, the card step saves the card (a SetupIntent).
    from core.payments.models import CardAgreement
    from tests.helpers import set_clinic_settings

    with live["app"].app_context():
        set_clinic_settings("alpha", policy={"guarantee": "card_or_gift_certificate"})
    menu = client.get("/book/alpha/").get_data(as_text=True)
    assert "A card on file holds your booking; nothing is charged now" in menu
    page = client.get(_details_url(live)).get_data(as_text=True)
    pay_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    html = client.get(pay_url).get_data(as_text=True)
    assert 'data-kind="setup"' in html and "Save card and book" in html
    secret = re.search(r'data-secret="([^"]+)"', html).group(1)
    assert secret.startswith("seti_")
    save_card_in_browser(client, live, secret)
    booking = scoped(live["app"], lambda: db.session.scalar(select(Booking)))
    assert booking.status == BookingStatus.confirmed
    agreed = scoped(live["app"], lambda: db.session.scalar(select(CardAgreement)))
    assert agreed.policy_version_id == booking.policy_version_id
    assert ledger_of(live) == []  # nothing charged


def test_the_pages_wear_the_clinics_colour_and_refuse_one_too_light_to_read(client, live):
    # Issue: "the clinic's name, colours and logo from its tenants/ file"; WCAG 2.2 AA contrast.
    import pytest
    from marshmallow import ValidationError

    from core.bookings.settings import BookingSettingsSchema, contrast_with_white
    from tests.helpers import set_clinic_settings

    assert "--accent: #0b5cad" in client.get("/book/alpha/brand.css").get_data(as_text=True)
    with live["app"].app_context():
        set_clinic_settings("alpha", bookings={"page_colour": "#7a2e4d"})
    css = client.get("/book/alpha/brand.css")
    assert css.mimetype == "text/css" and "--accent: #7a2e4d" in css.get_data(as_text=True)
    assert "brand.css" in client.get("/book/alpha/").get_data(as_text=True)
    with pytest.raises(ValidationError, match="too light to read on white"):
        BookingSettingsSchema().load({"page_colour": "#f5c518"})
    assert round(contrast_with_white("#767676"), 1) == 4.5  # the lightest grey AA allows


def test_the_card_step_answers_a_missing_card_with_a_problem_naming_the_field(client, live):
    page = client.get(_details_url(live)).get_data(as_text=True)
    pay_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    html = client.get(pay_url).get_data(as_text=True)
    csrf = re.search(r'data-csrf="([^"]+)"', html).group(1)
    forged = client.post(f"{pay_url}/card", json={"card_token": "tok_x"})
    assert forged.status_code == 400
    missing = client.post(
        f"{pay_url}/card", json={"card_token": "4242424242424242"}, headers={"X-CSRFToken": csrf}
    )
    assert missing.status_code == 422
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["errors"][0]["field"] == "card_token"
    # Nothing was asked of Stripe for the card, and nothing was paid.
    assert live["stripe"].calls_to("/v1/customers/") == []
    assert ledger_of(live) == []


# --- before the visit --------------------------------------------------------------------------


def _confirmed_visit(client, live) -> str:
    page = client.get(_details_url(live)).get_data(as_text=True)
    pay_url = client.post(_details_url(live), data=_form(page)).headers["Location"]
    html = client.get(pay_url).get_data(as_text=True)
    pay_in_browser(live, {"client_secret": re.search(r'data-secret="([^"]+)"', html).group(1)})
    wait_for(lambda: ledger_of(live))
    return pay_url.removesuffix("/pay")


def test_the_intake_from_the_link_is_encrypted_versioned_and_audited_as_the_clients(client, live):
    # Issue: "through the existing intake and consent services, encrypted and audited as today".
    from sqlalchemy import text

    from core.audit.models import AuditEvent
    from core.clients.models import HealthIntake

    visit_url = _confirmed_visit(client, live)
    form = client.get(f"{visit_url}/intake")
    assert form.headers["Cache-Control"] == "no-store"
    html = form.get_data(as_text=True)
    missing = client.post(f"{visit_url}/intake", data={"csrf_token": _csrf(html)})
    assert missing.status_code == 422
    summary = missing.get_data(as_text=True)
    assert 'href="#allergies">Are you allergic' in summary
    assert scoped(live["app"], lambda: db.session.scalar(select(HealthIntake.id))) is None
    answers = {
        "allergies": "yes",
        "conditions": "no",
        "pregnant": "no",
        "recent_treatments": "no",
        "details": "Allergic to lidocaine",
    }
    wrong = client.post(
        f"{visit_url}/intake", data={"csrf_token": _csrf(html), **answers, "pregnant": "maybe"}
    )
    assert wrong.status_code == 422 and "Choose yes or no." in wrong.get_data(as_text=True)
    sent = client.post(
        f"{visit_url}/intake",
        data={"csrf_token": _csrf(html), **answers},
        headers={"User-Agent": "PhoneBrowser/2.0"},
    )
    assert sent.status_code == 303
    # A second time is a new version: the first stays as it was.
    client.post(f"{visit_url}/intake", data={"csrf_token": _csrf(html), **answers})
    versions = scoped(
        live["app"],
        lambda: [
            (v.version, v.recorded_by_user_id, v.change_reason)
            for v in db.session.scalars(select(HealthIntake).order_by(HealthIntake.version))
        ],
    )
    assert versions == [(1, None, None), (2, None, "answered again by the client")]
    with live["app"].app_context():
        stored = db.session.execute(text("SELECT answers FROM health_intake")).scalars().all()
    assert all("lidocaine" not in str(raw) for raw in stored)  # encrypted at rest
    audits = scoped(
        live["app"],
        lambda: [
            (e.action.value, e.actor_role, e.actor_user_id, e.user_agent)
            for e in db.session.scalars(
                select(AuditEvent).where(AuditEvent.resource == "health_intake")
            )
        ],
    )
    assert audits[0] == ("create", "client", None, "PhoneBrowser/2.0")


def test_a_consent_is_signed_only_with_the_clients_name_and_the_statement_and_once(client, live):
    from core.clients.models import Consent

    visit_url = _confirmed_visit(client, live)
    html = client.get(visit_url).get_data(as_text=True)
    assert "Read and sign: Consent to treatment" in html
    page = client.get(f"{visit_url}/consents/treatment").get_data(as_text=True)
    token = _csrf(page)
    unsigned = client.post(
        f"{visit_url}/consents/treatment", data={"csrf_token": token, "typed_name": "Someone Else"}
    )
    assert unsigned.status_code == 422
    body = unsigned.get_data(as_text=True)
    assert "Type your full name as you gave it when booking (Maya Lopez)" in body
    assert "Confirm that you have read and agree to it." in body
    assert scoped(live["app"], lambda: db.session.scalar(select(Consent.id))) is None
    for _ in range(2):
        signed = client.post(
            f"{visit_url}/consents/treatment",
            data={"csrf_token": token, "typed_name": "Maya Lopez", "agree": "yes"},
        )
        assert signed.status_code == 303
    (consent,) = scoped(live["app"], lambda: list(db.session.scalars(select(Consent))))
    assert consent.recorded_by_user_id is None
    assert consent.evidence["statement"] == (
        "I have read this document and I agree to it. Typing my full name is my signature."
    )
    assert "signed" in client.get(visit_url).get_data(as_text=True)
    assert client.get(f"{visit_url}/consents/not-a-form").status_code == 404


def test_nothing_is_asked_before_a_visit_that_was_cancelled(client, live):
    from core.clients.models import HealthIntake

    visit_url = _confirmed_visit(client, live)
    html = client.get(visit_url).get_data(as_text=True)
    client.post(f"{visit_url}/cancel", data={"csrf_token": _csrf(html)})
    assert "Before your visit" not in client.get(visit_url).get_data(as_text=True)
    refused = client.post(
        f"{visit_url}/intake", data={"csrf_token": _csrf(html), "allergies": "no"}
    )
    assert refused.status_code == 409
    assert "no longer coming up" in refused.get_data(as_text=True)
    assert scoped(live["app"], lambda: db.session.scalar(select(HealthIntake.id))) is None


# --- the link's token stays out of addresses and logs ---------------------------------------------


def test_the_emailed_link_is_kept_in_the_session_and_the_visit_pages_carry_no_token(client, live):
    # Issue: "no health data or tokens in URLs, logs or the Referer".
    from core.bookings import links

    _confirmed_visit(client, live)
    booking = scoped(live["app"], lambda: db.session.scalar(select(Booking)))
    with live["app"].test_request_context():
        token = links.token_for(booking)
    stranger = live["app"].test_client()  # another browser: no session yet
    assert stranger.get("/book/alpha/visit").status_code == 404
    opened = stranger.get(f"/book/alpha/visit/{token}")
    assert opened.status_code == 303 and opened.headers["Location"] == "/book/alpha/visit"
    page = stranger.get("/book/alpha/visit")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Confirmed" in html
    assert token not in html  # no link on the page carries it
    # A link for another clinic's booking opens nothing here.
    assert stranger.get(f"/book/beta/visit/{token}").status_code == 404


def test_access_logs_show_no_link_token():
    import logging

    from core.bookings.links import LinkTokensHidden

    token = "eyJjIjoxLCJiIjo3LCJuIjoiYWJjIn0.Zx1ZxQ-abcdef0123_XY"
    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s - - "%s" %s',
        ("127.0.0.1", f"GET /book/alpha/visit/{token} HTTP/1.1", "303"),
        None,
    )
    assert LinkTokensHidden().filter(record)
    assert token not in record.getMessage()
    assert '"GET /book/alpha/visit/[link] HTTP/1.1" 303' in record.getMessage()
    assert logging.getLogger("werkzeug").filters  # the app put it on the server's log


def test_the_pages_show_the_logo_the_tenants_file_names(client, live, tmp_path):
    # Issue: "the clinic's name, colours and logo from its tenants/ file".
    import pytest
    from marshmallow import ValidationError

    from core.bookings.settings import BookingSettingsSchema
    from tests.helpers import set_clinic_settings

    assert client.get("/book/alpha/logo").status_code == 404  # none named
    (tmp_path / "logos").mkdir()
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    (tmp_path / "logos" / "alpha.svg").write_text(svg)
    live["app"].config["TENANTS_DIR"] = str(tmp_path)
    with live["app"].app_context():
        set_clinic_settings("alpha", bookings={"logo": "logos/alpha.svg"})
    html = client.get("/book/alpha/").get_data(as_text=True)
    assert '<img class="logo" src="/book/alpha/logo" alt="Alpha">' in html
    served = client.get("/book/alpha/logo")
    assert served.status_code == 200 and served.mimetype == "image/svg+xml"
    assert served.get_data(as_text=True) == svg
    with pytest.raises(ValidationError):
        BookingSettingsSchema().load({"logo": "../secrets/key.png"})
    with pytest.raises(ValidationError):
        BookingSettingsSchema().load({"logo": "logo.exe"})
