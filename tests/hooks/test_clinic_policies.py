"""Each clinic's published policy, enforced end to end: every clinic is made from its tenants/
file, its clients book, pay and change their plans through the API against the local Stripe
server, and the clinic's ledger is checked after each step. Each test quotes the clause it
enforces.
"""

from __future__ import annotations

from datetime import date

import pytest
from dateutil.relativedelta import relativedelta

from core.config import PROJECT_ROOT
from tests.clinic_scenarios import Scenario, open_clinic
from tests.helpers import assert_problem
from tests.local_days import clinic_day

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


@pytest.mark.clock_sensitive
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
    issued = clinic_day(jt.timezone, 10)
    assert date.fromisoformat(item["expires_on"]) == issued + relativedelta(months=12)
    assert ("product_returned", 6000) in jt.ledger()
    assert not [k for k, _ in jt.ledger() if k == "refund"]
    # A walk-in's return has no one to credit: the desk is asked to name the client.
    walk_in = jt.paid_sale(
        {"items": [{"kind": "product", "product_id": serum}]},
        {"kind": "external", "partner": "cash"},
    )
    url = f"{jt.api}/sales/{walk_in['id']}/lines/{walk_in['lines'][0]['id']}/refund-requests"
    nobody = jt.client.post(
        url, json={"reason": "changed_mind", "condition": "unopened"}, headers=jt.auth
    )
    assert_problem(nobody, 409, "no-client")


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
    assert problem["clause"] == "default_policy.promotions"
    one = jt.paid_sale({"client_id": client_id, "items": [promo]})
    assert jt.ask_refund(one, {"reason": "changed_mind"})["outcome"] == "refused"
    closed = jt.client.post(
        f"{jt.api}/packages/{one['lines'][0]['client_package_id']}/closure", headers=jt.auth
    ).get_json()
    assert closed["store_credit"] is None  # a promotional package leaves no credit
    assert ("refund", 10000) not in jt.ledger()


# --- Bijoux Med Spa --------------------------------------------------------------------------------


@pytest.fixture
def bijoux(client, live) -> Scenario:
    return open_clinic(
        client,
        live,
        TENANTS / "bijoux.toml",
        services={
            "filler": ("injection_laser", 30, "450.00"),
            "laser": ("injection_laser", 60, "400.00"),
            "laser45": ("injection_laser", 45, "350.00"),
            "facial": ("esthetician", 60, "140.00"),
            "iv": ("wellness", 45, "180.00"),
            "pellets": ("pellet", 30, "300.00"),
            "consult": ("consultation", 30, "0.00"),
        },
    )


def _guaranteed(bijoux, service, days=3, guest=None, hour=10):
    body = bijoux.book(service, bijoux.at(days, hour), guest or bijoux.guest(1))
    assert body["booking"]["status"] == "held" and body.get("payment") is None
    bijoux.save_card(body)
    return body


def test_bijoux_a_card_guarantees_each_reservation(bijoux):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the
    # reservation, so please have your credit card and/or gift certificate ready when booking."
    body = bijoux.book("facial", bijoux.at(3))
    assert body["booking"]["status"] == "held"
    clauses = [c["id"] for c in body["booking"]["requirements"]["clauses"]]
    assert "default_policy.reservation" in clauses
    bijoux.save_card(body)
    assert bijoux.ledger() == []  # a guarantee takes no money


@pytest.mark.parametrize(
    ("service", "fee"),
    [
        ("filler", 5000),  # "30 minutes or less: $50"
        ("laser", 10000),  # "60 minutes or more: $100"
        ("laser45", 5000),  # left open by the guide: the lesser fee (tenants/bijoux.toml)
        ("facial", 5000),  # "Esthetician Services: $50"
        ("iv", 3000),  # "Any Wellness Service (IV's/vitamin/weight loss injection): $30"
        ("pellets", 5000),  # "Any Consultation or pellet insertion: $50"
        ("consult", 5000),
    ],
)
def test_bijoux_cancelling_within_48_hours_charges_the_table_fee_to_the_card(bijoux, service, fee):
    # Bijoux: "We kindly ask that if you need to cancel or reschedule your appointment, please do
    # so with at least 48 hours notice. Any cancellations or no-shows within this timeframe will
    # incur a fee automatically charged to the card on file"
    body = _guaranteed(bijoux, service)
    decision = bijoux.cancel(body, hours_before=47)
    assert decision["decision"]["fee"]["amount"] == fee
    assert "48 hours notice" in decision["decision"]["clause"]["text"]
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", fee)]
    charges = [
        c
        for c in bijoux.live["stripe"].calls_to("/v1/payment_intents")
        if "off_session" in c.params
    ]
    assert [(c.account, c.params["amount"]) for c in charges] == [(bijoux.account, [str(fee)])]
    told = bijoux.notices()[-1]
    assert f"${fee // 100}.00" in told and "48 hours notice" in told


def test_bijoux_cancelling_with_notice_costs_nothing_and_a_no_show_costs_the_fee(bijoux):
    # Bijoux: "Any cancellations or no-shows within this timeframe will incur a fee"
    early = _guaranteed(bijoux, "facial", days=4)
    assert bijoux.cancel(early, hours_before=49)["decision"]["fee"]["amount"] == 0
    bijoux.run_jobs()
    assert bijoux.ledger() == []
    missed = _guaranteed(bijoux, "laser", days=3, hour=13)
    response = bijoux.staff(missed, "no-show", minutes_after=20)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["decision"]["fee"]["amount"] == 10000
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", 10000)]


def test_bijoux_a_failed_reminder_does_not_waive_the_fee(bijoux, inbox):
    # Bijoux: "Should the appointment reminder system fail for any reason and you do not receive
    # an appointment reminder, it is still your responsibility to manage your appointment and
    # adhere to the cancellation policy."
    from sqlalchemy import update

    from core.extensions import db
    from core.messaging.models import OutboxMessage

    body = _guaranteed(bijoux, "facial")
    bijoux.scoped(
        lambda: (
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.kind == "reminder")
                .values(status="failed", last_error="SMTP refused")
            ),
            db.session.commit(),
        )
    )
    assert (
        bijoux.staff(body, "no-show", minutes_after=30).get_json()["decision"]["fee"]["amount"]
        == 5000
    )
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", 5000)]


def test_bijoux_a_late_client_chooses_a_shorter_treatment_or_a_reschedule(bijoux):
    # Bijoux: "If you're more than 15 minutes late, we may need to reschedule your appointment";
    # "1) You may opt to shorten your treatment [...] Abbreviated treatments are charged at full
    # value [...] 2) You may prefer to reschedule your appointment at a more convenient time,
    # however, a cancellation charge will be incurred. If possible, a missed appointment may be
    # rescheduled within the same day to avoid a charge, if an opening is available."
    on_time = _guaranteed(bijoux, "facial", days=3, hour=9)
    checked = bijoux.staff(on_time, "check-in", minutes_after=14)
    assert checked.get_json()["decision"]["options"] == ["proceed"]
    late = _guaranteed(bijoux, "facial", days=4, hour=10)
    asked = bijoux.staff(late, "check-in", minutes_after=20).get_json()["decision"]
    assert asked["options"] == [
        "shorten_full_price",
        "reschedule_with_fee",
        "reschedule_same_day_free",
    ]
    same_day = bijoux.at(4, 15).isoformat()
    free = bijoux.staff(
        late,
        "late-arrival",
        {"option": "reschedule_same_day_free", "new_starts_at": same_day},
        minutes_after=21,
    )
    assert free.status_code == 200, free.get_data(as_text=True)
    assert free.get_json()["decision"]["fee"]["amount"] == 0
    later = _guaranteed(bijoux, "filler", days=5, hour=10)
    bijoux.staff(later, "check-in", minutes_after=25)
    moved = bijoux.staff(
        later,
        "late-arrival",
        {"option": "reschedule_with_fee", "new_starts_at": bijoux.at(7, 10).isoformat()},
        minutes_after=26,
    )
    assert moved.get_json()["decision"]["fee"]["amount"] == 5000
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", 5000)]


def test_bijoux_three_incidents_mean_prepaying_credited_only_when_moved_24_hours_ahead(bijoux):
    # Bijoux: "if a client has three instances of no-show or late cancellation, they will be
    # required to prepay for future services at the time of booking. This prepayment is
    # nonrefundable if the policy is violated. However, if you reschedule your appointment prior
    # to 24 hours of the appointment time, the prepaid amount will be credited for future
    # services at Bijoux."
    regular = bijoux.guest(1)
    for day in (3, 4, 5):
        body = _guaranteed(bijoux, "iv", days=day, guest=regular)
        bijoux.cancel(body, hours_before=10)
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", 3000)] * 3
    prepaid = bijoux.book("facial", bijoux.at(6), regular)
    assert prepaid["booking"]["status"] == "held"
    assert prepaid["payment"]["amount"]["amount"] == 14000
    assert prepaid["payment"]["purpose"] == "prepayment"
    bijoux.pay_deposit(prepaid)
    moved = bijoux.reschedule(prepaid, bijoux.at(8), hours_before=30)
    assert moved.get_json()["decision"]["deposit"] == "moved"
    assert moved.get_json()["decision"]["fee"]["amount"] == 0
    assert ("deposit_moved", 14000) in bijoux.ledger()
    kept = bijoux.reschedule(prepaid, bijoux.at(9), hours_before=20)
    assert kept.get_json()["decision"]["deposit"] == "forfeited"
    assert ("deposit_forfeited", 14000) in bijoux.ledger()
    # Another prepaid visit cancelled with notice: credited for future services.
    second = bijoux.book("facial", bijoux.at(10), regular)
    bijoux.pay_deposit(second)
    assert bijoux.cancel(second, hours_before=72)["decision"]["deposit"] == "credited"
    bijoux.run_jobs()
    assert ("store_credit_issued", 14000) in bijoux.ledger()
    assert not [k for k, _ in bijoux.ledger() if k == "refund"]


def test_bijoux_corrective_refunds_need_a_provider_and_management(bijoux):
    # Bijoux: "We do not offer refunds on any services appropriately rendered. [...] a refund
    # will be considered on a case-by-case basis. Each case must be assessed by one of our
    # providers and approved by upper management."
    body = _guaranteed(bijoux, "facial")
    assert bijoux.staff(body, "check-in").status_code == 200
    sale = bijoux.paid_sale({"booking_id": body["booking"]["id"]})
    assert ("card_payment", 14000) in bijoux.ledger()
    unassessed = bijoux.ask_refund(sale, {"reason": "dissatisfied"})
    assert unassessed["outcome"] == "refused"
    assessed = bijoux.ask_refund(
        sale, {"reason": "dissatisfied", "assessed_by_provider_id": bijoux.provider_id}
    )
    assert (assessed["outcome"], assessed["status"]) == ("refund", "awaiting_approval")
    assert not [k for k, _ in bijoux.ledger() if k == "refund"]
    done = bijoux.approve(assessed)
    assert done["status"] == "done"
    assert ("refund", 14000) in bijoux.ledger()
    refunds = bijoux.live["stripe"].calls_to("/v1/refunds")
    assert [(c.account, c.idempotency_key.startswith("refund-request:")) for c in refunds] == [
        (bijoux.account, True)
    ]


def test_bijoux_product_returns_allergy_credit_defect_exchange_never_prescription(bijoux):
    # Bijoux: "We do not offer cash refunds on purchased products. Products may be returned for
    # in-store credit within 14 days from the date of purchase with a receipt when there is a
    # documented allergic reaction to the product. Defective products (e.g. a broken cap) may be
    # exchanged within 14 days of purchase for the same product only, with a receipt. In
    # accordance with federal law, we do not offer refunds or exchanges on prescription products
    # for any reason."
    body = _guaranteed(bijoux, "facial")
    client_id = body["booking"]["client_id"]
    cream = bijoux.product("cream", "80.00")
    tretinoin = bijoux.product("tretinoin", "90.00", prescription=True)
    sale = bijoux.paid_sale(
        {
            "client_id": client_id,
            "items": [
                {"kind": "product", "product_id": cream, "quantity": 2},
                {"kind": "product", "product_id": tretinoin},
            ],
        }
    )
    changed_mind = bijoux.ask_refund(sale, {"reason": "changed_mind", "quantity": 1})
    assert (
        changed_mind["outcome"] == "refused"
        and "not offer cash refunds" in changed_mind["clause"]["text"]
    )
    no_receipt = bijoux.ask_refund(
        sale, {"reason": "allergic_reaction", "quantity": 1, "has_receipt": False}
    )
    assert no_receipt["outcome"] == "refused"
    undocumented = bijoux.ask_refund(sale, {"reason": "allergic_reaction", "quantity": 1})
    assert undocumented["outcome"] == "refused"
    allergy = bijoux.ask_refund(
        sale,
        {
            "reason": "allergic_reaction",
            "quantity": 1,
            "note": "Hives after two uses; photo on file.",
        },
        days_after=10,
    )
    assert (allergy["outcome"], allergy["status"], allergy["amount"]["amount"]) == (
        "store_credit",
        "done",
        8000,
    )
    late = bijoux.ask_refund(sale, {"reason": "defective", "quantity": 1}, days_after=15)
    assert late["outcome"] == "refused"
    defect = bijoux.ask_refund(sale, {"reason": "defective", "quantity": 1}, days_after=3)
    assert (defect["outcome"], defect["status"]) == ("exchange", "done")
    prescription = bijoux.ask_refund(sale, {"reason": "defective"}, line=1)
    assert prescription["outcome"] == "refused" and "prescription" in prescription["clause"]["text"]
    ledger = bijoux.ledger()
    assert ("store_credit_issued", 8000) in ledger and ("product_exchanged", 0) in ledger
    assert not [k for k, _ in ledger if k == "refund"]


def test_bijoux_packages_gift_certificates_and_gratuity(bijoux, client, live):
    # Bijoux: "All packages must be paid in full prior to the time of first treatment.";
    # "Gift Certificates are not redeemable for cash."; "Gratuity is not customary for medical
    # services performed by physicians or nurses. Gratuities for spa services are optional."
    body = _guaranteed(bijoux, "facial")
    client_id = body["booking"]["client_id"]
    package = bijoux.sale(
        {
            "client_id": client_id,
            "items": [
                {
                    "kind": "package",
                    "service_id": bijoux.services["facial"],
                    "sessions": 3,
                    "price": "360.00",
                }
            ],
        }
    ).get_json()
    assert bijoux.staff(body, "check-in").status_code == 200
    visit = bijoux.sale({"booking_id": body["booking"]["id"], "gratuity": "20.00"})
    assert visit.status_code == 201, visit.get_data(
        as_text=True
    )  # an esthetician: optional gratuity
    unpaid = bijoux.pay(
        visit.get_json()["id"],
        {"kind": "package_session", "client_package_id": package["lines"][0]["client_package_id"]},
    )
    problem = assert_problem(unpaid, 409, "package-not-active")
    assert problem["errors"][0]["field"] == "client_package_id"
    gift = bijoux.paid_sale(
        {"client_id": client_id, "items": [{"kind": "gift_certificate", "amount": "75.00"}]}
    )
    assert bijoux.ask_refund(gift, {"reason": "changed_mind"})["outcome"] == "refused"
    # A nurse's injection: no gratuity line is offered.
    from tests.helpers import make_provider

    with live["app"].app_context():
        nurse = make_provider(
            "bijoux", "nurse@bijoux.example.com", location="spa", credential="nurse"
        )
        from tests.helpers import make_service

        botox = make_service(
            "bijoux",
            "botox",
            provider_ids=[nurse],
            duration=30,
            category="injection_laser",
            location="spa",
        )
    bijoux.provider_id, bijoux.services["botox"] = nurse, botox
    injection = _guaranteed(bijoux, "botox", days=4)
    bijoux.staff(injection, "check-in")
    refused = bijoux.sale({"booking_id": injection["booking"]["id"], "gratuity": "10.00"})
    problem = assert_problem(refused, 422, "gratuity-not-offered")
    assert "physicians or nurses" in problem["detail"]
    # The same nurse giving a facial, a spa service: a gratuity is optional.
    with live["app"].app_context():
        spa = make_service(
            "bijoux", "nurse-facial", provider_ids=[nurse], category="esthetician", location="spa"
        )
    bijoux.services["nurse-facial"] = spa
    facial = _guaranteed(bijoux, "nurse-facial", days=5)
    bijoux.staff(facial, "check-in")
    tipped = bijoux.sale({"booking_id": facial["booking"]["id"], "gratuity": "10.00"})
    assert tipped.status_code == 201, tipped.get_data(as_text=True)


# --- the clinics on the platform default: California Aesthetics, JP MediSpa, Him. Medspa ---------

# How each tunes the documented default in its tenants/ file (docs/plugins/default_policy.md):
# "Please give at least {hours} hours' notice to cancel or reschedule; later cancellations and
# missed appointments may be charged {fee}."
TUNED = """
[plugins.settings.default_policy]
guarantee = "card_on_file"
deposit = "50.00"
cancellation_window_hours = 24
late_cancellation_fee = "25.00"
no_show_fee = "50.00"
"""


@pytest.fixture(params=["california-aesthetics", "jp-medispa", "him-medspa"])
def tuned(request, client, live, tmp_path) -> Scenario:
    return open_clinic(
        client,
        live,
        TENANTS / f"{request.param}.toml",
        services={
            "facial": ("esthetician", 60, "150.00"),
            "laser": ("injection_laser", 30, "250.00"),
        },
        extra_toml=TUNED,
        tmp_path=tmp_path,
    )


def test_a_default_policy_clinic_runs_every_outcome_through_its_ledger(tuned):
    # Platform default, tuned: "Please give at least 24 hours' notice to cancel or reschedule;
    # later cancellations and missed appointments may be charged $25.00." (NZ$ at JP MediSpa)
    s = tuned
    currency = "NZD" if s.slug == "jp-medispa" else "USD"
    regular = s.guest(1)
    first = s.book("facial", s.at(3), regular)
    assert first["payment"]["amount"]["currency"] == currency
    s.pay_deposit(first)
    assert s.ledger() == [("deposit_received", 5000)]
    # Reschedule with notice: the deposit moves, nothing is charged.
    assert s.reschedule(first, s.at(4)).get_json()["decision"]["deposit"] == "moved"
    assert s.ledger() == [("deposit_moved", 5000), ("deposit_received", 5000)]
    # Cancel with notice: the deposit goes back to the card, once.
    assert s.cancel(first, hours_before=30)["decision"]["deposit"] == "refunded"
    s.run_jobs()
    s.run_jobs()
    assert s.ledger() == [("deposit_moved", 5000), ("deposit_received", 5000), ("refund", 5000)]
    # Cancel late: the fee is charged and the deposit kept.
    second = s.book("laser", s.at(5), regular)
    s.pay_deposit(second)
    late = s.cancel(second, hours_before=3)
    assert late["decision"]["fee"]["amount"] == 2500
    assert "24 hours' notice" in late["decision"]["clause"]["text"]
    s.run_jobs()
    assert ("fee_charged", 2500) in s.ledger() and ("deposit_forfeited", 5000) in s.ledger()
    # Miss it: the no-show fee and the deposit kept.
    third = s.book("facial", s.at(6), regular)
    s.pay_deposit(third)
    assert (
        s.staff(third, "no-show", minutes_after=30).get_json()["decision"]["fee"]["amount"] == 5000
    )
    s.run_jobs()
    assert ("fee_charged", 5000) in s.ledger()
    assert s.ledger().count(("deposit_forfeited", 5000)) == 2
    # Come, pay the balance, then ask for a refund: a manager decides, and it goes back once.
    fourth = s.book("facial", s.at(7), regular)
    s.pay_deposit(fourth)
    assert s.staff(fourth, "check-in").status_code == 200
    sale = s.paid_sale({"booking_id": fourth["booking"]["id"]})
    assert ("deposit_applied", 5000) in s.ledger() and ("card_payment", 10000) in s.ledger()
    asked = s.ask_refund(sale, {"reason": "dissatisfied"})
    assert asked["status"] == "awaiting_approval"
    assert (
        asked["clause"]["text"] == "Refunds are considered case by case and approved by management."
    )
    s.approve(asked)
    s.approve(asked)
    assert s.ledger().count(("refund", 10000)) == 1
    # A product returned under the default: a manager's refund too.
    serum = s.product("serum", "30.00")
    bought = s.paid_sale(
        {
            "client_id": fourth["booking"]["client_id"],
            "items": [{"kind": "product", "product_id": serum}],
        }
    )
    s.approve(s.ask_refund(bought, {"reason": "changed_mind", "condition": "unopened"}))
    assert ("product_returned", 3000) in s.ledger() and ("refund", 3000) in s.ledger()
    entries = s.entries("fee_charged")
    assert {currency} == {c for _, c, _ in entries}


def test_him_takes_financing_partners_and_memberships(client, live, tmp_path):
    # Him. Medspa: "Payment processors and financing partners (e.g., Cherry, CareCredit)" and
    # "Processing payments and managing memberships".
    him = open_clinic(
        client,
        live,
        TENANTS / "him-medspa.toml",
        services={"trt": ("wellness", 30, "900.00")},
        extra_toml='[plugins.settings.default_policy]\nguarantee = "card_on_file"\n',
        tmp_path=tmp_path,
    )
    body = him.book("trt", him.at(3))
    him.save_card(body)
    assert him.staff(body, "check-in").status_code == 200
    bill = him.sale({"booking_id": body["booking"]["id"]}).get_json()
    cherry = him.pay(
        bill["id"],
        {"kind": "external", "partner": "cherry", "reference": "CH-2291", "amount": "600.00"},
    )
    assert cherry.status_code == 201, cherry.get_data(as_text=True)
    care = him.pay(bill["id"], {"kind": "external", "partner": "carecredit", "reference": "CC-77"})
    assert care.get_json()["sale"]["status"] == "paid"
    assert him.ledger() == [("external_tender", 30000), ("external_tender", 60000)]
    assert [d["partner"] for _, _, d in him.entries("external_tender")] == ["cherry", "carecredit"]
    plan = client.post(
        f"{him.api}/membership-plans",
        json={"name": "Him. Wellness Membership", "price": "199.00", "interval": "month"},
        headers=him.auth,
    ).get_json()
    member = client.post(
        f"{him.api}/clients/{body['booking']['client_id']}/memberships",
        json={"plan_id": plan["id"]},
        headers=him.auth,
    )
    assert member.status_code == 201, member.get_data(as_text=True)
    assert member.get_json()["status"] == "active"
    from tests.payment_flows import wait_for

    wait_for(lambda: ("membership_payment", 19900) in him.ledger())


# --- a clinic onboarded with a tenants/ file alone ------------------------------------------------


def test_an_auckland_clinic_from_a_file_alone_charges_nz40_inside_24_hours(client, live):
    # Issue: "a test clinic in Auckland (NZD, Pacific/Auckland, New Zealand privacy) with a
    # 24-hour window and fees of NZ$40, made only from a file."
    auckland = open_clinic(
        client,
        live,
        PROJECT_ROOT / "tests" / "tenants" / "auckland-skin.toml",
        services={"facial": ("esthetician", 60, "190.00")},
    )
    assert auckland.timezone == "Pacific/Auckland"
    rights = client.get(f"{auckland.api}/privacy-rights").get_json()
    sources = {c.get("source") or "" for r in rights["items"] for c in r["clauses"]}
    assert any("Privacy Act 2020" in source for source in sources), sources
    early = auckland.book("facial", auckland.at(3))
    auckland.save_card(early)
    assert auckland.cancel(early, hours_before=25)["decision"]["fee"]["amount"] == 0
    late = auckland.book("facial", auckland.at(4))
    auckland.save_card(late)
    decision = auckland.cancel(late, hours_before=23)["decision"]
    # Shown as its clients read it: "$40.00" in New Zealand (en_NZ).
    assert decision["fee"] == {"amount": 4000, "currency": "NZD", "display": "$40.00"}
    assert decision["clause"]["text"].startswith("Please give us 24 hours' notice")
    missed = auckland.book("facial", auckland.at(5))
    auckland.save_card(missed)
    assert (
        auckland.staff(missed, "no-show", minutes_after=30).get_json()["decision"]["fee"]["amount"]
        == 4000
    )
    auckland.run_jobs()
    assert auckland.ledger() == [("fee_charged", 4000), ("fee_charged", 4000)]
    charged = [
        c for c in live["stripe"].calls_to("/v1/payment_intents") if "off_session" in c.params
    ]
    assert {(c.account, c.params["currency"][0]) for c in charged} == {
        ("acct_auckland_skin", "nzd")
    }


# A clinic with a fee table by service category and duration, like Bijoux's, but its own window
# and its own words, written in a tenants document and nothing else.
LUMEN = """
slug = "lumen-skin"
name = "Lumen Skin Bar"
country = "US"
timezone = "America/Chicago"
currency = "USD"

[[locations]]
slug = "loop"
name = "Lumen Skin Bar Loop"
country = "US"
timezone = "America/Chicago"

[plugins.settings.default_policy]
source = "Lumen Skin Bar, Booking Terms"
guarantee = "card_on_file"
booking_clauses = ["reservation", "cancellation"]
reservation_clause = "Save a card to hold your spot; nothing is charged until your visit."
cancellation_window_hours = 36
cancellation_clause = "Plans change: tell us {hours} hours ahead and it costs nothing. Inside {hours} hours, laser sessions of 45 minutes or less cost $40 and longer ones $90, charged to your saved card."
late_arrival_grace_minutes = 10

[[plugins.settings.default_policy.fees]]
category = "injection_laser"
max_minutes = 45
fee = "40.00"

[[plugins.settings.default_policy.fees]]
category = "injection_laser"
min_minutes = 46
fee = "90.00"
"""

#: Words only another clinic's published policy says.
OTHER_CLINICS = ("Bijoux", "JT", "48 hours notice", "Deposits made to secure appointments")


def test_a_clinic_from_a_file_alone_with_a_fee_table_quotes_only_its_own_words(
    client, live, tmp_path
):
    # DESIGN.md, Plugins:
    # "A new clinic whose rules fit existing plugins needs only a tenants/ file."
    # Its fee table by category and duration is charged in its own window, and every clause
    # it is told is its own: never another clinic's.
    path = tmp_path / "lumen-skin.toml"
    path.write_text(LUMEN)
    lumen = open_clinic(
        client,
        live,
        path,
        services={
            "short": ("injection_laser", 30, "220.00"),
            "long": ("injection_laser", 60, "380.00"),
        },
    )
    early = lumen.book("short", lumen.at(3))
    lumen.save_card(early)
    shown = early["booking"]["requirements"]["clauses"]
    assert [c["id"] for c in shown] == [
        "default_policy.reservation",
        "default_policy.cancellation",
    ]
    assert lumen.cancel(early, hours_before=37)["decision"]["fee"]["amount"] == 0
    late = lumen.book("long", lumen.at(4))
    lumen.save_card(late)
    decision = lumen.cancel(late, hours_before=30)["decision"]
    assert decision["fee"]["amount"] == 9000
    clause = decision["clause"]
    assert clause["id"] == "default_policy.cancellation"
    assert clause["text"].startswith("Plans change: tell us 36 hours ahead and it costs nothing.")
    assert clause["source"] == "Lumen Skin Bar, Booking Terms"
    lumen.run_jobs()
    assert lumen.ledger() == [("fee_charged", 9000)]
    told = lumen.notices()[-1]
    assert "$90.00" in told and "36 hours ahead" in told
    for text in [clause["text"], told, *(c["text"] for c in shown)]:
        assert not [words for words in OTHER_CLINICS if words in text], text


def test_bijoux_a_gift_certificate_guarantees_a_reservation_by_its_code(bijoux):
    # Bijoux: "All services require a valid credit card or gift certificate to guarantee the
    # reservation"
    gift = bijoux.paid_sale(
        {"items": [{"kind": "gift_certificate", "amount": "100.00"}]},
        {"kind": "external", "partner": "cash"},
    )
    code = gift["gift_certificate_codes"][0]
    body = bijoux.book("facial", bijoux.at(3))
    url = f"{bijoux.api}/bookings/{body['booking']['id']}/confirmation"
    wrong = bijoux.client.post(
        url,
        json={"method": "gift_certificate", "gift_certificate_code": "AAAA-AAAA-AAAA-AAAA"},
        headers=bijoux.auth,
    )
    assert assert_problem(wrong, 404)["errors"][0]["field"] == "code"
    done = bijoux.client.post(
        url, json={"method": "gift_certificate", "gift_certificate_code": code}, headers=bijoux.auth
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert bijoux.status(body) == "confirmed"


def test_bijoux_a_client_arriving_with_children_or_pets_is_rescheduled_with_the_fee(bijoux):
    # Bijoux: "Patients arriving with children or pets will be rescheduled and charged the late
    # rescheduling fee."
    body = _guaranteed(bijoux, "iv")
    moved = bijoux.staff(
        body, "turned-away", {"reason": "children", "new_starts_at": bijoux.at(6).isoformat()}
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    decision = moved.get_json()["decision"]
    assert decision["fee"]["amount"] == 3000
    assert decision["clause"]["text"].startswith("Patients arriving with children or pets")
    bijoux.run_jobs()
    assert bijoux.ledger() == [("fee_charged", 3000)]
    assert bijoux.status(body) == "confirmed"


def test_bijoux_a_shortened_treatment_is_charged_at_full_value(bijoux):
    # Bijoux: "Abbreviated treatments are charged at full value, so please plan accordingly."
    body = _guaranteed(bijoux, "facial")
    bijoux.staff(body, "check-in", minutes_after=25)
    shortened = bijoux.staff(
        body, "late-arrival", {"option": "shorten_full_price"}, minutes_after=26
    )
    assert shortened.status_code == 200, shortened.get_data(as_text=True)
    bill = bijoux.sale({"booking_id": body["booking"]["id"]}).get_json()
    assert bill["total"]["amount"] == 14000  # the full price of the booked treatment
