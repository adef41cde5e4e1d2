"""Serving the demo: the app on loopback, paying through the local Stripe server, until Ctrl-C."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path
from types import FrameType

import click
from flask import Flask
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from core import clock
from core.bookings import services as bookings
from core.clients.models import Client
from core.demo.data import demo_services
from core.demo.local_stripe import WEBHOOK_SECRET, LocalStripe, running
from core.extensions import db
from core.hooks.decisions import Guarantee
from core.tenancy import services as tenancy
from core.tenancy.scope import clinic_scope

HOST = "127.0.0.1"
#: Stripe's test cards, as the Stripe.js stand-in answers them.
TEST_CARDS = (
    ("4242 4242 4242 4242", "pays"),
    ("4000 0000 0000 0002", "is declined"),
    ("4000 0025 0000 3155", 'asks for 3-D Secure ("Complete authentication" to pass)'),
)


def use_local_stripe(app: Flask, local: LocalStripe, public_url: str) -> None:
    """Point ``app`` at the local Stripe server, and its webhooks at the app at ``public_url``."""
    app.config.update(
        # localstripe takes any test key; the proxy signs webhooks with WEBHOOK_SECRET.
        STRIPE_SECRET_KEY="sk_test_local",
        STRIPE_PUBLISHABLE_KEY="pk_test_local",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=local.url,
        # The browser loads localstripe's stand-in for Stripe.js and talks to it directly.
        STRIPE_JS_URL=local.stripe_js_url,
        PUBLIC_URL=public_url,
    )
    for name in [n for n in app.extensions if n.startswith("clinic_saas.stripe")]:
        app.extensions.pop(name)  # a client made before would still talk to the old address
    local.webhook_target = public_url + "/webhooks/stripe"


def asked_up_front(slug: str) -> tuple[str, str]:
    """Return clinic ``slug``'s name and what its policy asks when an adult books a demo service."""
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        return slug, ""
    with clinic_scope(clinic):
        services = demo_services()
        if not services:
            return clinic.name, "no demo menu"
        today = clock.now().date()
        # As the menu page asks: an adult, never stored, booking a week ahead.
        adult = Client(
            legal_first_name="",
            legal_last_name="",
            date_of_birth=today.replace(year=today.year - 30, day=1),
        )
        asked = bookings.requirements_for(
            clinic, services[0], adult, clock.now() + timedelta(days=7)
        )
        locale = f"en_{clinic.country}"
        if asked.prepayment:
            return clinic.name, f"paid in full when booking ({asked.prepayment.format(locale)})"
        if asked.deposit:
            return clinic.name, f"a {asked.deposit.format(locale)} deposit, paid by card"
        if asked.guarantee != Guarantee.none:
            return clinic.name, "a card saved to hold the booking, nothing charged"
        return clinic.name, "nothing to pay when booking"


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # stopped like Ctrl-C, so localstripe is stopped too


def serve(app: Flask, port: int, slugs: list[str], localstripe_python: str) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` with the local Stripe server until Ctrl-C.

    Binds the port first, so a port in use fails before anything starts; then starts
    localstripe and the proxy, prints where to book and with which cards, and serves.
    """
    try:
        server = make_server(HOST, port, app, threaded=True)
    except OSError as error:
        raise click.ClickException(
            f"cannot serve on {HOST}:{port} ({error.strerror}); choose another with --port"
        ) from None
    public_url = f"http://{HOST}:{port}"
    workdir = Path(app.instance_path)
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).render_as_string(hide_password=True)
    with (
        (workdir / "localstripe.log").open("ab") as log,
        running(localstripe_python, workdir, output=log) as local,
    ):
        use_local_stripe(app, local, public_url)
        click.echo(f"\nclinic-saas demo on {public_url}  (Ctrl-C stops it and localstripe)\n")
        click.echo(f"  database   {database}, migrated; jobs: {app.config['JOBS_BACKEND']}")
        click.echo(
            f"  Stripe     localstripe on {local.upstream}, through the proxy on {local.url}"
        )
        click.echo('  demo data  services marked "Demo:", providers "Demo provider ..."\n')
        click.echo("Book at:")
        for slug in slugs:
            name, asked = asked_up_front(slug)
            click.echo(f"  {name}: {asked}\n    {public_url}/book/{slug}/")
        db.session.remove()  # the requests have sessions of their own
        click.echo("\nTest cards (any future expiry date, any CVC, any postcode):")
        for number, outcome in TEST_CARDS:
            click.echo(f"  {number}  {outcome}")
        click.echo("")
        # A closed terminal or a plain kill stops the demo as Ctrl-C does.
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            server.server_close()
            runner = app.extensions.get("clinic_saas.jobs")
            if runner is not None:
                runner.stop()
    click.echo("demo stopped: the app and localstripe")
