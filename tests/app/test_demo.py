"""The demo command: each seed clinic's marked demo menu, providers and hours, loaded only by it,
and a deposit paid through the demo's local Stripe server."""

from __future__ import annotations

import re
import threading
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select
from werkzeug.serving import make_server

from core.accounts.models import Membership
from core.bookings.models import Booking
from core.catalog import services as catalog
from core.config import PROJECT_ROOT
from core.demo.data import load_demo
from core.demo.local_stripe import free_port
from core.demo.server import use_local_stripe
from core.extensions import db
from core.schedules import services as schedules
from core.tenancy import services as tenancy
from core.tenancy.models import Location
from core.tenancy.scope import clinic_scope
from tests.payment_flows import GUEST, pay_in_browser, wait_for

TENANTS = PROJECT_ROOT / "tenants"
SEED_CLINICS = ["bijoux", "california-aesthetics", "him-medspa", "jp-medispa", "jt-aesthetic"]


def _clinics(app) -> dict[str, dict]:
    """Each clinic's account, services, providers with their hours, and staff count, as plain data."""
    found = {}
    with app.app_context():
        for clinic in tenancy.all_clinics():
            with clinic_scope(clinic):
                first = db.session.scalar(select(Location.id).order_by(Location.id).limit(1))
                found[clinic.slug] = {
                    "account": clinic.stripe_account_id,
                    "currency": clinic.currency,
                    "first_location": first,
                    "services": [
                        {
                            "id": s.id,
                            "slug": s.slug,
                            "name": s.name,
                            "description": s.description,
                            "category": s.category,
                            "minutes": s.duration_minutes,
                            "price": s.price_minor,
                            "currency": s.currency,
                            "active": s.active,
                            "locations": s.location_ids,
                            "performers": s.provider_ids,
                        }
                        for s in sorted(catalog.services(active_only=False), key=lambda s: s.id)
                    ],
                    "providers": sorted(
                        (
                            p.id,
                            p.display_name,
                            p.credential,
                            tuple((h.location_id, h.weekday, h.starts, h.ends) for h in p.hours),
                        )
                        for p in schedules.providers()
                    ),
                    "staff": db.session.scalar(select(func.count()).select_from(Membership)),
                }
    return found


def _load_demo(app) -> list[str]:
    with app.app_context():
        return load_demo(TENANTS)


def test_each_seed_clinic_gets_a_marked_demo_menu_two_providers_and_hours_once(app, client):
    assert _load_demo(app) == SEED_CLINICS
    first = _clinics(app)
    assert _load_demo(app) == SEED_CLINICS
    assert _clinics(app) == first  # run twice: nothing added, nothing changed

    assert sorted(first) == SEED_CLINICS
    for slug, clinic in first.items():
        assert clinic["account"] == "acct_demo_" + slug.replace("-", "_")
        assert 3 <= len(clinic["services"]) <= 5, slug
        assert len(clinic["providers"]) == 2, slug
        assert clinic["staff"] == 2, slug  # the two providers' accounts, and no one else
        provider_ids = {p[0] for p in clinic["providers"]}
        for _, name, credential, hours in clinic["providers"]:
            assert name.startswith("Demo provider "), name
            assert credential in {"nurse", "esthetician"}
            assert hours and {h[0] for h in hours} == {clinic["first_location"]}
        for service in clinic["services"]:
            name = service["name"]
            assert service["slug"].startswith("demo-"), name
            assert service["description"].startswith("Demo: "), name
            assert service["active"] and service["price"] > 0 and service["minutes"] >= 30
            assert service["currency"] == clinic["currency"]  # JP MediSpa's in NZD
            assert service["locations"] == [clinic["first_location"]]
            assert service["performers"] and set(service["performers"]) <= provider_ids
            # The hosted booking page offers start times for it.
            page = client.get(f"/book/{slug}/services/{service['id']}")
            assert page.status_code == 200, (slug, name)
            assert 'class="time"' in page.get_data(as_text=True), (slug, name)
        menu = client.get(f"/book/{slug}/").get_data(as_text=True)
        assert "Demo: " in menu
    assert first["jp-medispa"]["currency"] == "NZD"


def test_bijoux_demo_menu_is_in_the_categories_of_its_fee_table(app):
    # Bijoux: "For Injection/Laser Treatment Appointments: 30 minutes or less: $50; 60 minutes
    # or more: $100 [...] Esthetician Services: $50 / Any Wellness Service (IV's/vitamin/weight
    # loss injection): $30 / Any Consultation or pellet insertion: $50"
    _load_demo(app)
    with app.app_context():
        clinic = tenancy.clinic_by_slug("bijoux")
        fee_categories = {
            row["category"] for row in clinic.plugin_settings["default_policy"]["fees"]
        }
        with clinic_scope(clinic):
            menu = [(s.category, s.duration_minutes) for s in catalog.services()]
    assert {category for category, _ in menu} <= fee_categories
    # Both rows of the injection/laser fee apply to some demo service.
    injection_laser = [minutes for category, minutes in menu if category == "injection_laser"]
    assert min(injection_laser) <= 30 and max(injection_laser) >= 60


def test_a_plain_app_has_no_demo_data(app, runner, client):
    loaded = runner.invoke(args=["clinics", "load"])
    assert loaded.exit_code == 0, loaded.output
    for slug, clinic in _clinics(app).items():
        assert clinic["services"] == [] and clinic["providers"] == [], slug
        assert clinic["account"] is None
        menu = client.get(f"/book/{slug}/").get_data(as_text=True)
        assert "No treatments can be booked online just now" in menu


def test_the_demo_refuses_to_run_in_production(app, runner):
    app.config["ENV_NAME"] = "production"
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 1
    assert "not in production" in result.output
    assert _clinics(app) == {}  # nothing was loaded


def test_a_deposit_at_jt_is_paid_through_the_demos_local_stripe(app, client, local_stripe):
    # JT: "Deposits made to secure appointments are non-refundable." The demo wires the app to
    # the local Stripe server as the command does; the booking is confirmed by the webhook.
    local_stripe.reset()
    _load_demo(app)
    port = free_port()
    use_local_stripe(app, local_stripe, f"http://127.0.0.1:{port}")
    assert app.config["STRIPE_JS_URL"] == local_stripe.upstream + "/js.stripe.com/v3/"
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        menu = client.get("/book/jt-aesthetic/").get_data(as_text=True)
        service_id = re.search(r"/book/jt-aesthetic/services/(\d+)", menu).group(1)
        times = client.get(f"/book/jt-aesthetic/services/{service_id}").get_data(as_text=True)
        first_time = re.search(r'class="time" href="([^"]+)"', times).group(1)
        chosen = parse_qs(urlsplit(first_time.replace("&amp;", "&")).query)
        response = client.post(
            "/api/v1/clinics/jt-aesthetic/bookings/online",
            json={
                "client": GUEST,
                "service_id": int(service_id),
                "location_id": int(chosen["location"][0]),
                "starts_at": chosen["starts_at"][0],
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        body = response.get_json()
        assert body["payment"]["amount"]["display"] == "$50.00"
        pay_in_browser({"stripe": local_stripe}, body["payment"])

        def status() -> str:
            with app.app_context():
                clinic = tenancy.clinic_by_slug("jt-aesthetic")
                with clinic_scope(clinic):
                    return db.session.get(Booking, body["booking"]["id"]).status.value

        wait_for(lambda: status() == "confirmed")
        assert {c.account for c in local_stripe.calls_to("/v1/payment_intents")} == {
            "acct_demo_jt_aesthetic"
        }
        # The proxy records a relayed webhook once the app has answered it.
        wait_for(lambda: ("payment_intent.succeeded", 200) in local_stripe.deliveries)
    finally:
        server.shutdown()
        local_stripe.webhook_target = None
