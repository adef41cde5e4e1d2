"""Checkout on the day, gift certificates, packages, store credit, product returns and refunds,
through the API against the local Stripe server, with the ledger checked after each step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from core import clock
from core.accounts.models import Role
from core.extensions import db
from core.ledger import LedgerEntry
from core.sales.models import GiftCertificate
from tests.helpers import assert_problem, issue_token, make_staff, set_clinic_settings
from tests.local_days import clinic_day, clinic_today, local_time, years_after
from tests.payment_flows import DEPOSIT, ledger_of, paid_booking, scoped, stripe_requests_watched

API = "/api/v1/clinics/alpha"


def _check_in(client, live, booking_id):
    response = client.post(f"{API}/bookings/{booking_id}/check-in", headers=live["auth"])
    assert response.status_code == 200, response.get_data(as_text=True)


def _product(client, live, sku="serum", price="40.00", **extra):
    response = client.post(
        f"{API}/products",
        json={"sku": sku, "name": sku.title(), "price": price, **extra},
        headers=live["auth"],
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def _open(client, live, body, key=None):
    headers = {**live["auth"], **({"Idempotency-Key": key} if key else {})}
    return client.post(f"{API}/sales", json=body, headers=headers)


def _pay(client, live, sale_id, body, key=None):
    headers = {**live["auth"], **({"Idempotency-Key": key} if key else {})}
    return client.post(f"{API}/sales/{sale_id}/tenders", json=body, headers=headers)


def _cash_sale(client, live, items, client_id=None):
    response = _open(client, live, {"items": items, "client_id": client_id})
    assert response.status_code == 201, response.get_data(as_text=True)
    sale = response.get_json()
    paid = _pay(client, live, sale["id"], {"kind": "external", "partner": "cash"})
    assert paid.status_code == 201, paid.get_data(as_text=True)
    return sale, paid.get_json()["sale"]


def _card_sale(client, live, price):
    """A client with a card on file (their deposit saved it) buys one product with that card."""
    body = paid_booking(client, live)
    serum = _product(client, live, price=price)
    opened = {
        "client_id": body["booking"]["client_id"],
        "items": [{"kind": "product", "product_id": serum}],
    }
    sale = _open(client, live, opened).get_json()
    assert (
        _pay(client, live, sale["id"], {"kind": "card_on_file"}).get_json()["sale"]["status"]
        == "paid"
    )
    return sale


def _entries(live, kind):
    return scoped(
        live["app"],
        lambda: [
            (e.amount_minor, e.account, e.details)
            for e in db.session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == kind).order_by(LedgerEntry.id)
            )
        ],
    )


# --- reschedule: the deposit moves or is forfeited, never charged twice ----------------------------


@pytest.mark.clock_sensitive
def test_a_rescheduled_deposit_moves_in_the_ledger_with_no_new_charge(client, live):
    # Issue: "Reschedule: the deposit moves to the new booking when the policy allows, or is
    # forfeited; no new charge, never a second deposit for the same appointment."
    body = paid_booking(client, live)
    token = body["self_service_token"]
    intents_before = len(live["stripe"].calls_to("/v1/payment_intents"))
    new_start = local_time("America/Los_Angeles", clinic_day("America/Los_Angeles", 4), 10)
    moved = client.post(
        f"{API}/self-service/{token}/reschedule",
        json={"starts_at": new_start.isoformat()},
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["decision"]["deposit"] == "moved"
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == intents_before
    assert ledger_of(live) == [("deposit_moved", 5000), ("deposit_received", 5000)]
    (entry,) = _entries(live, "deposit_moved")
    assert clock.as_utc(datetime.fromisoformat(entry[2]["to"])) == new_start
    # At checkout the moved deposit counts once toward the bill.
    _check_in(client, live, body["booking"]["id"])
    sale = _open(client, live, {"booking_id": body["booking"]["id"]}).get_json()
    assert sale["balance_due"]["amount"] == 10000 - 5000
    assert [t["kind"] for t in sale["tenders"]] == ["deposit"]


def test_a_deposit_rescheduled_too_late_is_forfeited_and_not_charged_again(client, live):
    # JT Aesthetic: "appointment deposits are non-refundable, but move to a new appointment when
    # rescheduled with at least 48 hours' notice" - a tenants/ setting of the default policy.
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={**DEPOSIT, "deposit_moves_with_notice_hours": 96})
    body = paid_booking(client, live)  # three days ahead: inside 96 hours
    moved = client.post(
        f"{API}/self-service/{body['self_service_token']}/reschedule",
        json={
            "starts_at": local_time(
                "America/Los_Angeles", clinic_day("America/Los_Angeles", 5), 10
            ).isoformat()
        },
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["decision"]["deposit"] == "forfeited"
    assert ledger_of(live) == [("deposit_forfeited", 5000), ("deposit_received", 5000)]
    assert [c.path for c in live["stripe"].calls_to("/v1/payment_intents")].count(
        "/v1/payment_intents"
    ) == 1
    # The forfeited deposit is the clinic's: it does not pay toward the visit.
    _check_in(client, live, body["booking"]["id"])
    sale = _open(client, live, {"booking_id": body["booking"]["id"]}).get_json()
    assert sale["balance_due"]["amount"] == 10000
    assert sale["tenders"] == []


# --- checkout on the day ---------------------------------------------------------------------------


def test_checkout_applies_the_deposit_and_charges_the_balance_to_the_card_once(client, live):
    # Bijoux: "Payment is due on the day of treatment." Issue: "the balance (price less deposit,
    # ...) is charged"; every Stripe call carries the connected account and a key.
    body = paid_booking(client, live)
    booking_id = body["booking"]["id"]
    early = _open(client, live, {"booking_id": booking_id})
    assert_problem(early, 409, "not-on-the-day")
    _check_in(client, live, booking_id)
    serum = _product(client, live)
    response = _open(
        client,
        live,
        {
            "booking_id": booking_id,
            "items": [{"kind": "product", "product_id": serum, "quantity": 2}],
            "gratuity": "15.00",
        },
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    sale = response.get_json()
    assert sale["total"]["amount"] == 10000 + 8000 + 1500
    assert sale["balance_due"]["amount"] == 19500 - 5000
    # A second bill for the same appointment is refused.
    assert_problem(_open(client, live, {"booking_id": booking_id}), 409)
    # The card is charged with no write open: the tender commits first (DESIGN.md: "read and
    # lock, decide, commit ... call out").
    with stripe_requests_watched() as asked:
        paid = _pay(client, live, sale["id"], {"kind": "card_on_file"}, key="desk-1")
    assert paid.status_code == 201, paid.get_data(as_text=True)
    assert "payment_intents" in [path for path, _ in asked]
    assert [path for path, writing in asked if writing] == []
    again = _pay(client, live, sale["id"], {"kind": "card_on_file"}, key="desk-1")
    assert again.get_json()["tender"]["id"] == paid.get_json()["tender"]["id"]
    result = paid.get_json()["sale"]
    assert result["status"] == "paid"
    assert result["balance_due"]["amount"] == 0
    charges = [
        c for c in live["stripe"].calls_to("/v1/payment_intents") if "off_session" in c.params
    ]
    tender_id = paid.get_json()["tender"]["id"]
    assert [(c.account, c.idempotency_key, c.params["amount"]) for c in charges] == [
        ("acct_alpha", f"sale:{sale['id']}:tender:{tender_id}", ["14500"])
    ]
    assert ledger_of(live) == [
        ("card_payment", 14500),
        ("deposit_applied", 5000),
        ("deposit_received", 5000),
        ("gratuity", 1500),
        ("product_sold", 8000),
    ]


def test_a_gratuity_is_refused_where_the_policy_does_not_offer_it(client, live):
    # Bijoux: "gratuity ... not offered for services by physicians or nurses" - a clinic whose
    # policy offers none gets a problem naming the field and the clause.
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={**DEPOSIT, "gratuity_allowed": False})
    body = paid_booking(client, live)
    _check_in(client, live, body["booking"]["id"])
    refused = _open(client, live, {"booking_id": body["booking"]["id"], "gratuity": "10.00"})
    problem = assert_problem(refused, 422, "gratuity-not-offered")
    assert problem["errors"][0]["field"] == "gratuity"
    assert problem["clause"] == "default_policy.gratuity"
    assert ("gratuity", 1000) not in ledger_of(live)


def test_a_financing_partner_is_a_tender_with_its_reference(client, live):
    # Him. Medspa: financing partners "Cherry" and "CareCredit" pay for treatment.
    body = paid_booking(client, live)
    _check_in(client, live, body["booking"]["id"])
    sale = _open(client, live, {"booking_id": body["booking"]["id"]}).get_json()
    missing = _pay(client, live, sale["id"], {"kind": "external", "partner": "cherry"})
    assert assert_problem(missing, 422)["errors"][0]["field"] == "reference"
    too_much = _pay(
        client,
        live,
        sale["id"],
        {"kind": "external", "partner": "carecredit", "reference": "CC-1", "amount": "60.00"},
    )
    assert assert_problem(too_much, 422)["errors"][0]["field"] == "amount"
    paid = _pay(
        client,
        live,
        sale["id"],
        {"kind": "external", "partner": "cherry", "reference": "CH-88213"},
    )
    assert paid.get_json()["sale"]["status"] == "paid"
    assert _entries(live, "external_tender") == [
        (5000, f"sale:{sale['id']}", {"partner": "cherry"})
    ]
    assert (
        scoped(
            live["app"],
            lambda: db.session.scalar(
                select(LedgerEntry.reference).where(LedgerEntry.kind == "external_tender")
            ),
        )
        == "CH-88213"
    )


def test_a_card_presented_at_the_desk_is_applied_by_its_webhook(client, live):
    # DESIGN.md: confirmed "by the `payment_intent.succeeded` webhook, not by the browser".
    from tests.payment_flows import pay_in_browser, wait_for

    serum = _product(client, live)
    sale = _open(client, live, {"items": [{"kind": "product", "product_id": serum}]}).get_json()
    started = _pay(client, live, sale["id"], {"kind": "card"})
    assert started.status_code == 201, started.get_data(as_text=True)
    payload = started.get_json()["payment"]
    assert payload["stripe_account"] == "acct_alpha"
    tender_id = started.get_json()["tender"]["id"]
    (created,) = live["stripe"].calls_to("/v1/payment_intents")
    assert (created.account, created.idempotency_key) == (
        "acct_alpha",
        f"sale:{sale['id']}:tender:{tender_id}",
    )
    assert started.get_json()["tender"]["status"] == "pending"
    assert started.get_json()["sale"]["status"] == "open"
    pay_in_browser(live, payload)
    wait_for(
        lambda: (
            client.get(f"{API}/sales/{sale['id']}", headers=live["auth"]).get_json()["status"]
            == "paid"
        )
    )
    assert ledger_of(live) == [("card_payment", 4000), ("product_sold", 4000)]


# --- gift certificates -----------------------------------------------------------------------------


def test_a_gift_certificate_of_any_amount_is_spent_down_and_never_refunded(client, live):
    # Bijoux: "Gift certificates are available in any amount" and "are not returnable or
    # redeemable for cash".
    sale, paid = _cash_sale(
        client, live, [{"kind": "gift_certificate", "amount": "137.50", "recipient_name": "Ana"}]
    )
    (code,) = sale["gift_certificate_codes"]
    assert len(code.replace("-", "")) == 16
    assert paid["status"] == "paid"
    # The code is kept only as a digest.
    stored = scoped(live["app"], lambda: db.session.scalar(select(GiftCertificate)))
    assert code not in (stored.code_digest, stored.code_hint) and stored.code_hint == code[-4:]
    looked_up = client.post(
        f"{API}/gift-certificates/lookup", json={"code": code.lower()}, headers=live["auth"]
    )
    assert looked_up.get_json()["balance"]["amount"] == 13750
    serum = _product(client, live, price="100.00")
    spend = _open(client, live, {"items": [{"kind": "product", "product_id": serum}]}).get_json()
    used = _pay(client, live, spend["id"], {"kind": "gift_certificate", "code": code})
    assert used.get_json()["tender"]["amount"]["amount"] == 10000
    assert used.get_json()["sale"]["status"] == "paid"
    left = client.post(f"{API}/gift-certificates/lookup", json={"code": code}, headers=live["auth"])
    assert left.get_json()["balance"]["amount"] == 3750
    refund = client.post(
        f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests",
        json={"reason": "changed_mind"},
        headers=live["auth"],
    )
    assert refund.status_code == 201
    assert refund.get_json()["outcome"] == "refused"
    assert "not refundable" in refund.get_json()["clause"]["text"]
    assert ("refund", 13750) not in ledger_of(live)
    wrong = client.post(
        f"{API}/gift-certificates/lookup",
        json={"code": "AAAA-BBBB-CCCC-DDDD"},
        headers=live["auth"],
    )
    assert assert_problem(wrong, 404)["errors"][0]["field"] == "code"


def test_concurrent_redemptions_never_spend_a_certificate_twice(client, live, database):
    # Issue: gift certificates "safe under concurrent redemption".
    sale, _ = _cash_sale(client, live, [{"kind": "gift_certificate", "amount": "100.00"}])
    code = sale["gift_certificate_codes"][0]
    serum = _product(client, live, price="30.00")
    attempts = 10
    bills = [
        _open(client, live, {"items": [{"kind": "product", "product_id": serum}]}).get_json()["id"]
        for _ in range(attempts)
    ]

    def redeem(sale_id):
        response = _pay(
            live["app"].test_client(), live, sale_id, {"kind": "gift_certificate", "code": code}
        )
        return response.status_code, (response.get_json() or {}).get("tender", {}).get("amount")

    with ThreadPoolExecutor(max_workers=attempts if database.is_postgres else 4) as pool:
        results = list(pool.map(redeem, bills))
    spent = sum(a["amount"] for status, a in results if status == 201)
    assert spent == 10000  # three full bills of 30.00 and 10.00 toward a fourth
    assert {status for status, _ in results} <= {201, 409}
    redeemed = _entries(live, "gift_certificate_redeemed")
    assert sum(amount for amount, _, _ in redeemed) == 10000
    balance = client.post(
        f"{API}/gift-certificates/lookup", json={"code": code}, headers=live["auth"]
    )
    assert balance.get_json()["balance"]["amount"] == 0


# --- packages and store credit ---------------------------------------------------------------------


def test_a_package_is_paid_in_full_before_its_first_session_and_its_unused_part_becomes_credit(
    client, live
):
    # Bijoux: "Packages must be paid in full before the first treatment." JT: "the unused
    # portion of a treatment package becomes store credit ... valid 12 months".
    body = paid_booking(client, live)
    booking_id = body["booking"]["id"]
    client_id = body["booking"]["client_id"]
    unpaid = _open(
        client,
        live,
        {
            "client_id": client_id,
            "items": [
                {"kind": "package", "service_id": live["service"], "sessions": 3, "price": "250.00"}
            ],
        },
    ).get_json()
    package_id = unpaid["lines"][0]["client_package_id"]
    _check_in(client, live, booking_id)
    visit = _open(client, live, {"booking_id": booking_id}).get_json()
    early = _pay(
        client, live, visit["id"], {"kind": "package_session", "client_package_id": package_id}
    )
    assert_problem(early, 409, "package-not-active")
    _pay(client, live, unpaid["id"], {"kind": "external", "partner": "cash"})
    used = _pay(
        client, live, visit["id"], {"kind": "package_session", "client_package_id": package_id}
    )
    assert used.status_code == 201, used.get_data(as_text=True)
    assert used.get_json()["sale"]["status"] == "paid"
    package = client.get(f"{API}/packages/{package_id}", headers=live["auth"]).get_json()
    assert package["sessions_left"] == 2
    closed = client.post(f"{API}/packages/{package_id}/closure", headers=live["auth"])
    assert closed.status_code == 200, closed.get_data(as_text=True)
    credit = closed.get_json()["store_credit"]
    # 250.00 over three sessions: the first carries the odd cent (83.34), 166.66 is left.
    assert credit["balance"]["amount"] == 16666
    # Twelve months from the clinic's date of issue (Los Angeles), a leap day's to 28 February.
    issued = clinic_today("America/Los_Angeles")
    assert credit["expires_on"] == years_after(issued, 1).isoformat()
    assert ledger_of(live) == sorted(
        [
            ("deposit_received", 5000),
            ("package_sold", 25000),
            ("external_tender", 25000),
            ("deposit_applied", 5000),
            ("package_session_used", 8334),
            # The session pays for the whole visit: its deposit is the client's again, as credit.
            ("store_credit_issued", 5000),
            ("package_closed", 16666),
            ("store_credit_issued", 16666),
        ]
    )


def test_store_credit_is_spent_then_expires_once(client, live):
    # JT: store credit "valid 12 months"; the default policy's store_credit_valid_months.
    body = paid_booking(client, live)
    client_id = body["booking"]["client_id"]
    serum = _product(client, live, price="60.00")
    sale, _ = _cash_sale(client, live, [{"kind": "product", "product_id": serum}], client_id)
    returned = client.post(
        f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests",
        json={"reason": "changed_mind", "condition": "unopened"},
        headers=live["auth"],
    ).get_json()
    assert returned["status"] == "awaiting_approval"  # the default policy asks a manager
    # The front desk cannot approve it; an owner can, and twice is once.
    make_desk = live["app"].app_context()
    with make_desk:
        make_staff("alpha", "desk@alpha.example.com", Role.front_desk)
    desk = {
        "Authorization": f"Bearer {issue_token(live['app'], 'alpha', 'desk@alpha.example.com')}"
    }
    approval = f"{API}/refund-requests/{returned['id']}/approval"
    assert client.post(approval, json={"approve": True}, headers=desk).status_code == 403
    queue = client.get(f"{API}/refund-requests", headers=live["auth"]).get_json()
    assert [r["id"] for r in queue["items"]] == [returned["id"]]
    first = client.post(approval, json={"approve": True}, headers=live["auth"]).get_json()
    second = client.post(approval, json={"approve": True}, headers=live["auth"]).get_json()
    assert first["status"] == second["status"] == "done"
    # Paid in cash: the refund is returned by hand, and the clinic is told.
    assert ("refund", 6000) not in ledger_of(live)
    # Store credit, issued by a policy decision elsewhere, is spent and then expires.
    from core.hooks.decisions import Clause
    from core.sales import services as sales

    def issue():
        from core.tenancy.models import Clinic

        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        credit = sales.issue_store_credit(
            clinic,
            client_id,
            __import__("core.money", fromlist=["Money"]).Money(5000, "USD"),
            reason="goodwill",
            clause=Clause("test.goodwill", "A goodwill credit."),
            source="test",
        )
        db.session.commit()
        return credit.id

    credit_id = scoped(live["app"], issue)
    spend = _open(
        client, live, {"client_id": client_id, "items": [{"kind": "product", "product_id": serum}]}
    ).get_json()
    used = _pay(client, live, spend["id"], {"kind": "store_credit", "amount": "20.00"})
    assert used.get_json()["tender"]["amount"]["amount"] == 2000
    with time_machine.travel(clock.now() + timedelta(days=400), tick=False):
        from core.jobs.tasks import expire_store_credit

        with live["app"].app_context():
            assert expire_store_credit() == 1
            assert expire_store_credit() == 0
        late = _pay(
            client, live, spend["id"], {"kind": "store_credit", "store_credit_id": credit_id}
        )
        assert late.status_code == 409
    assert _entries(live, "store_credit_expired")[0][0] == 3000
    assert len(_entries(live, "store_credit_expired")) == 1


# --- refunds to the card, decided by policy and approved once -------------------------------------


def test_an_approved_refund_goes_back_to_the_card_once_and_never_beyond_what_was_paid(client, live):
    # Issue: "where the policy requires manager approval it waits for it; the refund never exceeds
    # what was paid, and a repeated request never refunds twice". Default policy: "Refunds are
    # considered case by case and approved by management."
    body = paid_booking(client, live)
    serum = _product(client, live, price="80.00")
    sale = _open(
        client,
        live,
        {
            "client_id": body["booking"]["client_id"],
            "items": [{"kind": "product", "product_id": serum}],
        },
    ).get_json()
    assert (
        _pay(client, live, sale["id"], {"kind": "card_on_file"}).get_json()["sale"]["status"]
        == "paid"
    )
    line = sale["lines"][0]["id"]
    url = f"{API}/sales/{sale['id']}/lines/{line}/refund-requests"
    asked = client.post(
        url, json={"reason": "dissatisfied"}, headers={**live["auth"], "Idempotency-Key": "r1"}
    )
    request = asked.get_json()
    assert request["status"] == "awaiting_approval"
    assert (
        request["clause"]["text"]
        == "Refunds are considered case by case and approved by management."
    )
    repeat = client.post(
        url, json={"reason": "dissatisfied"}, headers={**live["auth"], "Idempotency-Key": "r1"}
    )
    assert repeat.get_json()["id"] == request["id"]
    assert not live["stripe"].calls_to("/v1/refunds")
    approval = f"{API}/refund-requests/{request['id']}/approval"
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(
            pool.map(
                lambda _: (
                    live["app"]
                    .test_client()
                    .post(approval, json={"approve": True}, headers=live["auth"])
                ),
                range(2),
            )
        )
    assert {a.status_code for a in answers} == {200}
    refunds = live["stripe"].calls_to("/v1/refunds")
    assert {(c.account, c.idempotency_key, c.params["amount"][0]) for c in refunds} == {
        ("acct_alpha", f"refund-request:{request['id']}:{_payment_of(live, sale['id'])}", "8000")
    }
    assert [kind for kind, _ in ledger_of(live)].count("refund") == 1
    assert ("refund", 8000) in ledger_of(live) and ("product_returned", 8000) in ledger_of(live)
    # The line is returned in full: another request finds nothing left to refund.
    again = client.post(url, json={"reason": "dissatisfied"}, headers=live["auth"])
    assert_problem(again, 409, "refunded")


def _payment_of(live, sale_id):
    from core.payments.models import Payment

    return scoped(
        live["app"], lambda: db.session.scalar(select(Payment.id).where(Payment.sale_id == sale_id))
    )


# --- disputes and the account's state --------------------------------------------------------------


def _deliver(client, kind, obj, event_id, created=None):
    import json
    import time

    from tests.stripe_server import sign

    event = json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "account": "acct_alpha",
            "created": created or int(time.time()),
            "data": {"object": obj},
        }
    )
    response = client.post(
        "/webhooks/stripe",
        data=event,
        headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
    )
    return response


def test_a_dispute_is_recorded_once_even_when_its_end_arrives_first(client, live):
    # Issue: "charge.dispute created/closed" among the events; DESIGN.md: "order is not
    # guaranteed". localstripe sends no dispute events: they are posted as Stripe signs them.
    body = paid_booking(client, live)
    intent = scoped(
        live["app"],
        lambda: db.session.scalar(
            select(
                __import__(
                    "core.payments.models", fromlist=["Payment"]
                ).Payment.stripe_payment_intent_id
            )
        ),
    )
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 5000,
        "currency": "usd",
        "payment_intent": intent,
        "charge": "ch_1",
        "reason": "fraudulent",
        "status": "lost",
    }
    closed = _deliver(client, "charge.dispute.closed", dispute, "evt_dp_closed")
    assert closed.get_json()["outcome"] == "dispute opened, lost"
    opened = _deliver(
        client, "charge.dispute.created", {**dispute, "status": "needs_response"}, "evt_dp_open"
    )
    assert opened.get_json()["outcome"] == "unchanged (dispute recorded)"
    assert (
        _deliver(client, "charge.dispute.closed", dispute, "evt_dp_closed").get_json()["outcome"]
        == "already applied"
    )
    assert ledger_of(live) == [
        ("deposit_received", 5000),
        ("dispute_lost", 5000),
        ("dispute_opened", 5000),
    ]
    entry = _entries(live, "dispute_opened")[0]
    assert entry[2]["reason"] == "fraudulent"
    assert body["booking"]["id"] == scoped(
        live["app"],
        lambda: db.session.scalar(
            select(LedgerEntry.booking_id).where(LedgerEntry.kind == "dispute_opened")
        ),
    )
    malformed = _deliver(client, "charge.dispute.created", {"id": "dp_2", "amount": "x"}, "evt_bad")
    assert_problem(malformed, 400, "bad-event")


def test_an_account_stripe_paused_cannot_take_payments_until_it_is_enabled_again(client, live):
    # Issue: "account.updated" among the events; "a clinic without a connected account cannot
    # take payments and says so clearly" - nor one whose account Stripe has paused.
    import time

    from tests.payment_flows import book

    now = int(time.time())
    held = book(client, live)  # booked while the account could take charges
    paused = _deliver(
        client,
        "account.updated",
        {"id": "acct_alpha", "object": "account", "charges_enabled": False},
        "evt_a1",
        now,
    )
    assert paused.get_json()["outcome"] == "charges disabled"
    stale = _deliver(
        client,
        "account.updated",
        {"id": "acct_alpha", "object": "account", "charges_enabled": True},
        "evt_a0",
        now - 60,
    )
    assert stale.get_json()["outcome"] == "unchanged (older than what is recorded)"
    refused = client.post(f"{API}/self-service/{held['self_service_token']}/deposit-payment")
    assert_problem(refused, 409, "payments-paused")
    # A new booking that must be paid up front is not held while no payment can be taken.
    from tests.payment_flows import GUEST

    again = client.post(
        f"{API}/bookings/online",
        json={
            "client": {**GUEST, "email": "second@example.com"},
            "service_id": live["service"],
            "location_id": live["location"],
            "starts_at": held["booking"]["starts_at"].replace("T10:", "T12:"),
        },
    )
    assert_problem(again, 409, "payments-paused")
    enabled = _deliver(
        client,
        "account.updated",
        {"id": "acct_alpha", "object": "account", "charges_enabled": True},
        "evt_a2",
        now + 1,
    )
    assert enabled.get_json()["outcome"] == "charges enabled"
    assert (
        client.post(f"{API}/self-service/{held['self_service_token']}/deposit-payment").status_code
        == 200
    )


# --- memberships -----------------------------------------------------------------------------------


def test_a_membership_is_billed_by_a_stripe_subscription_and_each_invoice_is_recorded_once(
    client, live
):
    # Him. Medspa offers memberships; the issue: "memberships (recurring, on Stripe
    # subscriptions)", with "the subscription events memberships need".
    from tests.payment_flows import wait_for

    body = paid_booking(client, live)  # the deposit leaves the client's card on file
    client_id = body["booking"]["client_id"]
    plan = client.post(
        f"{API}/membership-plans",
        json={"name": "Glow Club", "price": "99.00", "interval": "month"},
        headers=live["auth"],
    )
    assert plan.status_code == 201, plan.get_data(as_text=True)
    plans = live["stripe"].calls_to("/v1/plans")
    assert [(c.account, c.idempotency_key) for c in plans] == [
        ("acct_alpha", f"membership-plan:{plan.get_json()['id']}")
    ]
    joined = client.post(
        f"{API}/clients/{client_id}/memberships",
        json={"plan_id": plan.get_json()["id"]},
        headers=live["auth"],
    )
    assert joined.status_code == 201, joined.get_data(as_text=True)
    member = joined.get_json()
    assert member["status"] == "active"
    subscriptions = live["stripe"].calls_to("/v1/subscriptions")
    assert [(c.account, c.idempotency_key) for c in subscriptions] == [
        ("acct_alpha", f"membership:{member['id']}")
    ]
    card = [
        c for c in live["stripe"].calls_to("/v1/customers/") if "invoice_settings" in str(c.params)
    ]
    assert [(c.account, c.idempotency_key) for c in card] == [
        ("acct_alpha", f"membership-card:{member['id']}")
    ]
    again = client.post(
        f"{API}/clients/{client_id}/memberships",
        json={"plan_id": plan.get_json()["id"]},
        headers=live["auth"],
    )
    assert_problem(again, 409, "already-a-member")
    # localstripe's own invoice webhook records the first month, once.
    wait_for(lambda: ("membership_payment", 9900) in ledger_of(live))
    assert [k for k, _ in ledger_of(live)].count("membership_payment") == 1
    ended = client.post(f"{API}/memberships/{member['id']}/cancellation", headers=live["auth"])
    assert ended.get_json()["status"] == "canceled"
    listed = client.get(f"{API}/clients/{client_id}/memberships", headers=live["auth"]).get_json()
    assert [m["status"] for m in listed["items"]] == ["canceled"]


def test_a_refund_whose_answer_stripe_lost_is_retried_and_refunds_once(client, live):
    # Issue: "a repeated request never refunds twice"; DESIGN.md: "deterministic keys from
    # business ids ... on every POST to Stripe".
    sale = _card_sale(client, live, "25.00")
    request = client.post(
        f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests",
        json={"reason": "defective", "condition": "defective"},
        headers=live["auth"],
    ).get_json()
    # The first attempt and each of the SDK's retries within a web request lose their answers.
    for _ in range(live["app"].config["STRIPE_WEB_RETRIES"] + 1):
        live["stripe"].fail_next("/v1/refunds", 500)
    approval = f"{API}/refund-requests/{request['id']}/approval"
    lost = client.post(approval, json={"approve": True}, headers=live["auth"])
    assert_problem(lost, 502, "stripe-error")
    assert ("refund", 2500) not in ledger_of(live)
    retried = client.post(approval, json={"approve": True}, headers=live["auth"])
    assert retried.get_json()["status"] == "done"
    keys = {c.idempotency_key for c in live["stripe"].calls_to("/v1/refunds")}
    assert len(keys) == 1
    assert [kind for kind, _ in ledger_of(live)].count("refund") == 1


# --- New Zealand dollars, end to end ---------------------------------------------------------------


@pytest.mark.clock_sensitive
def test_a_new_zealand_clinic_takes_its_deposit_and_bill_in_nzd(client, live):
    # Issue: "Money is integer minor units everywhere, USD and NZD."
    from core.bookings.models import Booking
    from core.tenancy.models import Clinic, Location
    from core.tenancy.scope import clinic_scope
    from tests.helpers import make_clinic, make_provider, make_service
    from tests.payment_flows import pay_in_browser, wait_for

    with live["app"].app_context():
        make_clinic(
            "kiwi",
            timezone="Pacific/Auckland",
            currency="NZD",
            country="NZ",
            stripe_account_id="acct_kiwi",
        )
        make_staff("kiwi", "owner@kiwi.example.com", Role.owner)
        provider = make_provider("kiwi", "aroha@kiwi.example.com")
        service = make_service("kiwi", "facial", provider_ids=[provider], price="180.00")
        set_clinic_settings(
            "kiwi", policy={"guarantee": "card_or_gift_certificate", "deposit": "40.00"}
        )
        kiwi = db.session.scalar(select(Clinic).where(Clinic.slug == "kiwi"))
        with clinic_scope(kiwi):
            location = db.session.scalar(select(Location.id).where(Location.slug == "main"))
    auth = {"Authorization": f"Bearer {issue_token(live['app'], 'kiwi', 'owner@kiwi.example.com')}"}
    day = clinic_day("Pacific/Auckland", 3)
    booked = client.post(
        "/api/v1/clinics/kiwi/bookings/online",
        json={
            "client": {
                "legal_first_name": "Aroha",
                "legal_last_name": "Ngata",
                "email": "aroha@example.co.nz",
                "phone": "+64 21 123 4567",
                "date_of_birth": "1990-02-01",
            },
            "service_id": service,
            "location_id": location,
            "starts_at": local_time("Pacific/Auckland", day, 10).isoformat(),
        },
    )
    assert booked.status_code == 201, booked.get_data(as_text=True)
    body = booked.get_json()
    assert body["payment"]["amount"] == {"amount": 4000, "currency": "NZD", "display": "$40.00"}
    assert body["payment"]["stripe_account"] == "acct_kiwi"
    pay_in_browser(live, body["payment"])
    booking_id = body["booking"]["id"]

    def confirmed():
        from core.tenancy.models import Clinic
        from core.tenancy.scope import clinic_scope

        with live["app"].app_context():
            kiwi = db.session.scalar(select(Clinic).where(Clinic.slug == "kiwi"))
            with clinic_scope(kiwi):
                return db.session.get(Booking, booking_id).status.value == "confirmed"

    wait_for(confirmed)
    deposit = [
        c for c in live["stripe"].calls_to("/v1/payment_intents") if c.account == "acct_kiwi"
    ]
    assert deposit[0].params["currency"] == ["nzd"] and deposit[0].params["amount"] == ["4000"]
    kiwi_api = "/api/v1/clinics/kiwi"
    assert (
        client.post(f"{kiwi_api}/bookings/{booking_id}/check-in", headers=auth).status_code == 200
    )
    sale = client.post(
        f"{kiwi_api}/sales", json={"booking_id": booking_id}, headers=auth
    ).get_json()
    assert sale["balance_due"] == {"amount": 14000, "currency": "NZD", "display": "$140.00"}
    paid = client.post(
        f"{kiwi_api}/sales/{sale['id']}/tenders", json={"kind": "card_on_file"}, headers=auth
    )
    assert paid.get_json()["sale"]["status"] == "paid"
    charge = [
        c for c in live["stripe"].calls_to("/v1/payment_intents") if "off_session" in c.params
    ]
    assert [(c.account, c.params["currency"], c.params["amount"]) for c in charge] == [
        ("acct_kiwi", ["nzd"], ["14000"])
    ]

    def books():
        from core.ledger import LedgerEntry as Entry
        from core.tenancy.models import Clinic
        from core.tenancy.scope import clinic_scope

        with live["app"].app_context():
            kiwi = db.session.scalar(select(Clinic).where(Clinic.slug == "kiwi"))
            with clinic_scope(kiwi):
                return sorted(
                    (e.kind.value, e.amount_minor, e.currency)
                    for e in db.session.scalars(select(Entry))
                )

    assert books() == [
        ("card_payment", 14000, "NZD"),
        ("deposit_applied", 4000, "NZD"),
        ("deposit_received", 4000, "NZD"),
    ]
    # The other clinic's books are its own.
    assert all(kind != "card_payment" or amount != 14000 for kind, amount in ledger_of(live))


# --- money that must not move twice, whatever the order of things -------------------------------


def test_a_card_payment_in_progress_holds_its_share_of_the_bill(client, live):
    # Issue: "No money moves twice": cash offered while the card is being confirmed is refused,
    # and the card's success pays the bill once.
    from tests.payment_flows import pay_in_browser, wait_for

    serum = _product(client, live)
    sale = _open(client, live, {"items": [{"kind": "product", "product_id": serum}]}).get_json()
    started = _pay(client, live, sale["id"], {"kind": "card"})
    cash = _pay(client, live, sale["id"], {"kind": "external", "partner": "cash"})
    assert_problem(cash, 409, "payment-in-progress")
    pay_in_browser(live, started.get_json()["payment"])
    wait_for(lambda: ("card_payment", 4000) in ledger_of(live))
    assert ledger_of(live) == [("card_payment", 4000), ("product_sold", 4000)]
    shown = client.get(f"{API}/sales/{sale['id']}", headers=live["auth"]).get_json()
    assert (shown["status"], shown["paid"]["amount"]) == ("paid", 4000)


def test_a_card_on_file_charge_stripe_did_not_answer_is_asked_again_under_its_key(client, live):
    body = paid_booking(client, live)
    serum = _product(client, live, price="25.00")
    sale = _open(
        client,
        live,
        {
            "client_id": body["booking"]["client_id"],
            "items": [{"kind": "product", "product_id": serum}],
        },
    ).get_json()
    # The first attempt and each of the SDK's retries within a web request lose their answers.
    for _ in range(live["app"].config["STRIPE_WEB_RETRIES"] + 1):
        live["stripe"].fail_next("/v1/payment_intents", 500)
    lost = _pay(client, live, sale["id"], {"kind": "card_on_file"}, key="desk-7")
    assert_problem(lost, 502, "stripe-error")
    again = _pay(client, live, sale["id"], {"kind": "card_on_file"}, key="desk-7")
    assert again.get_json()["sale"]["status"] == "paid"
    keys = {
        c.idempotency_key
        for c in live["stripe"].calls_to("/v1/payment_intents")
        if "off_session" in c.params
    }
    assert len(keys) == 1
    assert [k for k, _ in ledger_of(live)].count("card_payment") == 1


def test_concurrent_refund_requests_on_one_line_return_it_once(client, live, database):
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={**DEPOSIT, "refunds_require_manager_approval": False})
    body = paid_booking(client, live)
    serum = _product(client, live, price="60.00")
    sale, _ = _cash_sale(
        client, live, [{"kind": "product", "product_id": serum}], body["booking"]["client_id"]
    )
    url = f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests"

    def ask(n):
        return (
            live["app"]
            .test_client()
            .post(
                url,
                json={"reason": "changed_mind"},
                headers={**live["auth"], "Idempotency-Key": f"k{n}"},
            )
            .status_code
        )

    with ThreadPoolExecutor(max_workers=6 if database.is_postgres else 3) as pool:
        statuses = list(pool.map(ask, range(6)))
    assert set(statuses) <= {201, 409}
    returned = [amount for kind, amount in ledger_of(live) if kind == "product_returned"]
    assert returned == [6000]


def test_a_package_refund_returns_only_its_unused_part_and_closes_it(client, live):
    body = paid_booking(client, live)
    booking_id, client_id = body["booking"]["id"], body["booking"]["client_id"]
    sale, _ = _cash_sale(
        client,
        live,
        [{"kind": "package", "service_id": live["service"], "sessions": 3, "price": "300.00"}],
        client_id,
    )
    package_id = sale["lines"][0]["client_package_id"]
    _check_in(client, live, booking_id)
    visit = _open(client, live, {"booking_id": booking_id}).get_json()
    _pay(client, live, visit["id"], {"kind": "package_session", "client_package_id": package_id})
    asked = client.post(
        f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests",
        json={"reason": "changed_mind"},
        headers=live["auth"],
    ).get_json()
    assert asked["amount"]["amount"] == 20000  # two sessions of three left
    done = client.post(
        f"{API}/refund-requests/{asked['id']}/approval",
        json={"approve": True},
        headers=live["auth"],
    ).get_json()
    assert (done["status"], done["amount"]["amount"]) == ("done", 20000)
    package = client.get(f"{API}/packages/{package_id}", headers=live["auth"]).get_json()
    assert package["status"] == "closed"
    assert (
        client.post(f"{API}/packages/{package_id}/closure", headers=live["auth"]).status_code == 409
    )
    assert ("package_closed", 20000) in ledger_of(live)


def test_a_request_approved_but_not_yet_refunded_cannot_be_refused(client, live):
    sale = _card_sale(client, live, "25.00")
    asked = client.post(
        f"{API}/sales/{sale['id']}/lines/{sale['lines'][0]['id']}/refund-requests",
        json={"reason": "defective"},
        headers=live["auth"],
    ).get_json()
    for _ in range(live["app"].config["STRIPE_WEB_RETRIES"] + 1):
        live["stripe"].fail_next("/v1/refunds", 500)
    approval = f"{API}/refund-requests/{asked['id']}/approval"
    assert client.post(approval, json={"approve": True}, headers=live["auth"]).status_code == 502
    assert_problem(
        client.post(approval, json={"approve": False}, headers=live["auth"]), 409, "already-decided"
    )
    assert ("refund", 2500) not in ledger_of(live)


def test_a_paused_account_still_records_money_stripe_took(client, live):
    # A webhook for money already taken is applied even while Stripe pauses new charges.
    import time

    from tests.payment_flows import pay_in_browser

    serum = _product(client, live)
    sale = _open(client, live, {"items": [{"kind": "product", "product_id": serum}]}).get_json()
    started = _pay(client, live, sale["id"], {"kind": "card"}).get_json()
    live["stripe"].webhook_target = None  # its own webhook is delivered by hand below
    pay_in_browser(live, started["payment"])
    paused = {"id": "acct_alpha", "object": "account", "charges_enabled": False}
    _deliver(client, "account.updated", paused, "evt_pause", int(time.time()))
    intent = {"id": started["tender"]["reference"], "object": "payment_intent"}
    applied = _deliver(client, "payment_intent.succeeded", intent, "evt_paid")
    assert applied.status_code == 200, applied.get_data(as_text=True)
    assert ("card_payment", 4000) in ledger_of(live)


def test_a_membership_stripe_did_not_start_can_be_started_again(client, live):
    body = paid_booking(client, live)
    plan = client.post(
        f"{API}/membership-plans",
        json={"name": "Glow", "price": "49.00", "interval": "month"},
        headers=live["auth"],
    ).get_json()
    url = f"{API}/clients/{body['booking']['client_id']}/memberships"
    for _ in range(live["app"].config["STRIPE_WEB_RETRIES"] + 1):
        live["stripe"].fail_next("/v1/subscriptions", 500)
    assert_problem(client.post(url, json={"plan_id": plan["id"]}, headers=live["auth"]), 502)
    again = client.post(url, json={"plan_id": plan["id"]}, headers=live["auth"])
    assert again.status_code == 201, again.get_data(as_text=True)
    assert again.get_json()["status"] == "active"
    keys = {c.idempotency_key for c in live["stripe"].calls_to("/v1/subscriptions")}
    assert keys == {f"membership:{again.get_json()['id']}"}


def test_bad_amounts_are_refused_and_a_walk_in_refund_goes_to_a_person(client, live):
    for amount in ("1e30", "99999999999.00", "-5.00", "12.345"):
        refused = _open(client, live, {"items": [{"kind": "gift_certificate", "amount": amount}]})
        assert assert_problem(refused, 422)["errors"][0]["field"].endswith("amount")
    serum = _product(client, live, price="30.00")
    walk_in, _ = _cash_sale(client, live, [{"kind": "product", "product_id": serum}])
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={**DEPOSIT, "refunds_require_manager_approval": False})
    # The default policy refunds to the card; nothing was paid by card, so a person returns it.
    asked = client.post(
        f"{API}/sales/{walk_in['id']}/lines/{walk_in['lines'][0]['id']}/refund-requests",
        json={"reason": "changed_mind"},
        headers=live["auth"],
    )
    assert asked.status_code == 201
    assert ("refund", 3000) not in ledger_of(live)


def test_a_bill_opened_by_mistake_is_voided_and_its_deposit_waits_for_the_next(client, live):
    body = paid_booking(client, live)
    _check_in(client, live, body["booking"]["id"])
    wrong = _open(
        client, live, {"booking_id": body["booking"]["id"], "gratuity": "90.00"}
    ).get_json()
    voided = client.post(f"{API}/sales/{wrong['id']}/void", headers=live["auth"])
    assert voided.get_json()["status"] == "voided"
    assert_problem(client.post(f"{API}/sales/{wrong['id']}/void", headers=live["auth"]), 409)
    right = _open(client, live, {"booking_id": body["booking"]["id"]}).get_json()
    assert right["balance_due"]["amount"] == 5000  # the deposit counts once, on the new bill
    assert ledger_of(live) == [
        ("deposit_applied", 5000),
        ("deposit_applied", 5000),
        ("deposit_received", 5000),
        ("deposit_unapplied", 5000),
    ]
    paid = _pay(client, live, right["id"], {"kind": "external", "partner": "cash"}).get_json()
    assert_problem(client.post(f"{API}/sales/{right['id']}/void", headers=live["auth"]), 409)
    assert paid["sale"]["status"] == "paid"


def test_a_stale_subscription_status_never_brings_a_cancelled_membership_back():
    # A webhook reads the subscription, the membership is cancelled meanwhile, then the
    # webhook's (older) answer is recorded: Stripe never restarts a cancelled subscription.
    from types import SimpleNamespace

    from core.sales.memberships import _follow
    from core.sales.models import ClientMembership

    member = ClientMembership(status="canceled")
    _follow(member, SimpleNamespace(status="active", current_period_end=None))
    assert member.status == "canceled"
    renewed = ClientMembership(status="past_due")
    _follow(renewed, SimpleNamespace(status="active", current_period_end=None))
    assert renewed.status == "active"
