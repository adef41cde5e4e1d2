"""PostgreSQL row-level security for clinic-owned tables, applied from migrations.

The app connects as a member of :data:`APP_ROLE`, which owns nothing; the
policy lets it see and write only rows whose ``clinic_id`` matches the
transaction's ``app.clinic_id``. ``FORCE`` applies the policy to the tables'
owner as well, so only a superuser (maintenance, never the app) bypasses it.
On SQLite these helpers do nothing; the ORM's scoping is the guard there.
"""

from __future__ import annotations

from typing import Any

APP_ROLE = "clinic_saas_app"
POLICY = "clinic_isolation"
_CURRENT = "NULLIF(current_setting('app.clinic_id', true), '')::integer"


def _is_postgres(op: Any) -> bool:
    return op.get_bind().dialect.name == "postgresql"


def ensure_app_role(op: Any) -> None:
    """Create the app's group role if it does not exist yet (it is shared by the cluster)."""
    if not _is_postgres(op):
        return
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
        END
        $$;
        """
    )


def isolate_by_clinic(op: Any, table: str) -> None:
    """Enable and force row-level security on ``table`` with the clinic policy."""
    if not _is_postgres(op):
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {POLICY} ON {table} "
        f"USING (clinic_id = {_CURRENT}) WITH CHECK (clinic_id = {_CURRENT})"
    )


def drop_isolation(op: Any, table: str) -> None:
    """Undo :func:`isolate_by_clinic` (for downgrades)."""
    if not _is_postgres(op):
        return
    op.execute(f"DROP POLICY IF EXISTS {POLICY} ON {table}")
    op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")


def grant_app_role(op: Any) -> None:
    """Let the app's role read and write every table (rows still filtered by policy).

    Call at the end of every migration that creates tables.
    """
    if not _is_postgres(op):
        return
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    # The app never changes which migrations ran; it reads which did (for /readyz).
    op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
    op.execute(f"GRANT SELECT ON alembic_version TO {APP_ROLE}")
    # Granting on every table must not give back what an append-only table
    # (audit trail, ledger) took away: find them by their trigger.
    op.execute(
        "DO $$ DECLARE t text; BEGIN "
        "FOR t IN SELECT DISTINCT event_object_table FROM information_schema.triggers "
        "WHERE trigger_name LIKE '%\\_append\\_only' LOOP "
        f"EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM {APP_ROLE}', t); "
        "END LOOP; END $$"
    )


def make_append_only(op: Any, table: str) -> None:
    """Refuse every UPDATE and DELETE on ``table``, for the app and the owner alike.

    On PostgreSQL the app's role also loses the privileges; a trigger stops
    the owner too. On SQLite, triggers do both jobs.
    """
    refusal = f"{table} is append-only"
    if _is_postgres(op):
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}")
        op.execute(
            f"CREATE FUNCTION {table}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{refusal}'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse_change()"
        )
        return
    for verb in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{refusal}'); END"
        )


def undo_append_only(op: Any, table: str) -> None:
    """Undo :func:`make_append_only` (for downgrades)."""
    if _is_postgres(op):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_refuse_change()")
        return
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{verb}")
