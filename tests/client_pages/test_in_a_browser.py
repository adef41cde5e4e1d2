"""Clients book, pay, cancel and move their visits in a real browser, at two seed clinics.

Debian's Chromium, driven by Playwright, against the app served on loopback and the local
Stripe server with its Stripe.js stand-in. Every page opened is checked with axe-core and
photographed at 360 px and 1280 px (tests/client_pages/screenshots/). Each test then reads
the database and the ledger: a page that says "Confirmed" proves nothing by itself.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from core import clock
from core.bookings.models import (
    Booking,
    BookingCharge,
    BookingStatus,
    ChargeStatus,
    PolicyAcceptance,
)
from core.clients.models import Client
from core.config import PROJECT_ROOT
from core.extensions import db
from core.payments.models import CardAgreement, Payment, PaymentStatus
from tests.browser import checked, tab_to
from tests.clinic_scenarios import Scenario, open_clinic

TENANTS = PROJECT_ROOT / "tenants"
#: The stand-in draws the card fields; in production they are Stripe's own frame.
CARD_FIELDS = ["#card-element"]
GOOD_CARD = "4242424242424242"
#: Declined when the card is added (localstripe's and Stripe's "generic decline" test card).
DECLINED_CARD = "4000000000000002"
#: The bank asks the client to approve the payment (3-D Secure).
CHECKED_CARD = "4000002500003155"


@pytest.fixture
def jt(client, live) -> Scenario:
    """JT Aesthetic & Co., from its tenants/ file: a $50 deposit to book."""
    return open_clinic(
        client,
        live,
        TENANTS / "jt-aesthetic.toml",
        services={"facial": ("esthetician", 60, "150.00")},
    )


@pytest.fixture
def bijoux(client, live) -> Scenario:
    """Bijoux Med Spa, from its tenants/ file: a card (or gift certificate) holds the booking."""
    return open_clinic(
        client, live, TENANTS / "bijoux.toml", services={"facial": ("esthetician", 60, "140.00")}
    )


# --- steps ---------------------------------------------------------------------------------------


def _url(clinic: Scenario, path: str = "") -> str:
    return f"{clinic.live['url']}/book/{clinic.slug}/{path}"


def _choose_time(page, clinic: Scenario, starts_at: datetime, name: str = "times") -> None:
    """From the menu, pick the treatment and the time ``starts_at`` (the clinic's local time)."""
    page.goto(_url(clinic))
    checked(page, f"{clinic.slug}-menu")
    page.get_by_role("link", name=re.compile("Choose a time")).first.click()
    page.wait_for_url(re.compile(r"/services/\d+"))
    checked(page, f"{clinic.slug}-{name}")
    offset = starts_at.isoformat()
    link = page.locator(f'a.time[href*="{offset[:16]}"]').first
    link.click()
    page.wait_for_url(re.compile(r"/details"))


def _give_details(page, clinic: Scenario, email: str = "maya@example.com") -> None:
    page.fill("#legal_first_name", "Maya")
    page.fill("#legal_last_name", "Lopez")
    page.fill("#email", email)
    page.fill("#phone", "(408) 555-0101")
    page.fill("#date_of_birth", "1991-06-15")
    checked(page, f"{clinic.slug}-details")
    page.check("#accept_policy")
    page.get_by_role("button", name="Book").click()
    page.wait_for_url(re.compile(r"/visit/pay$"))


def _enter_card(page, number: str) -> None:
    fields = page.locator("#card-element input")
    for index, value in enumerate((number, "12", "34", "123", "90210")):
        fields.nth(index).fill(value)


def _pay(page, clinic: Scenario, number: str = GOOD_CARD, name: str = "card-step") -> None:
    page.wait_for_selector("#card-element input")
    checked(page, f"{clinic.slug}-{name}", exclude=CARD_FIELDS)
    _enter_card(page, number)
    page.locator("#card-submit").click()


def _booking(clinic: Scenario) -> Booking:
    return clinic.scoped(lambda: db.session.scalar(select(Booking).order_by(Booking.id.desc())))


def _confirmed_page(page, clinic: Scenario) -> None:
    page.wait_for_url(re.compile(r"/visit$"))
    assert page.locator("#status").inner_text() == "Confirmed"
    checked(page, f"{clinic.slug}-visit")


# --- booking -------------------------------------------------------------------------------------


def test_a_client_pays_jts_deposit_in_the_browser_and_the_booking_is_confirmed(page, jt):
    # JT: "Deposits made to secure appointments are non-refundable. If you need to reschedule,
    # deposits may be applied toward future appointments with at least 48 hours' notice."
    _choose_time(page, jt, jt.at(5))
    assert "Deposits made to secure appointments are non-refundable." in page.content()
    _give_details(page, jt)
    assert "Deposit when you book: $50.00" in page.content()
    _pay(page, jt)
    _confirmed_page(page, jt)

    booking = _booking(jt)
    assert booking.status == BookingStatus.confirmed
    assert clock.as_utc(booking.starts_at) == jt.at(5)
    (payment,) = jt.scoped(lambda: list(db.session.scalars(select(Payment))))
    assert (payment.status, payment.amount_minor, payment.purpose) == (
        PaymentStatus.succeeded,
        5000,
        "deposit",
    )
    assert jt.ledger() == [("deposit_received", 5000)]
    accepted = jt.scoped(lambda: db.session.scalar(select(PolicyAcceptance)))
    assert accepted.booking_id == booking.id and "HeadlessChrome" in accepted.user_agent
    # The card was added to the client on the clinic's account: a later fee can use it.
    client = jt.scoped(lambda: db.session.get(Client, booking.client_id))
    assert client.stripe_payment_method_id and client.stripe_payment_method_id.startswith("card_")
    # One intent for the booking, created once and confirmed once.
    assert (
        len(jt.live["stripe"].calls_to("/v1/payment_intents", "POST")) == 3
    )  # create, card, confirm


def test_a_client_saves_a_card_to_hold_a_bijoux_booking_and_nothing_is_charged(page, bijoux):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the
    # reservation, so please have your credit card and/or gift certificate ready when booking."
    _choose_time(page, bijoux, bijoux.at(5))
    _give_details(page, bijoux)
    assert "A card on file holds your booking; nothing is charged now" in page.content()
    assert page.locator("#card-submit").inner_text() == "Save card and book"
    _pay(page, bijoux)
    _confirmed_page(page, bijoux)

    booking = _booking(bijoux)
    assert booking.status == BookingStatus.confirmed
    agreement = bijoux.scoped(lambda: db.session.scalar(select(CardAgreement)))
    assert agreement.status == PaymentStatus.succeeded
    assert agreement.policy_version_id == booking.policy_version_id
    client = bijoux.scoped(lambda: db.session.get(Client, booking.client_id))
    assert client.stripe_payment_method_id.startswith("pm_")
    assert bijoux.ledger() == []  # a card held the booking; nothing was charged


def test_a_bijoux_gift_certificate_holds_the_booking_by_its_code(page, bijoux):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the
    # reservation, so please have your credit card and/or gift certificate ready when booking."
    gift = bijoux.paid_sale(
        {"items": [{"kind": "gift_certificate", "amount": "100.00"}]},
        {"kind": "external", "partner": "cash"},
    )
    (code,) = gift["gift_certificate_codes"]
    sold = bijoux.ledger()
    _choose_time(page, bijoux, bijoux.at(5))
    _give_details(page, bijoux)
    page.wait_for_selector("#card-element input")
    page.fill("#gift_certificate_code", "AAAA-AAAA-AAAA-AAAA")
    page.get_by_role("button", name="Hold with my gift certificate").click()
    assert "No gift certificate has this code." in page.locator("#gift-error").inner_text()
    checked(page, "bijoux-gift-certificate-refused", exclude=CARD_FIELDS)
    assert _booking(bijoux).status == BookingStatus.held
    page.fill("#gift_certificate_code", code.lower())  # typed as people type it
    page.get_by_role("button", name="Hold with my gift certificate").click()
    _confirmed_page(page, bijoux)
    booking = _booking(bijoux)
    assert booking.status == BookingStatus.confirmed
    assert bijoux.scoped(lambda: db.session.scalar(select(CardAgreement.status))) in (
        None,
        PaymentStatus.pending,
    )  # no card was saved for it
    # The certificate guarantees; nothing is taken from it until the visit is paid for.
    assert bijoux.ledger() == sold


def test_a_declined_card_is_said_plainly_charges_nothing_and_another_card_pays_once(page, jt):
    # Issue: "A declined card ... give[s] a plain message and a way forward; nothing is
    # charged twice".
    _choose_time(page, jt, jt.at(5))
    _give_details(page, jt)
    _pay(page, jt, DECLINED_CARD)
    error = page.locator("#card-errors")
    error.filter(has_text="declined").wait_for()
    assert "Nothing was charged; you can try another card." in error.inner_text()
    checked(page, "jt-card-declined", exclude=CARD_FIELDS)
    booking = _booking(jt)
    assert booking.status == BookingStatus.held
    assert jt.ledger() == []

    # The way forward: another card, on the same page, pays the same deposit once.
    for field in page.locator("#card-element input").all():
        field.fill("")
    _enter_card(page, GOOD_CARD)
    page.locator("#card-submit").click()
    _confirmed_page(page, jt)
    assert _booking(jt).status == BookingStatus.confirmed
    payments = jt.scoped(lambda: list(db.session.scalars(select(Payment))))
    assert [(p.status, p.amount_minor) for p in payments] == [(PaymentStatus.succeeded, 5000)]
    assert jt.ledger() == [("deposit_received", 5000)]


def test_a_card_whose_bank_asks_for_approval_is_approved_in_stripes_own_check(page, jt):
    # Issue: "3-D Secure through Stripe.js's own confirm flow".
    _choose_time(page, jt, jt.at(5))
    _give_details(page, jt)
    _pay(page, jt, CHECKED_CARD)
    page.get_by_role("button", name="Complete authentication").click()
    _confirmed_page(page, jt)
    assert jt.ledger() == [("deposit_received", 5000)]


# --- managing the visit --------------------------------------------------------------------------


def test_cancelling_inside_bijouxs_window_shows_the_fee_and_its_clause_then_charges_it(
    page, bijoux
):
    # Bijoux: "We kindly ask that if you need to cancel or reschedule your appointment, please
    # do so with at least 48 hours notice. Any cancellations or no-shows within this timeframe
    # will incur a fee automatically charged to the card on file."
    _choose_time(page, bijoux, bijoux.at(1))
    _give_details(page, bijoux)
    _pay(page, bijoux)
    _confirmed_page(page, bijoux)

    shown = page.locator("#cancel-fee").inner_text()
    fee = re.search(r"Cancelling now costs \$(\d+\.\d\d)", shown)
    assert fee, shown
    assert "at least 48 hours notice" in page.locator("blockquote").first.inner_text()
    page.get_by_role("button", name="Cancel my booking").click()
    page.wait_for_url(re.compile(r"/visit$"))
    assert page.locator("#status").inner_text() == "Cancelled"
    checked(page, "bijoux-cancelled")

    booking = _booking(bijoux)
    assert booking.status == BookingStatus.cancelled
    (charge,) = bijoux.scoped(
        lambda: list(
            db.session.scalars(
                select(BookingCharge).where(BookingCharge.kind == "late_cancellation_fee")
            )
        )
    )
    owed = round(float(fee.group(1)) * 100)
    assert charge.amount_minor == owed
    bijoux.run_jobs()  # the worker charges the card on file
    assert bijoux.ledger() == [("fee_charged", owed)]
    paid = bijoux.scoped(lambda: db.session.get(BookingCharge, charge.id).status)
    assert paid == ChargeStatus.paid


def test_moving_a_jt_booking_with_notice_moves_the_deposit_as_the_page_said(page, jt):
    # JT: "If you need to reschedule, deposits may be applied toward future appointments with
    # at least 48 hours' notice."
    _choose_time(page, jt, jt.at(5))
    _give_details(page, jt)
    _pay(page, jt)
    _confirmed_page(page, jt)
    intents = len(jt.live["stripe"].calls_to("/v1/payment_intents"))

    page.get_by_role("link", name="Move my booking").click()
    page.wait_for_url(re.compile(r"/move"))
    checked(page, "jt-move-times")
    later = jt.at(6)
    page.locator(f'a.time[href*="{later.isoformat()[:16]}"]').first.click()
    page.wait_for_url(re.compile(r"/move/terms"))
    assert "What you paid ahead moves with it." in page.content()
    checked(page, "jt-move-terms")
    page.get_by_role("button", name=re.compile("Move")).click()
    page.wait_for_url(re.compile(r"/visit$"))

    booking = _booking(jt)
    assert clock.as_utc(booking.starts_at) == later
    assert jt.ledger() == [("deposit_moved", 5000), ("deposit_received", 5000)]
    assert len(jt.live["stripe"].calls_to("/v1/payment_intents")) == intents  # nothing charged


# --- keyboard only ---------------------------------------------------------------------------------


def test_a_client_books_and_pays_with_the_keyboard_alone(page, jt):
    # Issue: "WCAG 2.2 AA (... visible focus, keyboard-only booking works ...)".
    page.goto(_url(jt))
    tab_to(page, "a.button")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/services/\d+"))
    tab_to(page, "a.time")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/details"))
    for selector, typed in (
        ("#legal_first_name", "Maya"),
        ("#legal_last_name", "Lopez"),
        ("#email", "maya@example.com"),
        ("#phone", "(408) 555-0101"),
    ):
        tab_to(page, selector)
        page.keyboard.type(typed)
    tab_to(page, "#date_of_birth")
    page.keyboard.type("06151991")
    tab_to(page, "#accept_policy")
    page.keyboard.press("Space")
    # What has the focus can be seen: the browser draws an outline around it.
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    tab_to(page, "button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/pay$"))
    page.wait_for_selector("#card-element input")
    tab_to(page, "#card-element input")
    # The stand-in's fields move on by themselves once each is full, as Stripe's do.
    page.keyboard.type(GOOD_CARD + "12" + "34" + "123")
    page.keyboard.type("90210")
    tab_to(page, "#card-submit")
    page.keyboard.press("Enter")
    _confirmed_page(page, jt)
    assert _booking(jt).status == BookingStatus.confirmed
    assert jt.ledger() == [("deposit_received", 5000)]


# --- before the visit ----------------------------------------------------------------------------


def test_the_client_answers_the_intake_and_signs_the_consent_from_the_link(page, jt):
    # Issue: "from the same link the client fills the clinic's health intake and signs the
    # consents the service needs (typed full name and an explicit statement; stored with the
    # document's version and hash, time, IP and user agent) ... Staff see it through the API."
    _choose_time(page, jt, jt.at(5))
    _give_details(page, jt)
    _pay(page, jt)
    _confirmed_page(page, jt)

    page.get_by_role("link", name="Answer the health questions").click()
    page.wait_for_url(re.compile(r"/intake$"))
    page.get_by_role("button", name="Send my answers").click()  # nothing answered yet
    summary = page.locator(".error-summary")
    assert "Please answer this question." in summary.inner_text()
    checked(page, "jt-intake-errors")
    page.fill("#medications", "Vitamin D")
    for question, answer in (
        ("allergies", "yes"),
        ("conditions", "no"),
        ("pregnant", "no"),
        ("recent_treatments", "no"),
    ):
        page.check(f"#{question}-{answer}")
    page.fill("#details", "Allergic to lidocaine")
    checked(page, "jt-intake")
    page.get_by_role("button", name="Send my answers").click()
    page.wait_for_url(re.compile(r"/visit$"))
    assert "Health questions: answered" in page.locator("#task-intake").inner_text()

    page.get_by_role("link", name=re.compile("Read and sign")).click()
    page.wait_for_url(re.compile(r"/consents/treatment$"))
    checked(page, "jt-consent")
    page.fill("#typed_name", "maya   LOPEZ")
    page.check("#agree")
    page.get_by_role("button", name="Sign").click()
    page.wait_for_url(re.compile(r"/visit$"))
    assert "Consent to treatment: signed" in page.locator("#task-treatment").inner_text()
    checked(page, "jt-visit-prepared")

    # Staff read both through the API, as they would before the treatment.
    booking = _booking(jt)
    api = f"{jt.api}/clients/{booking.client_id}"
    intake = jt.client.get(f"{api}/intake", headers=jt.auth)
    assert intake.status_code == 200, intake.get_data(as_text=True)
    answers = intake.get_json()["answers"]
    assert answers["details"]["answer"] == "Allergic to lidocaine"
    assert answers["allergies"] == {
        "question": "Are you allergic to any medicine, anaesthetic, latex or skin product?",
        "answer": "yes",
    }
    consents = jt.client.get(f"{api}/consents", headers=jt.auth).get_json()
    (signed,) = consents["items"]
    assert signed["kind"] == "treatment" and signed["method"] == "electronic"
    evidence = signed["evidence"]
    assert evidence["document_sha256"] == hashlib.sha256(signed["text"].encode()).hexdigest()
    assert evidence["typed_name"] == "maya LOPEZ"
    assert evidence["ip_address"] == "127.0.0.1" and "HeadlessChrome" in evidence["user_agent"]
    assert signed["text_version"] == "platform-2026-12"
