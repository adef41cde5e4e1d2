"""A clinic made from its tenants/ file on the live app, and the steps of a client's visits
through the API: book, pay or save a card, cancel, reschedule, arrive, miss, check out, return.
"""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import stripe
import time_machine
from sqlalchemy import select

from core import clock
from core.accounts.models import Role
from core.extensions import db
from core.ledger import LedgerEntry
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from core.tenancy.services import plugin_host
from core.tenancy.tenants_file import load_tenant_files
from tests.helpers import issue_token, make_provider, make_service, make_staff
from tests.local_days import clinic_day, local_time
from tests.payment_flows import pay_in_browser, wait_for
from tests.stripe_server import sign


@dataclass
class Scenario:
    """One clinic on the live app, and the API calls of its clients' visits."""

    client: Any
    live: dict[str, Any]
    slug: str
    account: str
    timezone: str
    location_id: int
    auth: dict[str, str]
    provider_id: int
    services: dict[str, int] = field(default_factory=dict)
    guests: int = 0

    @property
    def api(self) -> str:
        return f"/api/v1/clinics/{self.slug}"

    # --- the clinic's books -------------------------------------------------------------------

    def scoped(self, query: Any) -> Any:
        with self.live["app"].app_context():
            clinic = db.session.scalar(select(Clinic).where(Clinic.slug == self.slug))
            with clinic_scope(clinic):
                return query()

    def ledger(self) -> list[tuple[str, int]]:
        return self.scoped(
            lambda: sorted(
                (e.kind.value, e.amount_minor) for e in db.session.scalars(select(LedgerEntry))
            )
        )

    def entries(self, kind: str) -> list[LedgerEntry]:
        return self.scoped(
            lambda: [
                (e.amount_minor, e.currency, e.details)
                for e in db.session.scalars(
                    select(LedgerEntry).where(LedgerEntry.kind == kind).order_by(LedgerEntry.id)
                )
            ]
        )

    def run_jobs(self) -> None:
        """The periodic job: charge fees, settle deposits, expire credit."""
        from core.jobs.tasks import charge_fees, expire_store_credit

        with self.live["app"].app_context():
            charge_fees()
            expire_store_credit()

    # --- booking ------------------------------------------------------------------------------

    def at(self, days: int, hour: int = 10, minute: int = 0) -> datetime:
        return local_time(self.timezone, clinic_day(self.timezone, days), hour, minute)

    def guest(self, n: int | None = None) -> dict[str, str]:
        if n is None:
            self.guests += 1
            n = self.guests
        return {
            "legal_first_name": f"Client{n}",
            "legal_last_name": "Rivera",
            "email": f"client{n}@example.com",
            "phone": "+64 21 123 4567" if self.timezone == "Pacific/Auckland" else "(408) 555-0101",
            "date_of_birth": "1990-05-04",
        }

    def book(self, service: str, starts_at: datetime, guest: dict | None = None) -> dict:
        response = self.client.post(
            f"{self.api}/bookings/online",
            json={
                "client": guest or self.guest(),
                "service_id": self.services[service],
                "location_id": self.location_id,
                "provider_id": self.provider_id,
                "starts_at": starts_at.isoformat(),
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def status(self, body: dict) -> str:
        from core.bookings.models import Booking

        booking_id = body["booking"]["id"]
        return self.scoped(lambda: db.session.get(Booking, booking_id).status.value)

    def pay_deposit(self, body: dict) -> None:
        """Pay what the booking owes up front as the browser would; the webhook confirms it."""
        assert body["payment"]["stripe_account"] == self.account
        pay_in_browser(self.live, body["payment"])
        wait_for(lambda: self.status(body) == "confirmed")

    def save_card(self, body: dict, number: str = "4242424242424242") -> None:
        """Save a card for the guarantee (SetupIntent), agreeing to the policy."""
        url = f"{self.api}/self-service/{body['self_service_token']}/card-setup"
        setup = self.client.post(url, json={"accept_policy": True}).get_json()
        assert setup["stripe_account"] == self.account
        api = stripe.StripeClient(
            "sk_test_browser", base_addresses={"api": self.live["stripe"].upstream}
        )
        card = api.v1.payment_methods.create(
            {
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        setup_id = setup["client_secret"].split("_secret_")[0]
        api.v1.setup_intents.confirm(setup_id, {"payment_method": card.id})
        event = json.dumps(
            {
                "id": f"evt_setup_{setup_id}",
                "object": "event",
                "type": "setup_intent.succeeded",
                "account": self.account,
                "created": int(time.time()),
                "data": {"object": {"id": setup_id, "object": "setup_intent"}},
            }
        )
        response = self.client.post(
            "/webhooks/stripe",
            data=event,
            headers={"Stripe-Signature": sign(event), "Content-Type": "application/json"},
        )
        assert response.get_json()["outcome"] == "succeeded", response.get_data(as_text=True)
        assert self.status(body) == "confirmed"

    def self_service(self, body: dict, action: str, payload: dict | None = None) -> Any:
        return self.client.post(
            f"{self.api}/self-service/{body['self_service_token']}/{action}", json=payload or {}
        )

    def cancel(self, body: dict, hours_before: float | None = None) -> dict:
        """Cancel as the client, now or ``hours_before`` the appointment."""
        with self._around(body, hours_before):
            response = self.self_service(body, "cancellation")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def reschedule(self, body: dict, to: datetime, hours_before: float | None = None) -> Any:
        with self._around(body, hours_before):
            response = self.self_service(body, "reschedule", {"starts_at": to.isoformat()})
        if response.status_code == 200:
            body["booking"]["starts_at"] = to.isoformat()  # the booking keeps its identity
        return response

    def staff(self, body: dict, action: str, payload: dict | None = None, minutes_after: float = 0):
        """A staff action on the booking at its start (plus ``minutes_after``)."""
        starts = datetime.fromisoformat(body["booking"]["starts_at"])
        with time_machine.travel(starts + timedelta(minutes=minutes_after), tick=True):
            return self.client.post(
                f"{self.api}/bookings/{body['booking']['id']}/{action}",
                json=payload or {},
                headers=self.auth,
            )

    def _around(self, body: dict, hours_before: float | None) -> Any:
        if hours_before is None:
            return _nothing()
        starts = datetime.fromisoformat(body["booking"]["starts_at"])
        return time_machine.travel(starts - timedelta(hours=hours_before), tick=True)

    # --- checkout and returns -----------------------------------------------------------------

    def product(self, sku: str, price: str, prescription: bool = False) -> int:
        response = self.client.post(
            f"{self.api}/products",
            json={"sku": sku, "name": sku.title(), "price": price, "prescription": prescription},
            headers=self.auth,
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()["id"]

    def sale(self, body: dict) -> Any:
        return self.client.post(f"{self.api}/sales", json=body, headers=self.auth)

    def pay(self, sale_id: int, body: dict) -> Any:
        return self.client.post(f"{self.api}/sales/{sale_id}/tenders", json=body, headers=self.auth)

    def paid_sale(self, body: dict, tender: dict | None = None) -> dict:
        opened = self.sale(body)
        assert opened.status_code == 201, opened.get_data(as_text=True)
        sale = opened.get_json()
        paid = self.pay(sale["id"], tender or {"kind": "card_on_file"})
        assert paid.status_code == 201, paid.get_data(as_text=True)
        assert paid.get_json()["sale"]["status"] == "paid"
        return sale

    def ask_refund(self, sale: dict, payload: dict, days_after: float = 0, line: int = 0) -> dict:
        url = f"{self.api}/sales/{sale['id']}/lines/{sale['lines'][line]['id']}/refund-requests"
        # Days on the clinic's calendar: the same wall-clock time ``days_after`` days later,
        # which across a daylight-saving change is an hour more or less than 24 h a day.
        later = clock.now().astimezone(ZoneInfo(self.timezone)) + timedelta(days=days_after)
        with time_machine.travel(later, tick=True):
            response = self.client.post(url, json=payload, headers=self.auth)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def approve(self, request: dict, approve: bool = True) -> dict:
        response = self.client.post(
            f"{self.api}/refund-requests/{request['id']}/approval",
            json={"approve": approve},
            headers=self.auth,
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def notices(self, kind: str = "booking_notice") -> list[str]:
        from core.messaging.models import OutboxMessage

        return self.scoped(
            lambda: [
                m.details["body"]
                for m in db.session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.kind == kind)
                    .order_by(OutboxMessage.id)
                )
            ]
        )


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def open_clinic(
    client: Any,
    live: dict[str, Any],
    path: Path,
    *,
    services: dict[str, tuple[str, int, str]],
    credential: str | None = None,
    extra_toml: str = "",
    tmp_path: Path | None = None,
) -> Scenario:
    """Load a clinic from its tenants/ file, connect its Stripe account, and add a provider.

    ``services``: name -> (category, minutes, price). ``extra_toml`` tunes the file as the
    clinic would (written to a copy under ``tmp_path``).
    """
    if extra_toml:
        assert tmp_path is not None
        copy = tmp_path / path.name
        copy.write_text(path.read_text() + "\n" + extra_toml)
        path = copy
    app = live["app"]
    with app.app_context():
        load_tenant_files([path], plugin_host())
        slug = tomllib.loads(path.read_text())["slug"]
        clinic = db.session.scalar(select(Clinic).where(Clinic.slug == slug))
        clinic.stripe_account_id = f"acct_{slug.replace('-', '_')}"
        db.session.commit()
        make_staff(slug, f"owner@{slug}.example.com", Role.owner)
        with clinic_scope(clinic):
            location = db.session.scalar(select(Location).order_by(Location.id).limit(1))
            location_slug, location_id, zone = location.slug, location.id, location.timezone
        provider = make_provider(
            slug, f"provider@{slug}.example.com", location=location_slug, credential=credential
        )
        ids = {
            name: make_service(
                slug,
                name,
                provider_ids=[provider],
                duration=minutes,
                price=price,
                category=category,
                location=location_slug,
            )
            for name, (category, minutes, price) in services.items()
        }
        account = clinic.stripe_account_id
    token = issue_token(app, slug, f"owner@{slug}.example.com")
    return Scenario(
        client=client,
        live=live,
        slug=slug,
        account=account,
        timezone=zone,
        location_id=location_id,
        auth={"Authorization": f"Bearer {token}"},
        provider_id=provider,
        services=ids,
    )
