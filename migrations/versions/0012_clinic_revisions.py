"""Each change to a clinic's document (its rules, settings, locations, services) kept with who and when.

A clinic created or changed through the operator API, or loaded from a
tenants/ file, gets a numbered revision holding the whole document as it then
was, the source (the API, or the file's name) and the operator who made it,
and, once the clinic's owner has read and accepted it, who did and when.
Revisions are the clinic's rows like any other: on PostgreSQL row-level security
keeps each clinic's to itself (the operator reads them inside the clinic's scope).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 06:40:00

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clinic_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("changed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("accepted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_clinic_revision_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["changed_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_clinic_revision_changed_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["accepted_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_clinic_revision_accepted_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_revision")),
        sa.UniqueConstraint(
            "clinic_id", "number", name=op.f("uq_clinic_revision_clinic_id_number")
        ),
    )
    with op.batch_alter_table("clinic_revision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinic_revision_clinic_id"), ["clinic_id"], unique=False
        )
    isolate_by_clinic(op, "clinic_revision")
    grant_app_role(op)


def downgrade() -> None:
    drop_isolation(op, "clinic_revision")
    op.drop_table("clinic_revision")
