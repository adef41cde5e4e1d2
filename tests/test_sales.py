"""Checkout on the day, gift certificates, packages, store credit, product returns and refunds,
through the API against the local Stripe server, with the ledger checked after each step.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import time_machine
from sqlalchemy import select

from core import clock
from core.accounts.models import Role
from core.extensions import db
from core.payments.models import LedgerEntry
from core.sales.models import GiftCertificate
from tests.helpers import assert_problem, issue_token, make_staff, set_clinic_settings
from tests.payment_flows import DEPOSIT, ledger_of, paid_booking, scoped

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


def test_a_rescheduled_deposit_moves_in_the_ledger_with_no_new_charge(client, live):
    # Issue: "Reschedule: the deposit moves to the new booking when the policy allows, or is
    # forfeited; no new charge, never a second deposit for the same appointment."
    body = paid_booking(client, live)
    token = body["self_service_token"]
    intents_before = len(live["stripe"].calls_to("/v1/payment_intents"))
    new_start = (clock.now() + timedelta(days=4)).astimezone()
    moved = client.post(
        f"{API}/self-service/{token}/reschedule",
        json={"starts_at": _ten_am(new_start)},
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["decision"]["deposit"] == "moved"
    assert len(live["stripe"].calls_to("/v1/payment_intents")) == intents_before
    assert ledger_of(live) == [("deposit_moved", 5000), ("deposit_received", 5000)]
    (entry,) = _entries(live, "deposit_moved")
    assert entry[2]["to"].startswith(new_start.date().isoformat()) or entry[2]["to"]
    # At checkout the moved deposit counts once toward the bill.
    _check_in(client, live, body["booking"]["id"])
    sale = _open(client, live, {"booking_id": body["booking"]["id"]}).get_json()
    assert sale["balance_due"]["amount"] == 10000 - 5000
    assert [t["kind"] for t in sale["tenders"]] == ["deposit"]


def _ten_am(moment):
    from datetime import datetime
    from datetime import time as dtime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/Los_Angeles")
    return datetime.combine(moment.astimezone(zone).date(), dtime(10), zone).isoformat()


def test_a_deposit_rescheduled_too_late_is_forfeited_and_not_charged_again(client, live):
    # JT Aesthetic: "appointment deposits are non-refundable, but move to a new appointment when
    # rescheduled with at least 48 hours' notice" - a tenants/ setting of the default policy.
    with live["app"].app_context():
        set_clinic_settings("alpha", policy={**DEPOSIT, "deposit_moves_with_notice_hours": 96})
    body = paid_booking(client, live)  # three days ahead: inside 96 hours
    moved = client.post(
        f"{API}/self-service/{body['self_service_token']}/reschedule",
        json={"starts_at": _ten_am(clock.now() + timedelta(days=5))},
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
    paid = _pay(client, live, sale["id"], {"kind": "card_on_file"}, key="desk-1")
    assert paid.status_code == 201, paid.get_data(as_text=True)
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
    today = clock.now().date()
    assert credit["expires_on"] in {
        (today.replace(year=today.year + 1)).isoformat(),
        (today.replace(year=today.year + 1) - timedelta(days=1)).isoformat(),
    }
    assert ledger_of(live) == sorted(
        [
            ("deposit_received", 5000),
            ("package_sold", 25000),
            ("external_tender", 25000),
            ("deposit_applied", 5000),
            ("package_session_used", 8334),
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
