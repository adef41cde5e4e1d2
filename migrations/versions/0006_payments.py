"""Payments on each clinic's Stripe account, the Stripe events applied, and the append-only ledger.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 02:44:47.366564

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import (
    drop_isolation,
    grant_app_role,
    isolate_by_clinic,
    make_append_only,
    undo_append_only,
)

CLINIC_OWNED = ("payment", "stripe_event", "ledger_entry")


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stripe_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_stripe_event_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_event")),
        sa.UniqueConstraint(
            "clinic_id", "event_id", name=op.f("uq_stripe_event_clinic_id_event_id")
        ),
    )
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stripe_event_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("booking_charge_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
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
        sa.Column("stripe_account", sa.String(length=64), nullable=False),
        sa.Column("stripe_payment_intent_id", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_charge_id"],
            ["booking_charge.id"],
            name=op.f("fk_payment_booking_charge_id_booking_charge"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_payment_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_payment_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment")),
        sa.UniqueConstraint(
            "clinic_id", "idempotency_key", name=op.f("uq_payment_clinic_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "clinic_id",
            "stripe_payment_intent_id",
            name=op.f("uq_payment_clinic_id_stripe_payment_intent_id"),
        ),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_booking_id"), ["booking_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payment_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "deposit_received",
                "prepayment_received",
                "fee_charged",
                "deposit_forfeited",
                "refund",
                name="ledgerkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("reference", sa.String(length=120), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_ledger_entry_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entry")),
    )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_entry_booking_id"), ["booking_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ledger_entry_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entry_clinic_id"), ["clinic_id"], unique=False)

    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_customer_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("stripe_payment_method_id", sa.String(length=64), nullable=True)
        )

    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_account_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_clinic_stripe_account_id"), ["stripe_account_id"]
        )
    for table in CLINIC_OWNED:
        isolate_by_clinic(op, table)
    grant_app_role(op)
    # Money movements are never changed or removed; balances are derived from them.
    make_append_only(op, "ledger_entry")


def downgrade():
    undo_append_only(op, "ledger_entry")
    for table in CLINIC_OWNED:
        drop_isolation(op, table)
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_clinic_stripe_account_id"), type_="unique")
        batch_op.drop_column("stripe_account_id")

    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_column("stripe_payment_method_id")
        batch_op.drop_column("stripe_customer_id")

    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entry_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entry_client_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entry_booking_id"))

    op.drop_table("ledger_entry")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_payment_booking_id"))

    op.drop_table("payment")
    with op.batch_alter_table("stripe_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stripe_event_clinic_id"))

    op.drop_table("stripe_event")
