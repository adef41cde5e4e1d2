"""Single-use, expiring links to set a password: a clinic's invitation to a person, or a reset.

Only the token's SHA-256 is stored; the token itself travels in the email.
A link belongs to a person at one clinic, is made and used in that clinic's
scope, and is the clinic's row like any other (row-level security on PostgreSQL).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 07:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_password_link_user_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_password_link_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_link")),
        sa.UniqueConstraint(
            "clinic_id", "token_hash", name=op.f("uq_password_link_clinic_id_token_hash")
        ),
    )
    with op.batch_alter_table("password_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_password_link_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_password_link_clinic_id"), ["clinic_id"], unique=False)
    isolate_by_clinic(op, "password_link")
    grant_app_role(op)


def downgrade() -> None:
    drop_isolation(op, "password_link")
    with op.batch_alter_table("password_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_link_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_password_link_user_id"))
    op.drop_table("password_link")
