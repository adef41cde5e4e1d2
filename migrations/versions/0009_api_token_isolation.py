"""API tokens are clinic-owned rows like any other: row-level security on api_token.

A token is looked up inside the clinic scope of the URL it is presented at, so
another clinic's tokens (names, owners, digests) are invisible to the app's role.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 16:40:00

"""

from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Looked up by clinic and digest together, like every unique key of a clinic's rows.
    with op.batch_alter_table("api_token") as batch_op:
        batch_op.drop_constraint("uq_api_token_token_hash", type_="unique")
        batch_op.create_unique_constraint(
            "uq_api_token_clinic_id_token_hash", ["clinic_id", "token_hash"]
        )
    isolate_by_clinic(op, "api_token")
    grant_app_role(op)


def downgrade() -> None:
    drop_isolation(op, "api_token")
    with op.batch_alter_table("api_token") as batch_op:
        batch_op.drop_constraint("uq_api_token_clinic_id_token_hash", type_="unique")
        batch_op.create_unique_constraint("uq_api_token_token_hash", ["token_hash"])
