"""The app's role may read which migration ran last, so readiness can say whether the schema is current.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 10:20:00

"""

from alembic import op

from core.tenancy.rls import APP_ROLE, grant_app_role

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grant_app_role(op)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"REVOKE ALL ON alembic_version FROM {APP_ROLE}")
