"""No N+1: each list route of the API issues as many SQL statements for a full page as for one row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from core import clock
from core.accounts import services as accounts
from core.accounts.models import Membership, Role, User
from core.audit import services as audit
from core.audit.models import AuditAction
from core.bookings.models import Booking, BookingCharge, BookingStatus, PolicyVersion
from core.catalog.models import Resource, Service, ServiceLocation, ServiceProvider
from core.clients.models import (
    AdverseReaction,
    Client,
    ClinicalNote,
    Consent,
    ConsentKind,
    ConsentMethod,
    EmergencyAccess,
    HealthIntake,
    NoteKind,
    Photo,
    PhotoKind,
    ProductSetting,
    ProductUse,
    Severity,
)
from core.clients.services import fold
from core.extensions import db
from core.hooks.host import CORE_DEFAULTS
from core.integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from core.ledger import services as ledger
from core.ledger.models import LedgerKind
from core.money import Money
from core.payments.models import Dispute, EvidenceStatus
from core.privacy.models import (
    BreachIncident,
    BreachNotice,
    DataRecipient,
    OptOutReview,
    PrivacyRequest,
    ProcessorNotice,
    ProcessorNoticeStatus,
    RequestStatus,
)
from core.sales.models import (
    ClientMembership,
    LineKind,
    MembershipPlan,
    Product,
    RefundRequest,
    RefundStatus,
    Sale,
    SaleLine,
    StoreCredit,
)
from core.schedules import services as schedules
from core.schedules.models import Provider, TimeOff, WorkingHours
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from tests.helpers import PASSWORD, issue_token, make_clinic, make_staff

SLUG = "alpha"
OWNER = "owner@alpha.example.com"
OPERATOR = "ops@platform.example.com"
#: The plugins a clinic may enable (besides the core defaults every clinic has).
PLUGINS = ("ccpa", "florida", "hipaa_aligned", "nz_privacy")


@dataclass(frozen=True)
class World:
    """The clinic every route is asked about, and the rows its lists hang from."""

    clinic_id: int
    location_id: int
    provider_id: int
    service_id: int
    client_id: int
    policy_version_id: int
    webhook_endpoint_id: int


Seeder = Callable[[World, int, int], None]


@dataclass(frozen=True)
class ListRoute:
    """A list route, and how to fill its list: ``seed(world, start, stop)`` adds rows start..stop-1."""

    path: str
    seed: Seeder
    #: Rows of this list the world already has.
    present: int = 0
    #: How many rows the list holds at each of the two requests compared.
    sizes: tuple[int, int] = (1, 100)
    #: Whether the response lists exactly that many items (a list of rows, not one derived).
    exact: bool = True
    query: dict[str, Any] = field(default_factory=dict)
    operator: bool = False


def _staff_member(n: int, role: Role = Role.provider) -> Membership:
    """A new user on the clinic's staff, made with the models (no password hashing)."""
    user = User(email=f"staff{n}@alpha.example.com", name=f"Staff {n}", password_hash="unused")
    db.session.add(user)
    db.session.flush()
    membership = Membership(user_id=user.id, role=role)
    db.session.add(membership)
    db.session.flush()
    return membership


def _client(n: int) -> Client:
    first, last = f"Client{n:03d}", f"Zeta{n:03d}"
    return Client(
        legal_first_name=first,
        legal_last_name=last,
        search_first=fold(first),
        search_last=fold(last),
        email=f"client{n}@example.com",
    )


def seed_staff(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        _staff_member(n)


def seed_tokens(w: World, start: int, stop: int) -> None:
    # Each token of another person: a list that loaded each token's user would show it.
    for n in range(start, stop):
        accounts.issue_token(_staff_member(n), f"token {n}")


def seed_audit_events(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        audit.record(
            AuditAction.read, "clinical_note", client_id=w.client_id, resource_id=n, fields=["body"]
        )


def seed_disclosures(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        audit.record(
            AuditAction.disclose,
            "client",
            client_id=w.client_id,
            reason=f"referral {n}",
            recipient=f"Recipient {n}",
        )


def seed_bookings(w: World, start: int, stop: int) -> None:
    first = datetime(2027, 3, 1, 17, tzinfo=UTC)
    for n in range(start, stop):
        starts = first + timedelta(hours=n)
        # Each for another client: a list that loaded each booking's client would show it.
        client = _client(1000 + n)
        db.session.add(client)
        db.session.flush()
        booking = Booking(
            client_id=client.id,
            service_id=w.service_id,
            provider_id=w.provider_id,
            location_id=w.location_id,
            starts_at=starts,
            ends_at=starts + timedelta(minutes=60),
            blocks_until=starts + timedelta(minutes=60),
            status=BookingStatus.confirmed,
            source="staff",
            price_minor=10000,
            currency="USD",
            requirements={},
            policy_version_id=w.policy_version_id,
            policy_accepted_at=clock.now(),
            manage_nonce=f"nonce{n}",
        )
        db.session.add(booking)
        db.session.flush()
        db.session.add(
            BookingCharge(
                booking_id=booking.id,
                kind="deposit",
                amount_minor=2500,
                currency="USD",
                status="paid",
                clause_id="deposit",
                clause_text="A deposit holds the booking.",
            )
        )


def seed_clients(w: World, start: int, stop: int) -> None:
    db.session.add_all(_client(n) for n in range(start, stop))


def seed_intake_versions(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        HealthIntake(
            client_id=w.client_id,
            version=n + 1,
            answers={"allergies": [f"allergen {n}"]},
            change_reason=f"visit {n}",
        )
        for n in range(start, stop)
    )


def seed_notes(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        ClinicalNote(client_id=w.client_id, kind=NoteKind.skin, body=f"Note {n}")
        for n in range(start, stop)
    )


def seed_products(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        ProductUse(client_id=w.client_id, product=f"Serum {n}", setting=ProductSetting.at_home)
        for n in range(start, stop)
    )


def seed_reactions(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        AdverseReaction(
            client_id=w.client_id,
            description=f"Redness {n}",
            severity=Severity.mild,
            occurred_on=date(2026, 1, 1) + timedelta(days=n),
        )
        for n in range(start, stop)
    )


def _consent(w: World, kind: ConsentKind) -> Consent:
    return Consent(
        client_id=w.client_id,
        kind=kind,
        text=f"I agree: {kind.value}.",
        text_version="2025-01",
        given_at=clock.now(),
        method=ConsentMethod.electronic,
    )


def seed_consents(w: World, start: int, stop: int) -> None:
    kinds = list(ConsentKind)
    db.session.add_all(_consent(w, kinds[n % len(kinds)]) for n in range(start, stop))


def seed_photos(w: World, start: int, stop: int) -> None:
    # Marked for marketing use, with the consent standing: the list says whether each is in use.
    if start == 0:
        db.session.add(_consent(w, ConsentKind.marketing_photos))
    clinical = _consent(w, ConsentKind.clinical_photos)
    db.session.add(clinical)
    db.session.flush()
    db.session.add_all(
        Photo(
            client_id=w.client_id,
            kind=PhotoKind.before,
            consent_id=clinical.id,
            caption=f"Photo {n}",
            storage_key=f"photos/{n}",
            content_type="image/jpeg",
            byte_size=1000,
            width=10,
            height=10,
            marketing_use=True,
        )
        for n in range(start, stop)
    )


def seed_emergency_access(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        member = _staff_member(n, Role.front_desk)
        db.session.add(
            EmergencyAccess(
                user_id=member.user_id,
                client_id=w.client_id,
                reason=f"Allergic reaction at the desk {n}",
                expires_at=clock.now() + timedelta(hours=1),
            )
        )


def seed_client_memberships(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        plan = MembershipPlan(name=f"Plan {n}", amount_minor=9900, currency="USD", interval="month")
        db.session.add(plan)
        db.session.flush()
        db.session.add(ClientMembership(client_id=w.client_id, plan_id=plan.id, status="active"))


def seed_store_credit(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        credit = StoreCredit(
            client_id=w.client_id,
            amount_minor=1000 + n,
            currency="USD",
            reason="product_return",
            clause_id="returns",
            clause_text="Returns become store credit.",
            expires_on=date(2028, 1, 1) + timedelta(days=n),
        )
        db.session.add(credit)
        db.session.flush()
        ledger.record(
            LedgerKind.store_credit_issued,
            Money(1000 + n, "USD"),
            client_id=w.client_id,
            account=credit.account,
        )
        ledger.record(
            LedgerKind.store_credit_used,
            Money(n, "USD"),
            client_id=w.client_id,
            account=credit.account,
        )


def seed_data_recipients(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        DataRecipient(name=f"Lab {n}", country="US", role="processor", purpose="Lab tests")
        for n in range(start, stop)
    )


def seed_locations(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        Location(slug=f"loc{n}", name=f"Location {n}", country="US", timezone="America/New_York")
        for n in range(start, stop)
    )


def seed_membership_plans(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        MembershipPlan(name=f"Plan {n}", amount_minor=9900, currency="USD", interval="month")
        for n in range(start, stop)
    )


def _enable_plugins(w: World, start: int, stop: int) -> None:
    # Not rows: these lists grow with the plugins a clinic enables, beside the core defaults.
    clinic = db.session.get(Clinic, w.clinic_id)
    assert clinic is not None
    clinic.enabled_plugins = list(PLUGINS[: stop - len(CORE_DEFAULTS)])


def seed_privacy_requests(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        request = PrivacyRequest(
            kind="delete",
            status=RequestStatus.verified,
            client_id=w.client_id,
            requester_name=f"Requester {n}",
            due_at=clock.now() + timedelta(days=30, minutes=n),
            deadline_clause_id="ccpa.deadline",
            deadline_clause_text="45 days.",
        )
        db.session.add(request)
        db.session.flush()
        db.session.add(
            ProcessorNotice(
                request_id=request.id,
                client_id=w.client_id,
                processor="stripe",
                status=ProcessorNoticeStatus.pending,
            )
        )


def seed_breaches(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        incident = BreachIncident(
            description=f"Laptop {n} stolen", discovered_at=clock.now(), affected_count=n + 1
        )
        db.session.add(incident)
        db.session.flush()
        db.session.add(
            BreachNotice(
                incident_id=incident.id,
                recipient="individuals",
                due_at=clock.now() + timedelta(days=60),
                clause_id="hipaa.breach",
                clause_text="Within 60 days.",
            )
        )


def seed_opt_out_reviews(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        OptOutReview(
            client_id=w.client_id,
            phone="+14085550134",
            body=f"please no more {n}",
            honour_by=clock.now() + timedelta(days=10, minutes=n),
        )
        for n in range(start, stop)
    )


def seed_products_for_sale(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        Product(sku=f"sku{n}", name=f"Product {n:03d}", price_minor=2500, currency="USD")
        for n in range(start, stop)
    )


def _provider(n: int, location_id: int) -> Provider:
    """A new provider working every day, 9 to 5, at ``location_id``."""
    provider = Provider(membership_id=_staff_member(n).id, display_name=f"Provider {n:03d}")
    db.session.add(provider)
    db.session.flush()
    db.session.add_all(
        WorkingHours(
            provider_id=provider.id,
            location_id=location_id,
            weekday=day,
            starts=time(9),
            ends=time(17),
        )
        for day in range(7)
    )
    return provider


def seed_providers(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        _provider(n, w.location_id)


def seed_service_providers(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        provider = _provider(n, w.location_id)
        db.session.add(ServiceProvider(service_id=w.service_id, provider_id=provider.id))


def seed_time_off(w: World, start: int, stop: int) -> None:
    first = datetime(2027, 6, 1, tzinfo=UTC)
    db.session.add_all(
        TimeOff(
            provider_id=w.provider_id,
            starts_at=first + timedelta(days=n),
            ends_at=first + timedelta(days=n, hours=4),
            reason=f"training {n}",
        )
        for n in range(start, stop)
    )


def seed_refund_requests(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        sale = Sale(client_id=w.client_id, currency="USD", total_minor=2500)
        db.session.add(sale)
        db.session.flush()
        line = SaleLine(
            sale_id=sale.id,
            kind=LineKind.product,
            description=f"Serum {n}",
            unit_minor=2500,
            amount_minor=2500,
            currency="USD",
        )
        db.session.add(line)
        db.session.flush()
        db.session.add(
            RefundRequest(
                sale_line_id=line.id,
                client_id=w.client_id,
                reason="changed_mind",
                outcome="refund",
                amount_minor=2500,
                currency="USD",
                clause_id="returns",
                clause_text="Unopened products within 30 days.",
                status=RefundStatus.awaiting_approval,
                idempotency_key=f"refund-{n}",
            )
        )


def seed_resources(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        Resource(location_id=w.location_id, name=f"Room {n:03d}") for n in range(start, stop)
    )


def seed_services(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        service = Service(
            slug=f"service{n}",
            name=f"Service {n:03d}",
            category="esthetician",
            duration_minutes=60,
            price_minor=10000,
            currency="USD",
        )
        db.session.add(service)
        db.session.flush()
        db.session.add(ServiceLocation(service_id=service.id, location_id=w.location_id))
        db.session.add(ServiceProvider(service_id=service.id, provider_id=w.provider_id))


def seed_clinics(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        Clinic(
            slug=f"clinic{n:03d}",
            name=f"Clinic {n}",
            timezone="America/New_York",
            currency="USD",
            country="US",
        )
        for n in range(start, stop)
    )


def seed_webhook_endpoints(w: World, start: int, stop: int) -> None:
    db.session.add_all(
        WebhookEndpoint(
            url=f"https://hooks{n}.example.com/in", event_types=["booking.created"], secret="s"
        )
        for n in range(start, stop)
    )


def seed_webhook_deliveries(w: World, start: int, stop: int) -> None:
    for n in range(start, stop):
        event = WebhookEvent(
            public_id=f"evt_{n:024d}", type="client.created", order_key=f"client:{n}", payload={}
        )
        db.session.add(
            WebhookDelivery(endpoint_id=w.webhook_endpoint_id, event=event, order_key=f"client:{n}")
        )


def seed_disputes(w: World, start: int, stop: int) -> None:
    # Each of another booking's fee: a list that loaded each dispute's booking would show it.
    seed_bookings(w, 10_000 + start, 10_000 + stop)
    bookings = db.session.scalars(
        select(Booking.id).order_by(Booking.id.desc()).limit(stop - start)
    ).all()
    db.session.add_all(
        Dispute(
            stripe_dispute_id=f"dp_{n}",
            stripe_account="acct_alpha",
            booking_id=booking_id,
            amount_minor=5000,
            currency="USD",
            reason="fraudulent",
            status="needs_response",
            evidence={"customer_name": f"Client {n}"},
            evidence_status=EvidenceStatus.held,
        )
        for n, booking_id in zip(range(start, stop), bookings, strict=True)
    )


def _client_path(tail: str) -> str:
    return f"/clients/{{client_id}}/{tail}"


#: Every list route of the API, by a short name that is its test id.
LIST_ROUTES: dict[str, ListRoute] = {
    "staff": ListRoute("/staff", seed_staff, present=1),
    "tokens": ListRoute("/tokens", seed_tokens, present=1),
    "audit-events": ListRoute("/audit/events", seed_audit_events),
    "bookings": ListRoute("/bookings", seed_bookings),
    "availability": ListRoute(
        "/availability",
        seed_service_providers,
        present=1,
        exact=False,
        query={"service_id": "{service_id}", "from": "{next_week}", "to": "{week_after}"},
    ),
    "services": ListRoute("/services", seed_services, present=1),
    "resources": ListRoute("/resources", seed_resources),
    "clients": ListRoute("/clients", seed_clients, present=1, query={"limit": 100}),
    "intake-versions": ListRoute(_client_path("intake/versions"), seed_intake_versions),
    "notes": ListRoute(_client_path("notes"), seed_notes),
    "products-used": ListRoute(_client_path("products"), seed_products),
    "adverse-reactions": ListRoute(_client_path("adverse-reactions"), seed_reactions),
    "consents": ListRoute(_client_path("consents"), seed_consents),
    "photos": ListRoute(_client_path("photos"), seed_photos),
    "disclosures": ListRoute(_client_path("disclosures"), seed_disclosures),
    "store-credit": ListRoute(_client_path("store-credit"), seed_store_credit),
    "client-memberships": ListRoute(_client_path("memberships"), seed_client_memberships),
    "emergency-access": ListRoute("/emergency-access", seed_emergency_access),
    "locations": ListRoute("/locations", seed_locations, present=1),
    "plugins": ListRoute(
        "/plugins",
        _enable_plugins,
        present=len(CORE_DEFAULTS),
        sizes=(len(CORE_DEFAULTS) + 1, len(CORE_DEFAULTS) + len(PLUGINS)),
    ),
    "privacy-rights": ListRoute(
        "/privacy-rights",
        _enable_plugins,
        present=len(CORE_DEFAULTS),
        sizes=(len(CORE_DEFAULTS) + 1, len(CORE_DEFAULTS) + len(PLUGINS)),
        exact=False,
    ),
    "privacy-requests": ListRoute("/privacy-requests", seed_privacy_requests),
    "breaches": ListRoute("/breaches", seed_breaches),
    "data-recipients": ListRoute("/data-recipients", seed_data_recipients),
    "sms-opt-out-reviews": ListRoute("/sms-opt-out-reviews", seed_opt_out_reviews),
    "retail-products": ListRoute("/products", seed_products_for_sale),
    "refund-requests": ListRoute("/refund-requests", seed_refund_requests),
    "membership-plans": ListRoute("/membership-plans", seed_membership_plans),
    "disputes": ListRoute("/disputes", seed_disputes, query={"limit": 100}),
    "providers": ListRoute("/providers", seed_providers, present=1),
    "time-off": ListRoute("/providers/{provider_id}/time-off", seed_time_off),
    "webhook-endpoints": ListRoute("/webhook-endpoints", seed_webhook_endpoints, present=1),
    "webhook-deliveries": ListRoute(
        "/webhook-endpoints/{endpoint_id}/deliveries",
        seed_webhook_deliveries,
        query={"limit": 100},
    ),
    "platform-clinics": ListRoute(
        "/api/v1/platform/clinics", seed_clinics, present=1, operator=True, query={"limit": 200}
    ),
}

#: GET routes under /api/v1 that answer one thing, not a list, each with what it answers.
NOT_LISTS = {
    "/api/v1/clinics/<clinic_slug>": "the clinic's profile",
    "/api/v1/clinics/<clinic_slug>/audit/verification": "a report on the audit chain",
    "/api/v1/clinics/<clinic_slug>/bookings/<id:booking_id>": "one booking",
    "/api/v1/clinics/<clinic_slug>/bookings/<id:booking_id>/cancellation-preview": "a decision",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>": "one client",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>/deletion-plan": "one client's plan",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>/export": "one client's document",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>/intake": "the latest intake",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>/intake/versions/<id:version>": "one version",
    "/api/v1/clinics/<clinic_slug>/clients/<id:client_id>/photos/<id:photo_id>/image": "an image",
    "/api/v1/clinics/<clinic_slug>/packages/<id:package_id>": "one package",
    "/api/v1/clinics/<clinic_slug>/privacy-requests/<id:request_id>": "one request",
    "/api/v1/clinics/<clinic_slug>/reports/<name>": "a report (its fixed count: tests/reports)",
    "/api/v1/clinics/<clinic_slug>/privacy-requests/<id:request_id>/export": "one document",
    "/api/v1/clinics/<clinic_slug>/privacy-requests/<id:request_id>/export.html": "one page",
    "/api/v1/clinics/<clinic_slug>/sales/<id:sale_id>": "one bill",
    "/api/v1/clinics/<clinic_slug>/self-service/<token>": "the client's own booking",
    "/api/v1/clinics/<clinic_slug>/self-service/<token>/cancellation-preview": "a decision",
    "/api/v1/clinics/<clinic_slug>/services/<id:service_id>": "one service",
    "/api/v1/clinics/<clinic_slug>/session": "who is signed in",
    "/api/v1/clinics/<clinic_slug>/staff/<id:membership_id>": "one staff member",
    "/api/v1/platform/plugins": "one report on the instance's plugins",
    "/api/v1/clinics/<clinic_slug>/webhook-endpoints/<id:endpoint_id>": "one webhook endpoint",
    "/api/v1/clinics/<clinic_slug>/events/types": "the fixed catalogue of event types, no rows",
    "/api/v1/clinics/<clinic_slug>/readiness": "one report: what stands between the clinic and opening",
    "/api/v1/clinics/<clinic_slug>/document": "the clinic's document and its revision",
    "/api/v1/clinics/<clinic_slug>/disputes/<id:dispute_id>": "one dispute and its evidence",
    "/api/v1/clinics/<clinic_slug>/stripe": "the clinic's Stripe account",
    "/api/v1/clinics/<clinic_slug>/stripe/onboarding-return": "where Stripe sends the owner back",
    "/api/v1/clinics/<clinic_slug>/stripe/onboarding-refresh": "a redirect to a new onboarding link",
    "/api/v1/platform/clinics/<slug>/document": "one clinic's document",
    "/api/v1/platform/clinics/<slug>/revisions": "one clinic's kept documents, in one query whatever their number",
}


def _rule(route: ListRoute) -> str:
    if route.path.startswith("/api/"):
        return route.path
    rule = f"/api/v1/clinics/<clinic_slug>{route.path}"
    return (
        rule.replace("{client_id}", "<id:client_id>")
        .replace("{provider_id}", "<id:provider_id>")
        .replace("{endpoint_id}", "<id:endpoint_id>")
    )


def test_every_get_route_of_the_api_is_a_list_counted_here_or_a_single_thing(app: Flask) -> None:
    gets = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and rule.rule.startswith("/api/v1/")
    }
    lists = {_rule(route) for route in LIST_ROUTES.values()}
    assert sorted(gets - lists - set(NOT_LISTS)) == []
    assert sorted((lists | set(NOT_LISTS)) - gets) == []


@pytest.fixture
def world(app: Flask) -> World:
    with app.app_context():
        clinic_id = make_clinic(SLUG)
        owner = make_staff(SLUG, OWNER)
        clinic = db.session.get(Clinic, clinic_id)
        with clinic_scope(clinic):
            location_id = db.session.scalars(select(Location.id)).one()
            # The owner is the provider too, so the staff list starts with one person.
            provider = schedules.add_provider(owner, "Kim", "esthetician")
            db.session.add_all(
                WorkingHours(
                    provider_id=provider.id,
                    location_id=location_id,
                    weekday=day,
                    starts=time(9),
                    ends=time(17),
                )
                for day in range(7)
            )
            service = Service(
                slug="facial",
                name="Facial",
                category="esthetician",
                duration_minutes=60,
                price_minor=10000,
                currency="USD",
            )
            client = _client(0)
            version = PolicyVersion(digest="0" * 64, clauses=[])
            db.session.add_all([service, client, version])
            db.session.flush()
            db.session.add(ServiceLocation(service_id=service.id, location_id=location_id))
            db.session.add(ServiceProvider(service_id=service.id, provider_id=provider.id))
            endpoint = WebhookEndpoint(
                url="https://hooks.example.com/in", event_types=["client.created"], secret="s"
            )
            db.session.add(endpoint)
            db.session.commit()
            return World(
                clinic_id=clinic_id,
                location_id=location_id,
                provider_id=provider.id,
                service_id=service.id,
                client_id=client.id,
                policy_version_id=version.id,
                webhook_endpoint_id=endpoint.id,
            )


@contextmanager
def statements_counted(app: Flask) -> Iterator[list[str]]:
    """Record the SQL of every statement the app's engines execute while the block runs."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def _seed(app: Flask, world: World, route: ListRoute, start: int, stop: int) -> None:
    with app.app_context():
        clinic = db.session.get(Clinic, world.clinic_id)
        with clinic_scope(clinic):
            route.seed(world, start, stop)
            db.session.commit()


#: Statements per request at each size, by route, for the summary at the end of the module.
MEASURED: dict[str, tuple[int, int, int, int]] = {}


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not MEASURED:
        return
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter is None or capture is None:
        return
    # Past the capture, as capsys.disabled() does: the counts are for the reader of the run.
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("SQL statements per request, with a short and with a full list:")
        for name, (small, at_small, big, at_big) in MEASURED.items():
            reporter.write_line(
                f"  {name:<22} {small:>3} items: {at_small:>3} statements   "
                f"{big:>3} items: {at_big:>3} statements"
            )


def _url(world: World, route: ListRoute) -> str:
    """The route's URL in ``world``: its ids filled in, under the clinic unless absolute."""
    ids = {
        "client_id": world.client_id,
        "provider_id": world.provider_id,
        "endpoint_id": world.webhook_endpoint_id,
    }
    path = route.path.format(**ids)
    return path if path.startswith("/api/") else f"/api/v1/clinics/{SLUG}{path}"


def _caller(app: Flask, route: ListRoute) -> tuple[Any, dict[str, str]]:
    """A client allowed the route, and its headers: the operator signed in, or an owner's token."""
    http = app.test_client()
    if not route.operator:
        return http, {"Authorization": f"Bearer {issue_token(app, SLUG, OWNER)}"}
    with app.app_context():
        accounts.create_user(OPERATOR, "Ops", PASSWORD, is_operator=True)
    signed_in = http.post(
        "/api/v1/platform/session", json={"email": OPERATOR, "password": PASSWORD}
    )
    assert signed_in.status_code == 201, signed_in.get_data(as_text=True)
    return http, {}


@pytest.mark.parametrize("name", list(LIST_ROUTES))
def test_a_list_route_issues_a_fixed_number_of_statements(
    app: Flask, world: World, name: str
) -> None:
    route = LIST_ROUTES[name]
    url = _url(world, route)
    next_week = clock.now().date() + timedelta(days=7)
    values = {
        "service_id": world.service_id,
        "next_week": next_week.isoformat(),
        "week_after": (next_week + timedelta(days=6)).isoformat(),
    }
    query = {key: str(value).format(**values) for key, value in route.query.items()}
    http, headers = _caller(app, route)

    def ask() -> tuple[int, int, list[str]]:
        # Counted as worked out, not as kept: availability answers, and the clinic's setup
        # (the caller's token), kept from the request before would hide what reading them
        # costs; and seeding more rows may change the setup, so one count would be kept
        # and the other not.
        app.extensions.pop("clinic_saas.availability_answers", None)
        app.extensions.pop("clinic_saas.kept_setup", None)
        with statements_counted(app) as seen:
            response = http.get(url, query_string=query, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return len(seen), len(response.get_json()["items"]), seen

    small, big = route.sizes
    _seed(app, world, route, route.present, small)
    ask()  # the first request records the token's use and warms the app's caches
    at_small, items_small, seen_small = ask()
    _seed(app, world, route, small, big)
    at_big, items_big, seen_big = ask()
    MEASURED[name] = (items_small, at_small, items_big, at_big)

    if route.exact:
        assert (items_small, items_big) == (small, big)
    else:
        assert items_big > items_small
    repeated = Counter(seen_big)
    repeated.subtract(Counter(seen_small))
    grew = {sql: more for sql, more in repeated.items() if more > 0}
    assert at_big == at_small, (
        f"{at_small} statements for {items_small}, {at_big} for {items_big}: {grew}"
    )


#: Lists that are not paged: times to book are asked for by date range, not by page.
NOT_PAGED = {"availability"}


def _identity(item: dict[str, Any]) -> Any:
    for name in ("id", "seq", "name", "right", "type"):
        if name in item:
            return item[name]
    raise AssertionError(f"no identity in {item}")


@pytest.mark.parametrize("name", [n for n in LIST_ROUTES if n not in NOT_PAGED])
def test_every_list_is_walked_to_its_end_by_cursor(app: Flask, world: World, name: str) -> None:
    # The API's one paging convention: a stable order, pages of at most `limit`, `has_more`
    # while another follows and `next_after` to ask for it; nothing skipped, nothing twice.
    route = LIST_ROUTES[name]
    url = _url(world, route)
    http, headers = _caller(app, route)
    size = route.sizes[1] if route.sizes != (1, 100) else 12
    _seed(app, world, route, route.present, size)
    query = {key: value for key, value in route.query.items() if key != "limit"}

    largest = route.query.get("limit", 500)  # the most one page may hold
    whole = http.get(url, query_string={**query, "limit": largest}, headers=headers).get_json()
    assert whole["has_more"] is False and whole["next_after"] is None
    expected = [_identity(item) for item in whole["items"]]
    assert len(expected) == len(set(expected)) >= min(size, 5)

    walked: list[Any] = []
    after = None
    for _ in range(len(expected) + 1):
        answer = http.get(
            url,
            query_string={**query, "limit": 3, **({"after": after} if after else {})},
            headers=headers,
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        assert len(body["items"]) == body["count"] <= 3
        walked += [_identity(item) for item in body["items"]]
        if not body["has_more"]:
            assert body["next_after"] is None
            break
        assert len(body["items"]) == 3
        after = body["next_after"]
    assert walked == expected

    refused = http.get(url, query_string={**query, "after": "not-a-cursor"}, headers=headers)
    assert refused.status_code == 422, refused.get_data(as_text=True)
    assert refused.get_json()["errors"][0]["field"] == "after"
