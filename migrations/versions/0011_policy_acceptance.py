"""A client's acceptance of a booking's policy, kept with the booking as evidence for a disputed fee.

Each row names the booking, the stored policy version its clauses come from,
the ids of the clauses accepted, when, the address and browser (user agent,
truncated) the acceptance came from, and the channel (online, self_service,
staff). Rows are written once and never changed. The table is clinic-owned,
so on PostgreSQL it gets the clinic isolation policy like every other.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 23:50:00

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_acceptance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.Column("clause_ids", sa.JSON(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_policy_acceptance_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_policy_acceptance_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_version.id"],
            name=op.f("fk_policy_acceptance_policy_version_id_policy_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_acceptance")),
    )
    with op.batch_alter_table("policy_acceptance", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_acceptance_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_policy_acceptance_clinic_id"), ["clinic_id"], unique=False
        )
    isolate_by_clinic(op, "policy_acceptance")
    grant_app_role(op)


def downgrade() -> None:
    drop_isolation(op, "policy_acceptance")
    with op.batch_alter_table("policy_acceptance", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_acceptance_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_policy_acceptance_booking_id"))
    op.drop_table("policy_acceptance")
