"""Command-line tasks for the operator: ``flask --app wsgi <command>``."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from core.accounts import services as accounts
from core.accounts.models import Role
from core.clients.photos import reencrypt_photos
from core.encryption import services as encryption
from core.errors import DomainError, Problem
from core.tenancy import services as tenancy
from core.tenancy.scope import clinic_scope
from core.tenancy.tenants_file import TenantFileError, load_tenant_files, tenant_files


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _problem_text(problem: Problem | DomainError) -> str:
    details = "; ".join(f"{e['field']}: {e['detail']}" for e in problem.errors)
    return f"{problem.detail or problem.title}" + (f" ({details})" if details else "")


def _load(files: tuple[Path, ...]) -> None:
    paths = list(files) or tenant_files(current_app.config["TENANTS_DIR"])
    if not paths:
        _fail(f"no tenants files found in {current_app.config['TENANTS_DIR']}")
    try:
        report = load_tenant_files(paths, tenancy.plugin_host())
    except TenantFileError as error:
        for item in error.errors:
            click.echo(f"error: {item}", err=True)
        _fail(f"{len(error.errors)} problem(s) in tenants files; nothing was changed")
    for label in ("created", "updated", "unchanged"):
        for slug in getattr(report, label):
            click.echo(f"{label}: {slug}")


@click.command("setup")
@with_appcontext
def setup_command() -> None:
    """Apply database migrations, then load every clinic from tenants/ (if there are any yet)."""
    upgrade()
    if not tenant_files(current_app.config["TENANTS_DIR"]):
        click.echo(
            f"no tenants files in {current_app.config['TENANTS_DIR']} yet: "
            "add clinics with `clinics load FILE`"
        )
        return
    _load(())


@click.command("demo")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    help="The port to serve the app on, at 127.0.0.1.",
)
@with_appcontext
def demo_command(port: int) -> None:
    """Try the booking pages: the clinics in tenants/ with demo data, on a local Stripe server.

    In one process: apply migrations, load tenants/, give each clinic a Stripe account
    on the local server and its demo menu, two providers and their weekly hours (all
    marked "Demo"), start localstripe behind the recording proxy, and serve the app on
    127.0.0.1 until Ctrl-C. Demo data is loaded by this command only. Never in production.
    """
    from core.demo.data import load_demo
    from core.demo.local_stripe import localstripe_python
    from core.demo.server import serve

    if current_app.config["ENV_NAME"] == "production":
        _fail("the demo adds made-up data and pays through a local Stripe: not in production")
    python = localstripe_python()
    if python is None:
        _fail(
            "the demo pays through localstripe, run from its own environment: "
            "python3 -m venv .venv-localstripe && .venv-localstripe/bin/pip install "
            "'localstripe==1.15.10' (or set LOCALSTRIPE_PYTHON)"
        )
    upgrade()
    try:
        slugs = load_demo(current_app.config["TENANTS_DIR"])
    except TenantFileError as error:
        for item in error.errors:
            click.echo(f"error: {item}", err=True)
        _fail(f"{len(error.errors)} problem(s) in tenants files; nothing was changed")
    if not slugs:
        _fail(f"no tenants files found in {current_app.config['TENANTS_DIR']}")
    serve(current_app._get_current_object(), port, slugs, python)  # type: ignore[attr-defined]


@click.group("clinics")
def clinics() -> None:
    """Clinics on this instance."""


@clinics.command("load")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def clinics_load(files: tuple[Path, ...]) -> None:
    """Create or update clinics from tenants/ files (all of them if none are named).

    Every file is checked first; if any is refused, nothing changes.
    """
    _load(files)


@clinics.command("list")
@with_appcontext
def clinics_list() -> None:
    """List the clinics and their locations."""
    for clinic in tenancy.all_clinics():
        click.echo(
            f"{clinic.slug}\t{clinic.name}\t{clinic.status.value}\t{clinic.timezone}\t{clinic.currency}"
        )
        with clinic_scope(clinic):
            for location in tenancy.locations():
                state = "" if location.active else "\t(inactive)"
                click.echo(f"  - {location.slug}\t{location.name}\t{location.phone or ''}{state}")


@clinics.command("export")
@click.argument("slug")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write (default: standard output).",
)
@with_appcontext
def clinics_export(slug: str, output: Path | None) -> None:
    """Write clinic SLUG back as its tenants/ file: loading it again changes nothing."""
    import tomli_w

    from core.tenancy.documents import document_of

    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        _fail(f"no clinic {slug!r}")
    text = f"# {clinic.name}, written by `clinics export {slug}`.\n" + tomli_w.dumps(
        document_of(clinic)
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")


@clinics.command("plugins")
@click.argument("slug", required=False)
@with_appcontext
def clinics_plugins(slug: str | None) -> None:
    """List each clinic's plugins (or one clinic's) and the hooks they answer."""
    chosen = tenancy.all_clinics()
    if slug is not None:
        chosen = [c for c in chosen if c.slug == slug]
        if not chosen:
            _fail(f"no clinic {slug!r}")
    for clinic in chosen:
        click.echo(f"{clinic.slug}:")
        for plugin in tenancy.plugins_of(clinic):
            tag = " (core default)" if plugin["core_default"] else ""
            missing = "" if plugin["installed"] else " [NOT INSTALLED]"
            if plugin["refused"]:
                missing = f" [REFUSED: {plugin['refused']}]"
            click.echo(f"  {plugin['name']}{tag}{missing}: {', '.join(plugin['hooks'])}")


@clinics.command("connect-stripe")
@click.argument("slug")
@click.argument("account")
@with_appcontext
def clinics_connect_stripe(slug: str, account: str) -> None:
    """Connect a clinic to its own Stripe account (``acct_...``): it can then take payments."""
    try:
        tenancy.connect_stripe(slug, account)
    except (Problem, DomainError) as problem:
        _fail(_problem_text(problem))
    click.echo(f"{slug} takes payments on {account}")


@click.group("payments")
def payments_cli() -> None:
    """Payments on the clinics' Stripe accounts."""


@payments_cli.command("reconcile")
@click.argument("slug", required=False)
@with_appcontext
def payments_reconcile(slug: str | None) -> None:
    """Compare each clinic's ledger with its Stripe account; apply what was missed, list the rest."""
    from core.payments.services import reconcile

    found = 0
    for clinic in tenancy.all_clinics():
        if (slug and clinic.slug != slug) or not clinic.stripe_account_id:
            continue
        with clinic_scope(clinic):
            report = reconcile(clinic)
        for line in report.healed:
            click.echo(f"{clinic.slug}: healed {line}")
        for line in report.differences:
            click.echo(f"{clinic.slug}: DIFFERENCE {line}")
        found += len(report.differences)
        if not report.healed and not report.differences:
            click.echo(f"{clinic.slug}: the ledger agrees with Stripe")
    if found:
        raise SystemExit(1)


@click.group("staff")
def staff() -> None:
    """Clinic staff accounts."""


@staff.command("create")
@click.option("--clinic", "slug", required=True, help="The clinic's slug.")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="CLINIC_SAAS_PASSWORD",
    help="Asked for if not given; ignored for someone who already has an account.",
)
@with_appcontext
def staff_create(slug: str, email: str, name: str, role: str, password: str) -> None:
    """Add a staff member with a role to a clinic."""
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        _fail(f"no clinic {slug!r}")
    with clinic_scope(clinic):
        try:
            membership = accounts.add_staff(email, name, Role(role), password)
        except (Problem, DomainError) as problem:
            _fail(_problem_text(problem))
        click.echo(f"{membership.user.email} is now {role} at {slug}")


@click.group("operator")
def operator() -> None:
    """The platform operator's account."""


@operator.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="CLINIC_SAAS_PASSWORD",
)
@with_appcontext
def operator_create(email: str, name: str, password: str) -> None:
    """Create an operator account (no clinic membership, no access to clinic data)."""
    try:
        user = accounts.create_user(email, name, password, is_operator=True)
    except (Problem, DomainError) as problem:
        _fail(_problem_text(problem))
    click.echo(f"operator {user.email} created")


@click.group("tokens")
def tokens() -> None:
    """API tokens."""


@tokens.command("issue")
@click.option("--clinic", "slug", required=True)
@click.option("--email", required=True, help="The staff member the token acts for.")
@click.option("--name", required=True, help="What the token is for, e.g. 'front desk tablet'.")
@click.option("--expires-in-days", type=click.IntRange(1, 366), default=None)
@with_appcontext
def tokens_issue(slug: str, email: str, name: str, expires_in_days: int | None) -> None:
    """Issue an API token for a staff member; the secret is printed once."""
    clinic = tenancy.clinic_by_slug(slug)
    if clinic is None:
        _fail(f"no clinic {slug!r}")
    with clinic_scope(clinic):
        user = accounts.user_by_email(email)
        membership = accounts.membership_of(user) if user else None
        if membership is None:
            _fail(f"{email} is not active staff at {slug}")
        _, secret = accounts.issue_token(membership, name, expires_in_days)
    click.echo(secret)


@click.group("keys")
def keys() -> None:
    """Encryption keys for health data."""


def _chosen_clinics(slug: str | None) -> list:
    chosen = tenancy.all_clinics()
    if slug is not None:
        chosen = [c for c in chosen if c.slug == slug]
        if not chosen:
            _fail(f"no clinic {slug!r}")
    return chosen


@keys.command("ensure")
@click.option("--clinic", "slug", help="Only this clinic.")
@with_appcontext
def keys_ensure(slug: str | None) -> None:
    """Give every clinic (or one) a data key if it has none."""
    for clinic in _chosen_clinics(slug):
        with clinic_scope(clinic):
            key = encryption.ensure_data_key()
            click.echo(f"{clinic.slug}: data key version {key.version}")


@keys.command("rotate")
@click.option("--clinic", "slug", help="Only this clinic.")
@with_appcontext
def keys_rotate(slug: str | None) -> None:
    """Make a new data key per clinic and re-encrypt its health data under it."""
    for clinic in _chosen_clinics(slug):
        with clinic_scope(clinic):
            report = encryption.rotate_data_key()
            photos = reencrypt_photos()
            click.echo(
                f"{clinic.slug}: now on data key version {report.new_version}; "
                f"{report.reencrypted} values and {photos} photos re-encrypted"
            )


@keys.command("rewrap")
@with_appcontext
def keys_rewrap() -> None:
    """Re-wrap every clinic's data keys under the first of MASTER_KEYS.

    Run after putting a new master key first in MASTER_KEYS; then the old
    master key can be removed.
    """
    for clinic in tenancy.all_clinics():
        with clinic_scope(clinic):
            count = encryption.rewrap_data_keys()
            click.echo(f"{clinic.slug}: {count} data key(s) re-wrapped")


@click.group("backup")
def backup_cli() -> None:
    """Backups: the database, the master keys and the photo store (docs/operations.md)."""


@backup_cli.command("check")
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="The newest values of each encrypted column, and newest photos, opened per clinic.",
)
@click.option("--all", "every", is_flag=True, help="Open every encrypted value and every photo.")
@with_appcontext
def backup_check(sample: int, every: bool) -> None:
    """Check a restored instance opens what it holds; exit 1 naming each problem.

    Reads only: the schema is at this code's newest migration, row-level
    security and the append-only tables survived, every clinic's data keys
    unwrap with MASTER_KEYS, a sample of encrypted values and photos decrypts,
    and every audit chain verifies.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from core.platform.restore_check import check_restore

    try:
        report = check_restore(None if every else sample)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or type(error).__name__).splitlines()[0]
        _fail(f"the database did not answer: {reason}")
    for finding in report.findings:
        click.echo(finding.line())
    if not report.ok:
        _fail(f"{len(report.problems)} problem(s): this restore cannot be trusted as it is")
    click.echo("backup check: no problems")


@click.group("jobs")
def jobs() -> None:
    """Background jobs: reminders and lapsed holds."""


@jobs.command("run-once")
@with_appcontext
def jobs_run_once() -> None:
    """Expire lapsed holds and send due reminders, once (for cron)."""
    from core.jobs.tasks import tick

    report = tick()
    click.echo(
        f"{report.holds_expired} holds expired, {report.messages_sent} messages sent, "
        f"{report.messages_skipped} skipped, {report.messages_retried} to retry"
    )


@jobs.command("worker")
@click.option("--interval", type=float, default=None, help="Seconds between passes.")
@with_appcontext
def jobs_worker(interval: float | None) -> None:
    """Run the jobs in this process until stopped (no broker needed)."""
    import time

    from core.jobs.tasks import tick

    every = interval or current_app.config["JOBS_TICK_SECONDS"]
    click.echo(f"running jobs every {every:g} s; Ctrl-C to stop")
    while True:
        tick()
        time.sleep(every)


@click.group("plugins")
def plugins_cli() -> None:
    """Write and check clinic plugins."""


@plugins_cli.command("new")
@click.argument("name")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write the plugin's folder.",
)
@click.option("--title", help="One line saying what the plugin is for.")
def plugins_new(name: str, directory: Path, title: str | None) -> None:
    """Write a ready plugin package NAME: code, settings, a tenants example, tests and docs."""
    from core.testing.scaffold import ScaffoldError, write_plugin

    try:
        written = write_plugin(name, directory, title)
    except ScaffoldError as error:
        _fail(str(error))
    root = directory / name
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo(
        f"Next: cd {root} && pip install -e '.[test]' && pytest && "
        f"clinic-saas plugins check {name} --tenants tenants/example.toml"
    )


@plugins_cli.command("check")
@click.argument("name")
@click.option(
    "--tenants",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A tenants/ file enabling the plugin: its settings and services are used.",
)
@with_appcontext
def plugins_check(name: str, tenants: Path | None) -> None:
    """Check installed plugin NAME against the hook contract and run each hook it implements."""
    from core.testing.contract_check import check_plugin

    report = check_plugin(name, tenants, current_app.extensions.get(tenancy.PLUGIN_HOST_KEY))
    if report.refused is not None:
        _fail(f"{name}: refused: {report.refused}")
    if report.settings_problem is not None:
        _fail(f"{name}: settings: {report.settings_problem}")
    click.echo(f"{name}: keeps the hook contract")
    for result in report.results or ():
        mark = "ok " if result.problem is None else "BAD"
        line = f"  {mark} {result.hook} ({result.case}): {result.answer}"
        if result.problem is not None:
            line += f"\n      {result.problem}"
        click.echo(line)
    if not report.ok:
        _fail(f"{name}: some answers break the contract (marked BAD above)")
    click.echo(f"{name}: every answer keeps the contract ({len(report.results or ())} cases)")


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    for command in (
        setup_command,
        demo_command,
        clinics,
        staff,
        operator,
        tokens,
        keys,
        jobs,
        backup_cli,
        payments_cli,
        plugins_cli,
    ):
        app.cli.add_command(command)
