"""Whether a restored instance can open what its database holds: the checks of `backup check`.

A backup is proved by a restore that reads. These checks read, and never
write: the schema is at this code's newest migration, the database's own
safeguards (row-level security, append-only tables) survived the restore,
every clinic's data keys open with the configured ``MASTER_KEYS``, a sample
of each encrypted column and of the photos decrypts, and every audit chain
verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, Text, func, inspect, select, text, type_coerce
from sqlalchemy.exc import SQLAlchemyError

from core.audit.models import AuditEvent
from core.audit.services import verify_chain
from core.clients.models import Photo
from core.clients.photos import load_photo
from core.encryption.keys import KeyUnavailable, decrypt, keyring, master_keys
from core.encryption.models import ClinicDataKey
from core.encryption.services import encrypted_columns
from core.extensions import Model, db
from core.platform.readiness import head_revision
from core.tenancy import services as tenancy
from core.tenancy.rls import POLICY
from core.tenancy.scope import ClinicRef, ClinicScoped, clinic_scope

#: Tables the migrations make append-only (``make_append_only``): the audit trail and the ledger.
APPEND_ONLY = ("audit_event", "ledger_entry")

#: Failures named one by one per check and clinic; past this, counted.
NAMED_FAILURES = 5


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was checked (or what is wrong), for the instance or one clinic."""

    check: str
    detail: str
    clinic: str | None = None
    problem: bool = False

    def line(self) -> str:
        """The finding as the command prints it."""
        where = f"{self.clinic}: " if self.clinic else ""
        return f"{'PROBLEM' if self.problem else 'ok':<8} {where}{self.check}: {self.detail}"


@dataclass
class RestoreReport:
    """Every finding, in the order checked."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_restore(sample: int | None = 20) -> RestoreReport:
    """Check the instance the app is configured for; read only, never write.

    ``sample`` is how many of the newest values of each encrypted column, and of
    the newest photos, are opened per clinic (``None``: every one). The newest,
    because a photo store copied before the database was dumped misses exactly
    those.
    """
    report = RestoreReport()
    report.findings.append(_migrations())
    report.findings.extend(_safeguards())
    keyring().clear()  # open every key afresh, with the keys configured now
    clinics = [ClinicRef(c.id, c.slug, c.locale) for c in tenancy.all_clinics()]
    db.session.rollback()
    for clinic in clinics:
        report.findings.extend(_clinic(clinic, sample))
    return report


def _migrations() -> Finding:
    head = head_revision()
    try:
        at = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as error:
        return Finding(
            "migrations",
            f"the database has no migration record ({type(error).__name__}): "
            "restore into an empty database, then run this again",
            problem=True,
        )
    finally:
        db.session.rollback()
    if at == head:
        return Finding("migrations", f"at {at}, this code's newest")
    # Revisions are numbered in order (as /readyz reads them): older is behind.
    advice = (
        "run `db upgrade`, then this again"
        if at is not None and at < (head or "")
        else "run the version of the code the backup was taken with"
    )
    return Finding(
        "migrations",
        f"the database is at {at}, this code's newest is {head}: {advice}",
        problem=True,
    )


def _clinic_tables() -> list[str]:
    return sorted(
        {
            cast(Table, m.local_table).name
            for m in Model.registry.mappers
            if issubclass(m.class_, ClinicScoped)
        }
    )


def _safeguards() -> list[Finding]:
    """Whether the restore kept what the migrations put around the data, not only the data."""
    try:
        if db.session.get_bind().dialect.name == "postgresql":
            return _postgres_safeguards()
        return _sqlite_safeguards()
    finally:
        db.session.rollback()


def _postgres_safeguards() -> list[Finding]:
    findings = []
    role, bypasses = db.session.execute(
        text("SELECT rolname, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    if bypasses:
        findings.append(
            Finding(
                "isolation",
                f"the app connects as {role}, a role that bypasses row-level security: "
                "connect as a login member of clinic_saas_app (README: Running in production)",
                problem=True,
            )
        )
    forced = set(
        db.session.scalars(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relrowsecurity AND c.relforcerowsecurity"
            )
        )
    )
    policed = set(
        db.session.scalars(
            text("SELECT tablename FROM pg_policies WHERE policyname = :policy"), {"policy": POLICY}
        )
    )
    tables = _clinic_tables()
    unguarded = [t for t in tables if t not in forced or t not in policed]
    if unguarded:
        findings.append(
            Finding(
                "isolation",
                f"{len(unguarded)} clinic table(s) lack forced row-level security with the "
                f"{POLICY} policy ({', '.join(unguarded[:NAMED_FAILURES])}"
                f"{', ...' if len(unguarded) > NAMED_FAILURES else ''}): the restore left out "
                "part of the schema; restore the whole dump again",
                problem=True,
            )
        )
    elif not bypasses:
        findings.append(
            Finding("isolation", f"row-level security forced on all {len(tables)} clinic tables")
        )
    # A trigger disabled (tgenabled 'D') refuses nothing, as if it were gone.
    triggers = set(
        db.session.scalars(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")
        )
    )
    findings.append(_append_only({t for t in APPEND_ONLY if f"{t}_append_only" in triggers}))
    return findings


def _sqlite_safeguards() -> list[Finding]:
    triggers = set(
        db.session.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    )
    kept = {t for t in APPEND_ONLY if {f"{t}_no_update", f"{t}_no_delete"} <= triggers}
    return [_append_only(kept)]


def _append_only(kept: set[str]) -> Finding:
    lost = [t for t in APPEND_ONLY if t not in kept]
    if lost:
        return Finding(
            "append-only",
            f"no longer append-only: {', '.join(lost)} (their triggers are missing or "
            "disabled; the restore left out part of the schema: restore the whole dump again)",
            problem=True,
        )
    return Finding("append-only", f"{' and '.join(APPEND_ONLY)} refuse changes")


def _clinic(clinic: ClinicRef, sample: int | None) -> Iterator[Finding]:
    with clinic_scope(clinic):
        keys, versions = _data_keys(clinic.slug)
        yield keys
        if keys.problem:
            yield Finding(
                "health data",
                "not checked, nor its photos and audit chain: they open only with the data keys",
                clinic.slug,
                problem=True,
            )
            return
        yield _encrypted_values(clinic.slug, sample)
        yield _photos(clinic.slug, sample)
        yield _audit_chain(clinic.slug, versions)


def _data_keys(slug: str) -> tuple[Finding, int]:
    """Unwrap every version of the clinic's data key; return the finding and how many there are."""
    masters = master_keys()
    held = ", ".join(repr(key_id) for key_id, _ in masters.keys)
    versions = list(db.session.scalars(select(ClinicDataKey).order_by(ClinicDataKey.version)))
    if not versions:
        return Finding("data keys", "none yet (nothing of this clinic is encrypted)", slug), 0
    failures = []
    older = 0
    for key in versions:
        try:
            masters.unwrap(key.master_key_id, key.wrapped, key.clinic_id, key.version)
        except KeyUnavailable:
            if key.master_key_id in dict(masters.keys):
                reason = (
                    f"does not unwrap with master key {key.master_key_id!r}: MASTER_KEYS "
                    "holds a different key under that id"
                )
            else:
                reason = (
                    f"is wrapped by master key {key.master_key_id!r}, which is not in "
                    f"MASTER_KEYS (it holds {held})"
                )
            failures.append(f"version {key.version} {reason}")
            continue
        older += key.master_key_id != masters.current_id
    if failures:
        return Finding("data keys", "; ".join(failures), slug, problem=True), len(versions)
    note = f"; {older} wrapped by an older master key (run `keys rewrap`)" if older else ""
    opened = f"{len(versions)} version(s) open with the configured MASTER_KEYS{note}"
    return Finding("data keys", opened, slug), len(versions)


def _newest(statement: Any, primary_key: Any, sample: int | None) -> Any:
    statement = statement.order_by(primary_key.desc())
    return statement if sample is None else statement.limit(sample)


def _named(failures: list[str]) -> str:
    shown = "; ".join(failures[:NAMED_FAILURES])
    rest = len(failures) - NAMED_FAILURES
    return shown + (f"; and {rest} more" if rest > 0 else "")


def _encrypted_values(slug: str, sample: int | None) -> Finding:
    checked = 0
    failures = []
    for model, attribute in encrypted_columns():
        column = getattr(model, attribute)
        purpose = column.type.purpose
        mapper: Any = inspect(model)
        primary_key: Any = mapper.primary_key[0]
        # The stored text as it is, not through the column type: a value that fails is
        # then named by its row, instead of failing the whole read.
        raw = type_coerce(column, Text)
        rows: Any = db.session.execute(
            _newest(select(primary_key, raw).where(column.is_not(None)), primary_key, sample)
        )
        for row_id, sealed in rows:
            checked += 1
            try:
                decrypt(sealed, purpose)
            except (KeyUnavailable, ValueError) as error:
                failures.append(f"{mapper.local_table.name} {row_id} ({purpose}): {error}")
    if failures:
        return Finding(
            "health data",
            f"{len(failures)} of {checked} values do not decrypt: {_named(failures)}",
            slug,
            problem=True,
        )
    return Finding("health data", f"{checked} encrypted value(s) decrypt", slug)


def _photos(slug: str, sample: int | None) -> Finding:
    total = db.session.scalar(select(func.count()).select_from(Photo)) or 0
    checked = 0
    failures = []
    newest: Any = db.session.execute(_newest(select(Photo.id, Photo.storage_key), Photo.id, sample))
    for photo_id, storage_key in newest:
        checked += 1
        try:
            load_photo(storage_key)
        except FileNotFoundError:
            failures.append(f"photo {photo_id} ({storage_key}) is missing from the photo store")
        except KeyUnavailable as error:
            failures.append(f"photo {photo_id} ({storage_key}) does not decrypt: {error}")
        except Exception as error:  # any store failure is reported, never raised past the report
            failures.append(
                f"the photo store did not return photo {photo_id} ({storage_key}): "
                f"{type(error).__name__}"
            )
    if failures:
        return Finding(
            "photos",
            f"{len(failures)} of {checked} checked (of {total}) fail: {_named(failures)}",
            slug,
            problem=True,
        )
    return Finding("photos", f"{checked} of {total} opened and decrypted", slug)


def _audit_chain(slug: str, key_versions: int) -> Finding:
    count = db.session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    if count == 0:
        return Finding("audit chain", "no events yet", slug)
    if key_versions == 0:
        # Verifying would make the clinic a first data key: a check never writes.
        return Finding(
            "audit chain",
            f"{count} events, but no data key to verify them with: the data keys were not restored",
            slug,
            problem=True,
        )
    report = verify_chain()
    if not report.intact:
        return Finding(
            "audit chain",
            f"broken at event {report.first_broken_seq}: {report.reason} "
            f"({report.checked} of {count} events verified before it)",
            slug,
            problem=True,
        )
    return Finding("audit chain", f"{report.checked} events verify", slug)
