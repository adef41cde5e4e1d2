"""Each clinic's published policy, enforced end to end: every clinic is made from its tenants/
file, its clients book, pay and change their plans through the API against the local Stripe
server, and the clinic's ledger is checked after each step. Each test quotes the clause it
enforces.
"""

from __future__ import annotations

import pytest

from core.config import PROJECT_ROOT
from tests.clinic_scenarios import Scenario, open_clinic
from tests.helpers import assert_problem

TENANTS = PROJECT_ROOT / "tenants"


# --- JT Aesthetic & Co. ----------------------------------------------------------------------------


@pytest.fixture
def jt(client, live) -> Scenario:
    return open_clinic(
        client,
        live,
        TENANTS / "jt-aesthetic.toml",
        services={
            "botox": ("injection_laser", 30, "300.00"),
            "facial": ("esthetician", 60, "150.00"),
            "peel": ("esthetician", 45, "120.00"),
        },
    )


def test_jt_deposits_move_with_48_hours_notice_and_are_otherwise_kept(jt):
    # JT: "Deposits made to secure appointments are non-refundable. If you need to reschedule,
    # deposits may be applied toward future appointments with at least 48 hours' notice."
    first = jt.book("facial", jt.at(4))
    assert first["booking"]["status"] == "held"
    assert first["payment"]["amount"]["amount"] == 5000
    jt.pay_deposit(first)
    assert jt.ledger() == [("deposit_received", 5000)]
    moved = jt.reschedule(first, jt.at(6), hours_before=72)
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["decision"]["deposit"] == "moved"
    assert jt.ledger() == [("deposit_moved", 5000), ("deposit_received", 5000)]
    late = jt.reschedule(first, jt.at(8), hours_before=24)
    assert late.get_json()["decision"]["deposit"] == "forfeited"
    assert late.get_json()["decision"]["clause"]["text"].startswith(
        "Deposits made to secure appointments are non-refundable."
    )
    assert jt.ledger() == [
        ("deposit_forfeited", 5000),
        ("deposit_moved", 5000),
        ("deposit_received", 5000),
    ]
    # Never a second deposit for the same appointment.
    deposits = [
        c for c in jt.live["stripe"].calls_to("/v1/payment_intents") if c.account == jt.account
    ]
    assert len(deposits) == 1
    # The client is told, in the clinic's words.
    assert any("Deposits made to secure appointments" in n for n in jt.notices())


def test_jt_a_cancelled_or_missed_appointment_keeps_the_deposit_and_charges_nothing_more(jt):
    # JT: "Deposits made to secure appointments are non-refundable."
    early = jt.book("facial", jt.at(5))
    jt.pay_deposit(early)
    decision = jt.cancel(early)  # five days ahead: far outside any window
    assert decision["decision"]["deposit"] == "forfeited"
    assert decision["decision"]["fee"]["amount"] == 0
    jt.run_jobs()
    assert jt.ledger() == [("deposit_forfeited", 5000), ("deposit_received", 5000)]
    missed = jt.book("botox", jt.at(3, 11))
    jt.pay_deposit(missed)
    assert jt.staff(missed, "no-show", minutes_after=30).status_code == 200
    jt.run_jobs()
    assert jt.ledger().count(("deposit_forfeited", 5000)) == 2
    assert not [k for k, _ in jt.ledger() if k in ("fee_charged", "refund")]


def _visit(jt, service="facial", days=3, guest=None):
    body = jt.book(service, jt.at(days), guest or jt.guest(1))
    jt.pay_deposit(body)
    assert jt.staff(body, "check-in").status_code == 200
    return body


def test_jt_services_are_not_refunded_and_a_concern_within_7_days_goes_to_management(jt):
    # JT: "All services rendered are non-refundable." and "If you have concerns about a service,
    # please reach out to our management team within 7 days so we may work with you toward a
    # resolution."
    body = _visit(jt)
    sale = jt.paid_sale({"booking_id": body["booking"]["id"]})
    assert ("deposit_applied", 5000) in jt.ledger() and ("card_payment", 10000) in jt.ledger()
    refused = jt.ask_refund(sale, {"reason": "changed_mind"})
    assert refused["outcome"] == "refused"
    assert refused["clause"]["text"] == "All services rendered are non-refundable."
    late = jt.ask_refund(sale, {"reason": "dissatisfied"}, days_after=8)
    assert late["outcome"] == "refused"
    concern = jt.ask_refund(sale, {"reason": "dissatisfied"}, days_after=3)
    assert (concern["outcome"], concern["status"]) == ("store_credit", "awaiting_approval")
    done = jt.approve(concern)
    assert done["status"] == "done" and done["store_credit_id"]
    assert ("store_credit_issued", 15000) in jt.ledger()
    assert not [k for k, _ in jt.ledger() if k == "refund"]  # never to the card
    assert any("within 7 days" in n for n in jt.notices("sale_notice"))


def test_jt_unopened_products_come_back_within_14_days_as_store_credit_only(jt):
    # JT: "Unopened retail products in their original packaging may be returned within 14 days
    # of purchase for store credit only." and "Opened or used products cannot be returned due to
    # health and safety regulations." and "Store credit is valid for 12 months from the date of
    # issue."
    body = _visit(jt)
    serum = jt.product("serum", "60.00")
    client_id = body["booking"]["client_id"]
    sale = jt.paid_sale(
        {"client_id": client_id, "items": [{"kind": "product", "product_id": serum, "quantity": 2}]}
    )
    opened = jt.ask_refund(sale, {"reason": "changed_mind", "condition": "opened"})
    assert opened["outcome"] == "refused"
    assert "health and safety" in opened["clause"]["text"]
    too_late = jt.ask_refund(
        sale, {"reason": "changed_mind", "condition": "unopened"}, days_after=15
    )
    assert too_late["outcome"] == "refused"
    back = jt.ask_refund(
        sale, {"reason": "changed_mind", "condition": "unopened", "quantity": 1}, days_after=10
    )
    assert (back["outcome"], back["status"], back["amount"]["amount"]) == (
        "store_credit",
        "done",
        6000,
    )
    credit = jt.client.get(f"{jt.api}/clients/{client_id}/store-credit", headers=jt.auth).get_json()
    (item,) = credit["items"]
    assert item["balance"]["amount"] == 6000
    assert item["terms"]["text"] == "Store credit is valid for 12 months from the date of issue."
    assert item["expires_on"] is not None
    assert ("product_returned", 6000) in jt.ledger()
    assert not [k for k, _ in jt.ledger() if k == "refund"]


def test_jt_an_unfinished_package_becomes_credit_for_services_of_equal_or_greater_value(jt):
    # JT: "If you are unable to complete a treatment package you have purchased, the unused
    # portion may be applied as store credit toward other services of equal or greater value."
    body = _visit(jt)
    client_id = body["booking"]["client_id"]
    package_sale = jt.paid_sale(
        {
            "client_id": client_id,
            "items": [
                {
                    "kind": "package",
                    "service_id": jt.services["facial"],
                    "sessions": 4,
                    "price": "480.00",
                }
            ],
        }
    )
    package_id = package_sale["lines"][0]["client_package_id"]
    closed = jt.client.post(f"{jt.api}/packages/{package_id}/closure", headers=jt.auth).get_json()
    credit = closed["store_credit"]
    assert credit["balance"]["amount"] == 48000 and credit["services_only"]
    # A product, or a cheaper service, cannot take it; a service of the same value can.
    serum = jt.product("serum", "60.00")
    shop = jt.sale(
        {"client_id": client_id, "items": [{"kind": "product", "product_id": serum}]}
    ).get_json()
    refused = jt.pay(shop["id"], {"kind": "store_credit", "store_credit_id": credit["id"]})
    assert_problem(refused, 409, "store-credit-not-applicable")
    cheaper = _visit(jt, "peel", days=4)
    bill = jt.sale({"booking_id": cheaper["booking"]["id"]}).get_json()
    assert_problem(
        jt.pay(bill["id"], {"kind": "store_credit", "store_credit_id": credit["id"]}), 409
    )
    same = _visit(jt, "facial", days=5)
    bill = jt.sale({"booking_id": same["booking"]["id"]}).get_json()
    used = jt.pay(bill["id"], {"kind": "store_credit", "store_credit_id": credit["id"]})
    assert used.status_code == 201, used.get_data(as_text=True)
    assert used.get_json()["sale"]["status"] == "paid"
    assert ("store_credit_used", 10000) in jt.ledger()


def test_jt_gift_cards_and_promotions_are_not_refunded_nor_combined(jt):
    # JT: "Gift cards, vouchers, and promotional packages are non-refundable and may not be
    # redeemed for cash." and "Promotional pricing cannot be combined with other offers unless
    # specifically stated."
    body = _visit(jt)
    client_id = body["booking"]["client_id"]
    card = jt.paid_sale(
        {"client_id": client_id, "items": [{"kind": "gift_certificate", "amount": "100.00"}]}
    )
    refused = jt.ask_refund(card, {"reason": "changed_mind"})
    assert refused["outcome"] == "refused" and "non-refundable" in refused["clause"]["text"]
    promo = {
        "kind": "package",
        "service_id": jt.services["facial"],
        "sessions": 3,
        "price": "300.00",
        "promotional": True,
    }
    both = jt.sale({"client_id": client_id, "items": [promo, promo]})
    problem = assert_problem(both, 422, "promotions-do-not-combine")
    assert problem["clause"] == "jt_policy.promotions"
    one = jt.paid_sale({"client_id": client_id, "items": [promo]})
    assert jt.ask_refund(one, {"reason": "changed_mind"})["outcome"] == "refused"
    closed = jt.client.post(
        f"{jt.api}/packages/{one['lines'][0]['client_package_id']}/closure", headers=jt.auth
    ).get_json()
    assert closed["store_credit"] is None  # a promotional package leaves no credit
    assert ("refund", 10000) not in jt.ledger()
