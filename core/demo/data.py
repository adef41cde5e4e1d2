"""The demo's data: each seed clinic's sample menu, two providers and their weekly hours.

Loaded only by ``flask --app wsgi demo``, never by ``setup`` or ``clinics load``, and
marked wherever a client or the staff see it: every service's description starts
with "Demo:", its slug with ``demo-``, and every provider is called "Demo provider ...".
The menus use the treatments and the fee categories each clinic's published policy
names (shared/seeds); where a policy names none, the treatments are typical of a med
spa, and the prices and durations are plausible, never the clinic's own.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import time
from pathlib import Path

from sqlalchemy import select

from core.accounts import services as accounts
from core.accounts.models import Role
from core.catalog import services as catalog
from core.catalog.models import Service
from core.extensions import db
from core.schedules import services as schedules
from core.schedules.models import Provider
from core.tenancy import services as tenancy
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import clinic_scope
from core.tenancy.tenants_file import load_tenant_files, tenant_files
from core.unit_of_work import unit_of_work

#: Where a demo service's description starts, and its slug: how the demo data is told apart.
MARK = "Demo:"
SLUG_PREFIX = "demo-"
PROVIDER_PREFIX = "Demo provider"
#: Said after each description, so no client takes the sample menu for the clinic's own.
NOT_REAL = "(A sample service and price for trying the booking pages, not the clinic's own.)"


@dataclass(frozen=True)
class DemoProvider:
    """A demo provider: who they are, and their weekly hours (weekday 0 = Monday) at the first location."""

    key: str
    name: str
    credential: str
    hours: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True)
class DemoService:
    """A demo service and which of the demo providers (by key) perform it."""

    slug: str
    name: str
    about: str
    category: str
    minutes: int
    price: str
    performers: tuple[str, ...]


#: A nurse injector for injections, laser and IV therapy, and an esthetician for skin care;
#: Bijoux's policy tells them apart ("Gratuity is not customary for medical services performed
#: by physicians or nurses"). Between them, Monday to Saturday.
PROVIDERS = (
    DemoProvider(
        "nurse",
        f"{PROVIDER_PREFIX} Alex",
        "nurse",
        tuple((day, "09:00", "17:00") for day in range(5)),
    ),
    DemoProvider(
        "esthetician",
        f"{PROVIDER_PREFIX} Sam",
        "esthetician",
        tuple((day, "10:00", "18:00") for day in range(1, 6)),
    ),
)
NURSE, ESTHETICIAN = ("nurse",), ("esthetician",)
BOTH = NURSE + ESTHETICIAN

#: A half-hour consultation at 50.00 in the clinic's own currency, on more than one menu.
CONSULTATION = DemoService(
    "demo-consultation",
    "Consultation",
    "Talk through your goals and a treatment plan.",
    "consultation",
    30,
    "50.00",
    BOTH,
)

#: Each seed clinic's menu, by its slug. Categories are the ones the policies key fees on.
MENUS: dict[str, tuple[DemoService, ...]] = {
    # JT's policy speaks of "treatments" and "treatment package[s]" and asks a deposit to
    # secure each appointment; its "FREE consultation" is left out, since a $50 deposit on
    # a free visit would read oddly.
    "jt-aesthetic": (
        DemoService(
            "demo-signature-facial",
            "Signature facial",
            "Cleanse, exfoliation, extractions and a mask, suited to your skin.",
            "esthetician",
            60,
            "150.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-neurotoxin",
            "Neurotoxin injections",
            "Softens expression lines on the forehead and around the eyes.",
            "injection_laser",
            30,
            "300.00",
            NURSE,
        ),
        DemoService(
            "demo-dermal-filler",
            "Dermal filler",
            "Restores volume to lips or cheeks.",
            "injection_laser",
            45,
            "650.00",
            NURSE,
        ),
        DemoService(
            "demo-laser-rejuvenation",
            "Laser skin rejuvenation",
            "Evens tone and texture.",
            "injection_laser",
            60,
            "400.00",
            NURSE,
        ),
    ),
    # Bijoux's fee table names the categories: "Injection/Laser Treatment Appointments"
    # (30 minutes or less; 60 minutes or more), "Esthetician Services", "Any Wellness Service
    # (IV's/vitamin/weight loss injection)", "Any Consultation or pellet insertion".
    "bijoux": (
        DemoService(
            "demo-neurotoxin",
            "Neurotoxin injections",
            "An injection appointment of 30 minutes.",
            "injection_laser",
            30,
            "350.00",
            NURSE,
        ),
        DemoService(
            "demo-laser-resurfacing",
            "Laser resurfacing",
            "A laser treatment appointment of 60 minutes.",
            "injection_laser",
            60,
            "450.00",
            NURSE,
        ),
        DemoService(
            "demo-esthetician-facial",
            "Esthetician facial",
            "A facial tailored to your skin on the day.",
            "esthetician",
            60,
            "140.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-vitamin-iv",
            "Vitamin IV drip",
            "A wellness IV of fluids and vitamins.",
            "wellness",
            45,
            "175.00",
            NURSE,
        ),
        CONSULTATION,
    ),
    # California Aesthetics' privacy policy names only appointments and "new services";
    # a typical med spa menu.
    "california-aesthetics": (
        CONSULTATION,
        DemoService(
            "demo-hydrating-facial",
            "Hydrating facial",
            "Deep cleansing and hydration.",
            "esthetician",
            60,
            "165.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-neurotoxin",
            "Neurotoxin injections",
            "Softens expression lines.",
            "injection_laser",
            30,
            "320.00",
            NURSE,
        ),
        DemoService(
            "demo-laser-hair-removal",
            "Laser hair removal",
            "One area per visit.",
            "injection_laser",
            45,
            "220.00",
            NURSE,
        ),
    ),
    # JP MediSpa's policy keeps "recommendations relevant to your skin", "before and after
    # photographs" and "file notes about your skin, your treatment": skin care first.
    "jp-medispa": (
        DemoService(
            "demo-skin-consultation",
            "Skin consultation",
            "A look at your skin, with before photographs and a plan.",
            "consultation",
            30,
            "60.00",
            BOTH,
        ),
        DemoService(
            "demo-customised-facial",
            "Customised facial",
            "Products chosen for your skin, in clinic and for home.",
            "esthetician",
            60,
            "170.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-chemical-peel",
            "Chemical peel",
            "A light peel for tone and texture.",
            "esthetician",
            45,
            "190.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-laser-skin",
            "Laser skin treatment",
            "For pigmentation and redness.",
            "injection_laser",
            60,
            "450.00",
            NURSE,
        ),
    ),
    # Him. Medspa & Wellness: "consultations or treatments", "before/after treatment" photos
    # and, in its name, wellness.
    "him-medspa": (
        DemoService(
            "demo-consultation",
            "Consultation",
            "Talk through your goals and a treatment plan.",
            "consultation",
            30,
            "75.00",
            BOTH,
        ),
        DemoService(
            "demo-mens-facial",
            "Men's facial",
            "Deep cleansing for skin that is shaved daily.",
            "esthetician",
            60,
            "135.00",
            ESTHETICIAN,
        ),
        DemoService(
            "demo-neurotoxin",
            "Neurotoxin injections",
            "Softens forehead and frown lines.",
            "injection_laser",
            30,
            "325.00",
            NURSE,
        ),
        DemoService(
            "demo-wellness-iv",
            "Wellness IV therapy",
            "Fluids and vitamins.",
            "wellness",
            45,
            "195.00",
            NURSE,
        ),
    ),
}


def demo_account(slug: str) -> str:
    """Return the Stripe account the demo gives clinic ``slug`` on the local Stripe server."""
    return "acct_demo_" + slug.replace("-", "_")


def load_demo(tenants_dir: str | Path) -> list[str]:
    """Load every clinic in ``tenants_dir``, then give each a Stripe account and its demo data.

    Running it again changes nothing. A clinic already connected to an account keeps it;
    a clinic with no demo menu here is loaded without one. Returns the clinics' slugs.
    Raises ``TenantFileError`` (nothing loaded) when a tenants/ file is refused.
    """
    report = load_tenant_files(tenant_files(tenants_dir), tenancy.plugin_host())
    slugs = sorted(report.created + report.updated + report.unchanged)
    for slug in slugs:
        clinic = tenancy.clinic_by_slug(slug)
        assert clinic is not None  # just loaded
        if not clinic.stripe_account_id:
            tenancy.connect_stripe(slug, demo_account(slug))
        menu = MENUS.get(slug)
        if menu:
            with clinic_scope(clinic), unit_of_work():
                _add_demo_data(clinic, menu)
    return slugs


def _add_demo_data(clinic: Clinic, menu: tuple[DemoService, ...]) -> None:
    location = db.session.scalar(select(Location).order_by(Location.id).limit(1))
    assert location is not None  # a tenants/ file declares at least one
    providers = {
        demo.key: _provider(clinic, number, demo, location.id)
        for number, demo in enumerate(PROVIDERS, start=1)
    }
    existing = {s.slug: s for s in catalog.services(active_only=False)}
    for demo in menu:
        wanted = {
            "slug": demo.slug,
            "name": demo.name,
            "description": f"{MARK} {demo.about} {NOT_REAL}",
            "category": demo.category,
            "duration_minutes": demo.minutes,
            "buffer_minutes": 0,
            "price": demo.price,
            "online_bookable": True,
            # Loading tenants/ retires every service its file does not declare, the demo's
            # among them: each run of the demo brings them back.
            "active": True,
            "location_ids": [location.id],
            "provider_ids": [providers[key] for key in demo.performers],
        }
        catalog.save_service(existing.get(demo.slug), wanted, clinic.currency)


def _provider(clinic: Clinic, number: int, demo: DemoProvider, location_id: int) -> int:
    """Make (or find) demo provider ``number`` at the clinic, with its hours; return its id."""
    email = f"demo-provider-{number}@{clinic.slug}.example.com"
    user = accounts.user_by_email(email)
    membership = accounts.membership_of(user) if user else None
    if membership is None:
        # Nobody signs in as a demo provider: the password is random and never shown.
        membership = accounts.add_staff(email, demo.name, Role.provider, secrets.token_urlsafe(24))
    found = db.session.scalar(select(Provider).where(Provider.membership_id == membership.id))
    if found is None:
        found = schedules.add_provider(membership.id, demo.name, demo.credential)
    elif (found.display_name, found.credential, found.active) != (demo.name, demo.credential, True):
        schedules.update_provider(
            found, {"display_name": demo.name, "credential": demo.credential, "active": True}
        )
    blocks = [
        {
            "location_id": location_id,
            "weekday": day,
            "starts": time.fromisoformat(starts),
            "ends": time.fromisoformat(ends),
        }
        for day, starts, ends in demo.hours
    ]
    have = [
        {"location_id": h.location_id, "weekday": h.weekday, "starts": h.starts, "ends": h.ends}
        for h in found.hours
    ]
    if have != blocks:  # the same hours are left as they are
        schedules.set_hours(found, blocks)
    return found.id


def demo_services() -> list[Service]:
    """Return the current clinic's demo services, active or not."""
    return [s for s in catalog.services(active_only=False) if s.slug.startswith(SLUG_PREFIX)]


def demo_providers() -> list[Provider]:
    """Return the current clinic's demo providers."""
    return [p for p in schedules.providers() if p.display_name.startswith(PROVIDER_PREFIX)]
