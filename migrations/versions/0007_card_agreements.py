"""Cards saved for a booking's guarantee, with the policy the client agreed to and when they expire.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:09:29.078268

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "card_agreement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("policy_version_id", sa.Integer(), nullable=False),
        sa.Column("agreed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stripe_account", sa.String(length=64), nullable=False),
        sa.Column("stripe_setup_intent_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "requires_action",
                "succeeded",
                "failed",
                "canceled",
                name="paymentstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_card_agreement_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_card_agreement_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_card_agreement_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["policy_version_id"],
            ["policy_version.id"],
            name=op.f("fk_card_agreement_policy_version_id_policy_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_agreement")),
        sa.UniqueConstraint(
            "clinic_id", "idempotency_key", name=op.f("uq_card_agreement_clinic_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "clinic_id",
            "stripe_setup_intent_id",
            name=op.f("uq_card_agreement_clinic_id_stripe_setup_intent_id"),
        ),
    )
    with op.batch_alter_table("card_agreement", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_agreement_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_card_agreement_clinic_id"), ["clinic_id"], unique=False
        )
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_expires_on", sa.Date(), nullable=True))
    receipts = sa.text("kind IN ('deposit_received', 'prepayment_received', 'fee_charged')")
    op.create_index(
        "uq_ledger_entry_receipt",
        "ledger_entry",
        ["clinic_id", "payment_id", "kind"],
        unique=True,
        sqlite_where=receipts,
        postgresql_where=receipts,
    )
    isolate_by_clinic(op, "card_agreement")
    grant_app_role(op)


def downgrade():
    op.drop_index("uq_ledger_entry_receipt", table_name="ledger_entry")
    drop_isolation(op, "card_agreement")
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_column("card_expires_on")
    with op.batch_alter_table("card_agreement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_agreement_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_card_agreement_booking_id"))

    op.drop_table("card_agreement")
