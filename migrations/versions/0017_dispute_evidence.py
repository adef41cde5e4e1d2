"""Card disputes kept with the evidence that answers them, and how each clinic sends it.

A dispute on a clinic's payment gets a row: Stripe's dispute, the payment and
booking it is about, its due date, the evidence assembled from what the platform
stored (the policy accepted, the booking's history, the receipt), whether it is
held for a manager or sent, by whom, and how the dispute ended. The rows are the
clinic's, under row-level security on PostgreSQL. Each clinic says whether its
evidence is held for review (the default) or submitted at once.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 09:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "dispute_evidence", sa.String(length=8), nullable=False, server_default="review"
            )
        )
    op.create_table(
        "dispute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("stripe_dispute_id", sa.String(length=64), nullable=False),
        sa.Column("stripe_account", sa.String(length=64), nullable=False),
        sa.Column("stripe_charge_id", sa.String(length=64), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("due_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evidence", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("evidence_status", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("submitted_by_user_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_dispute_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_dispute_submitted_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute")),
        sa.UniqueConstraint(
            "clinic_id", "stripe_dispute_id", name=op.f("uq_dispute_clinic_id_stripe_dispute_id")
        ),
    )
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_dispute_clinic_id"), ["clinic_id"], unique=False)
    isolate_by_clinic(op, "dispute")
    grant_app_role(op)


def downgrade() -> None:
    drop_isolation(op, "dispute")
    with op.batch_alter_table("dispute", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_dispute_booking_id"))
    op.drop_table("dispute")
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("dispute_evidence")
