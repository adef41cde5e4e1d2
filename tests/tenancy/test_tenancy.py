"""No clinic sees another's data: the ORM scopes every query, and PostgreSQL enforces it again."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import joinedload

from core.extensions import db
from core.tenancy.models import Clinic, Location
from core.tenancy.scope import (
    ClinicRef,
    ClinicScoped,
    CrossClinicWrite,
    NoClinicScope,
    UnscopedStatement,
    clinic_scope,
)
from tests.helpers import issue_token, make_clinic, make_provider, make_service, make_staff


@pytest.fixture
def two_clinics(app):
    with app.app_context():
        make_clinic("alpha", locations=("a1", "a2"))
        make_clinic("beta", locations=("b1",))
        alpha = db.session.scalar(select(Clinic).where(Clinic.slug == "alpha"))
        beta = db.session.scalar(select(Clinic).where(Clinic.slug == "beta"))
        yield ClinicRef(alpha.id, alpha.slug), ClinicRef(beta.id, beta.slug)


def test_a_query_that_forgets_to_filter_sees_only_the_current_clinic(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha):
        slugs = sorted(loc.slug for loc in db.session.scalars(select(Location)))
        assert slugs == ["a1", "a2"]
        assert db.session.scalar(select(func.count()).select_from(Location)) == 2
    with clinic_scope(beta):
        assert [loc.slug for loc in db.session.scalars(select(Location))] == ["b1"]


def test_get_by_primary_key_of_another_clinics_row_finds_nothing(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(beta):
        b1_id = db.session.scalar(select(Location.id))
    with clinic_scope(alpha):
        assert db.session.get(Location, b1_id) is None
        assert db.session.scalar(select(Location).where(Location.id == b1_id)) is None


def test_relationship_loads_are_scoped_too(two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        clinic = db.session.get(Clinic, alpha.id)
        assert sorted(loc.slug for loc in clinic.locations) == ["a1", "a2"]


def test_bulk_update_and_delete_touch_only_the_current_clinic(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha):
        db.session.execute(update(Location).values(name="renamed"))
        db.session.execute(delete(Location).where(Location.slug == "a2"))
        db.session.commit()
    with clinic_scope(beta):
        assert db.session.scalar(select(Location.name)) == "beta b1"
    with clinic_scope(alpha):
        assert [(loc.slug, loc.name) for loc in db.session.scalars(select(Location))] == [
            ("a1", "renamed")
        ]


def test_inserts_take_the_current_clinic(two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        location = Location(slug="new", name="New", country="US", timezone="America/Los_Angeles")
        db.session.add(location)
        db.session.commit()
        assert location.clinic_id == alpha.id


def test_writing_a_row_for_another_clinic_is_refused(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha):
        db.session.add(
            Location(clinic_id=beta.id, slug="sneaky", name="x", country="US", timezone="UTC")
        )
        with pytest.raises(CrossClinicWrite):
            db.session.flush()
        db.session.rollback()
    with clinic_scope(beta):
        assert "sneaky" not in {loc.slug for loc in db.session.scalars(select(Location))}


def test_moving_a_row_to_another_clinic_is_refused(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha):
        location = db.session.scalar(select(Location).where(Location.slug == "a1"))
        location.clinic_id = beta.id
        with pytest.raises(CrossClinicWrite):
            db.session.flush()


def test_clinic_owned_data_outside_any_scope_is_an_error_not_everything(app, two_clinics):
    with pytest.raises(NoClinicScope):
        db.session.scalars(select(Location)).all()
    db.session.rollback()
    db.session.add(Location(slug="x", name="x", country="US", timezone="UTC", clinic_id=1))
    with pytest.raises(NoClinicScope):
        db.session.flush()
    db.session.rollback()


def test_a_scope_cannot_open_inside_another_clinics_scope(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha), pytest.raises(CrossClinicWrite), clinic_scope(beta):
        pass


def test_rows_loaded_before_a_scope_do_not_leak_into_it(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(beta):
        b1 = db.session.scalar(select(Location))
        b1_id = b1.id
    # The identity map is discarded with the scope, so get() must go to SQL.
    with clinic_scope(alpha):
        assert db.session.get(Location, b1_id) is None


def test_every_clinic_owned_table_is_scoped():
    scoped = {
        m.class_.__tablename__
        for m in db.Model.registry.mappers
        if issubclass(m.class_, ClinicScoped)
    }
    assert {"location", "membership"} <= scoped
    for table in scoped:
        assert "clinic_id" in db.metadata.tables[table].c
        uniques = [
            c
            for c in db.metadata.tables[table].constraints
            if c.__class__.__name__ == "UniqueConstraint"
        ]
        for unique in uniques:
            # Per-clinic uniqueness: a slug in one clinic does not block another clinic.
            assert "clinic_id" in unique.columns, f"{table}: {unique.name} lacks clinic_id"


def test_core_table_statements_on_clinic_data_are_refused(two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        with pytest.raises(UnscopedStatement):
            db.session.execute(select(Location.__table__))
        with pytest.raises(UnscopedStatement):
            db.session.execute(update(Location.__table__).values(name="x"))


def test_eager_loads_from_a_global_model_are_scoped(two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        clinic = (
            db.session.scalars(
                select(Clinic).options(joinedload(Clinic.locations)).where(Clinic.id == alpha.id)
            )
            .unique()
            .one()
        )
        assert sorted(loc.slug for loc in clinic.locations) == ["a1", "a2"]
        beta = (
            db.session.scalars(
                select(Clinic).options(joinedload(Clinic.locations)).where(Clinic.slug == "beta")
            )
            .unique()
            .one()
        )
        assert beta.locations == []
    # Outside any scope an eager load of clinic-owned rows finds nothing.
    clinics = (
        db.session.scalars(select(Clinic).options(joinedload(Clinic.locations))).unique().all()
    )
    assert all(c.locations == [] for c in clinics)
    db.session.rollback()


def test_orm_insert_and_update_statements_cannot_cross_clinics(two_clinics):
    alpha, beta = two_clinics
    row = {"slug": "x", "name": "x", "country": "US", "timezone": "UTC", "active": True}
    with clinic_scope(alpha):
        with pytest.raises(CrossClinicWrite):
            db.session.execute(insert(Location).values(clinic_id=beta.id, **row))
        with pytest.raises(CrossClinicWrite):
            db.session.execute(insert(Location), [{**row, "clinic_id": beta.id}])
        with pytest.raises(CrossClinicWrite):
            db.session.execute(update(Location).values(clinic_id=beta.id))
        db.session.rollback()
        db.session.execute(insert(Location), [{**row, "clinic_id": alpha.id}])
        db.session.commit()
    with pytest.raises(NoClinicScope):
        db.session.execute(insert(Location).values(clinic_id=beta.id, **row))
    db.session.rollback()
    with clinic_scope(beta):
        assert [loc.slug for loc in db.session.scalars(select(Location))] == ["b1"]


def test_bulk_operations_on_clinic_data_are_refused(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha), pytest.raises(RuntimeError, match="bulk operations"):
        db.session.bulk_update_mappings(Location, [{"id": 1, "name": "x"}])
    with clinic_scope(alpha), pytest.raises(RuntimeError, match="bulk operations"):
        db.session.bulk_save_objects(
            [Location(clinic_id=beta.id, slug="y", name="y", country="US", timezone="UTC")]
        )


def test_appending_through_another_clinics_relationship_is_refused(two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(beta):
        other = db.session.get(Clinic, alpha.id)
        other.locations.append(Location(slug="planted", name="x", country="US", timezone="UTC"))
        with pytest.raises(CrossClinicWrite):
            db.session.commit()
    with clinic_scope(alpha):
        assert "planted" not in {loc.slug for loc in db.session.scalars(select(Location))}


def test_a_nested_scope_of_the_same_clinic_keeps_the_outer_work(two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        db.session.add(Location(slug="kept", name="x", country="US", timezone="UTC"))
        with clinic_scope(alpha):
            pass
        db.session.commit()
    with clinic_scope(alpha):
        assert "kept" in {loc.slug for loc in db.session.scalars(select(Location))}


# --- PostgreSQL row-level security -------------------------------------------


@pytest.fixture
def postgres(database):
    if not database.is_postgres:
        pytest.skip("row-level security exists only on PostgreSQL; run with --db postgresql")
    return database


def test_the_app_connects_as_a_role_that_neither_owns_the_tables_nor_bypasses_rls(
    postgres, two_clinics
):
    row = db.session.execute(
        text(
            "SELECT current_user, r.rolsuper, r.rolbypassrls, t.tableowner "
            "FROM pg_roles r, pg_tables t WHERE r.rolname = current_user AND t.tablename = 'location'"
        )
    ).one()
    user, superuser, bypass, owner = row
    assert not superuser and not bypass
    assert owner != user


def test_raw_sql_as_the_app_role_sees_only_the_current_clinic(postgres, two_clinics):
    alpha, beta = two_clinics
    with clinic_scope(alpha):
        rows = db.session.execute(text("SELECT clinic_id, slug FROM location ORDER BY slug")).all()
        assert rows == [(alpha.id, "a1"), (alpha.id, "a2")]
        count = db.session.scalar(
            text("SELECT count(*) FROM membership WHERE clinic_id = :b"), {"b": beta.id}
        )
        assert count == 0


def test_raw_sql_with_no_clinic_scope_sees_no_clinic_rows(postgres, two_clinics):
    assert db.session.scalar(text("SELECT count(*) FROM location")) == 0


def test_raw_sql_cannot_write_into_another_clinic(postgres, two_clinics):
    alpha, beta = two_clinics
    from sqlalchemy.exc import ProgrammingError

    with clinic_scope(alpha):
        with pytest.raises(ProgrammingError, match="row-level security"):
            db.session.execute(
                text(
                    "INSERT INTO location (clinic_id, slug, name, country, timezone, active, created_at, updated_at)"
                    " VALUES (:b, 'evil', 'evil', 'US', 'UTC', true, now(), now())"
                ),
                {"b": beta.id},
            )
        db.session.rollback()
        # An UPDATE aimed at the other clinic matches no row at all.
        result = db.session.execute(
            text("UPDATE location SET name = 'x' WHERE clinic_id = :b"), {"b": beta.id}
        )
        assert result.rowcount == 0
        db.session.commit()


def test_the_clinic_setting_does_not_leak_to_the_next_transaction(postgres, two_clinics):
    alpha, _ = two_clinics
    with clinic_scope(alpha):
        assert db.session.scalar(text("SELECT current_setting('app.clinic_id', true)")) == str(
            alpha.id
        )
        connection = db.session.connection().connection.dbapi_connection
        db.session.commit()
    # Same pooled connection, new transaction, no scope: the setting is gone.
    raw = connection.cursor()
    raw.execute("SELECT coalesce(current_setting('app.clinic_id', true), '')")
    assert raw.fetchone()[0] == ""
    raw.execute("SELECT count(*) FROM location")
    assert raw.fetchone()[0] == 0
    connection.rollback()


def test_every_clinic_owned_table_has_forced_row_level_security(postgres, app):
    scoped = {
        m.class_.__tablename__
        for m in db.Model.registry.mappers
        if issubclass(m.class_, ClinicScoped)
    }
    with app.app_context():
        rows = db.session.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(:t)"
            ),
            {"t": list(scoped)},
        ).all()
    assert {r[0] for r in rows} == scoped
    assert all(r[1] and r[2] for r in rows), rows


@pytest.fixture
def beta_with_rows(postgres, app, two_clinics):
    """Beta has rows in the tables a busy clinic fills first: staff, tokens, providers, services."""
    make_staff("beta", "owner@beta.example.com")
    provider = make_provider("beta", "kim@beta.example.com", location="b1")
    make_service("beta", "facial", provider_ids=[provider], location="b1")
    issue_token(app, "beta", "owner@beta.example.com")
    return two_clinics


def _tables_with_clinic_id() -> list[str]:
    """Every table with a ``clinic_id`` column, from the database's own catalog."""
    return list(
        db.session.scalars(
            text(
                "SELECT table_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND column_name = 'clinic_id' ORDER BY table_name"
            )
        )
    )


def test_every_table_with_a_clinic_id_keeps_other_clinics_rows_from_the_app_role(
    postgres, beta_with_rows
):
    # README: "on PostgreSQL row-level security enforces the same rule again for any SQL the
    # ORM never sees." The tables come from the catalog, not from the models, so a table the
    # models forget to mark is caught too.
    alpha, beta = beta_with_rows
    tables = _tables_with_clinic_id()
    assert {"api_token", "location", "membership", "booking", "ledger_entry"} <= set(tables)
    flags = dict(
        (name, (enabled, forced))
        for name, enabled, forced in db.session.execute(
            text(
                "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relkind = 'r' AND relname = ANY(:t)"
            ),
            {"t": tables},
        )
    )
    unprotected = [t for t in tables if flags.get(t) != (True, True)]
    assert unprotected == [], f"row-level security not enabled and forced on {unprotected}"
    db.session.commit()

    # Rows of beta as a superuser sees them, per table.
    with postgres.owner.connect() as owner:
        beta_rows = {
            t: owner.execute(
                text(f'SELECT count(*) FROM "{t}" WHERE clinic_id = :b'), {"b": beta.id}
            ).scalar_one()
            for t in tables
        }
    assert all(beta_rows[t] > 0 for t in ("api_token", "location", "membership", "service"))

    with clinic_scope(alpha):
        session = db.session()
        for table in tables:
            # Read: none of beta's rows, whatever the WHERE clause asks for.
            seen = session.execute(
                text(f'SELECT count(*) FROM "{table}" WHERE clinic_id = :b'), {"b": beta.id}
            ).scalar_one()
            assert seen == 0, f"{table}: alpha's scope reads {seen} of beta's rows"
            # Update and delete: beta's rows are out of reach (append-only tables refuse
            # both outright, which is out of reach too).
            for statement in (
                f'UPDATE "{table}" SET clinic_id = clinic_id WHERE clinic_id = :b',
                f'DELETE FROM "{table}" WHERE clinic_id = :b',
            ):
                try:
                    with session.begin_nested():
                        changed = session.execute(text(statement), {"b": beta.id}).rowcount
                except ProgrammingError as refused:
                    assert "permission denied" in str(refused), refused
                    changed = 0
                assert changed == 0, f"{table}: {statement} reached {changed} of beta's rows"
            # Insert: a row naming beta is refused by the policy before any other constraint.
            with (
                pytest.raises(ProgrammingError, match="row-level security"),
                session.begin_nested(),
            ):
                session.execute(
                    text(f'INSERT INTO "{table}" (clinic_id) VALUES (:b)'), {"b": beta.id}
                )
        session.rollback()

    # With no clinic set, no table shows any clinic's rows.
    for table in tables:
        assert db.session.scalar(text(f'SELECT count(*) FROM "{table}"')) == 0, table
    db.session.rollback()

    with postgres.owner.connect() as owner:
        after = {
            t: owner.execute(
                text(f'SELECT count(*) FROM "{t}" WHERE clinic_id = :b'), {"b": beta.id}
            ).scalar_one()
            for t in tables
        }
    assert after == beta_rows
