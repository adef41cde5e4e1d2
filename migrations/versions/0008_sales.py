"""Sales: bills and tenders, products, packages, gift certificates, store credit, refund requests.

Ledger entries name the balance they move (``account``); a bill paid by card
is a payment too; a card payment is a receipt recorded once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 04:43:29.517855

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

NEW_TABLES = (
    "product",
    "store_credit",
    "sale",
    "client_package",
    "gift_certificate",
    "sale_line",
    "tender",
    "refund_request",
    "membership_plan",
    "client_membership",
)
OLD_RECEIPTS = "kind IN ('deposit_received', 'prepayment_received', 'fee_charged')"
ONCE_PER_OBJECT = "kind IN ('dispute_opened', 'dispute_won', 'dispute_lost', 'membership_payment')"
RECEIPTS = "kind IN ('deposit_received', 'prepayment_received', 'fee_charged', 'card_payment')"


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("prescription", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_product_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product")),
        sa.UniqueConstraint("clinic_id", "sku", name=op.f("uq_product_clinic_id_sku")),
    )
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "store_credit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("clause_id", sa.String(length=200), nullable=True),
        sa.Column("clause_text", sa.Text(), nullable=True),
        sa.Column("terms_clause_id", sa.String(length=200), nullable=True),
        sa.Column("terms_clause_text", sa.Text(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("services_only", sa.Boolean(), nullable=False),
        sa.Column("min_service_price_minor", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_store_credit_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_store_credit_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_credit")),
    )
    with op.batch_alter_table("store_credit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_credit_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_store_credit_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "sale",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("booking_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "paid", "voided", name="salestatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_minor", sa.Integer(), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"], ["booking.id"], name=op.f("fk_sale_booking_id_booking")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_sale_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_sale_clinic_id_clinic"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_sale_created_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sale")),
    )
    with op.batch_alter_table("sale", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sale_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sale_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "client_package",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("promotional", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_client_package_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_client_package_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["sale.id"], name=op.f("fk_client_package_sale_id_sale")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_client_package_service_id_service")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_package")),
    )
    with op.batch_alter_table("client_package", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_client_package_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_client_package_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "gift_certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("code_hint", sa.String(length=8), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("recipient_name", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_gift_certificate_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["sale_id"], ["sale.id"], name=op.f("fk_gift_certificate_sale_id_sale")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gift_certificate")),
        sa.UniqueConstraint(
            "clinic_id", "code_digest", name=op.f("uq_gift_certificate_clinic_id_code_digest")
        ),
    )
    with op.batch_alter_table("gift_certificate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gift_certificate_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "sale_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "service",
                "product",
                "package",
                "gift_certificate",
                "gratuity",
                name="linekind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_minor", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("client_package_id", sa.Integer(), nullable=True),
        sa.Column("gift_certificate_id", sa.Integer(), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_package_id"],
            ["client_package.id"],
            name=op.f("fk_sale_line_client_package_id_client_package"),
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_sale_line_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["gift_certificate_id"],
            ["gift_certificate.id"],
            name=op.f("fk_sale_line_gift_certificate_id_gift_certificate"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product.id"], name=op.f("fk_sale_line_product_id_product")
        ),
        sa.ForeignKeyConstraint(["sale_id"], ["sale.id"], name=op.f("fk_sale_line_sale_id_sale")),
        sa.ForeignKeyConstraint(
            ["service_id"], ["service.id"], name=op.f("fk_sale_line_service_id_service")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sale_line")),
    )
    with op.batch_alter_table("sale_line", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sale_line_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sale_line_sale_id"), ["sale_id"], unique=False)

    op.create_table(
        "tender",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "deposit",
                "card",
                "card_on_file",
                "gift_certificate",
                "store_credit",
                "package_session",
                "external",
                name="tenderkind",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("partner", sa.String(length=32), nullable=True),
        sa.Column("reference", sa.String(length=120), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("gift_certificate_id", sa.Integer(), nullable=True),
        sa.Column("store_credit_id", sa.Integer(), nullable=True),
        sa.Column("client_package_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_package_id"],
            ["client_package.id"],
            name=op.f("fk_tender_client_package_id_client_package"),
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_tender_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["gift_certificate_id"],
            ["gift_certificate.id"],
            name=op.f("fk_tender_gift_certificate_id_gift_certificate"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payment.id"], name=op.f("fk_tender_payment_id_payment")
        ),
        sa.ForeignKeyConstraint(["sale_id"], ["sale.id"], name=op.f("fk_tender_sale_id_sale")),
        sa.ForeignKeyConstraint(
            ["store_credit_id"],
            ["store_credit.id"],
            name=op.f("fk_tender_store_credit_id_store_credit"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tender")),
        sa.UniqueConstraint(
            "clinic_id",
            "sale_id",
            "idempotency_key",
            name=op.f("uq_tender_clinic_id_sale_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("tender", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tender_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tender_sale_id"), ["sale_id"], unique=False)

    op.create_table(
        "refund_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sale_line_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("condition", sa.String(length=32), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("clause_id", sa.String(length=200), nullable=False),
        sa.Column("clause_text", sa.Text(), nullable=False),
        sa.Column("refusal_reason", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "awaiting_approval",
                "approved",
                "done",
                "refused",
                name="refundstatus",
                native_enum=False,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("decided_by_user_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("store_credit_id", sa.Integer(), nullable=True),
        sa.Column("stripe_refund_id", sa.String(length=64), nullable=True),
        sa.Column("idempotency_key", sa.String(length=120), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_refund_request_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_refund_request_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_refund_request_decided_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["sale_line_id"],
            ["sale_line.id"],
            name=op.f("fk_refund_request_sale_line_id_sale_line"),
        ),
        sa.ForeignKeyConstraint(
            ["store_credit_id"],
            ["store_credit.id"],
            name=op.f("fk_refund_request_store_credit_id_store_credit"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refund_request")),
        sa.UniqueConstraint(
            "clinic_id", "idempotency_key", name=op.f("uq_refund_request_clinic_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_refund_request_clinic_id"), ["clinic_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_refund_request_sale_line_id"), ["sale_line_id"], unique=False
        )

    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_ledger_entry_account", ["clinic_id", "account"], unique=False)

    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sale_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payment_sale_id_sale"), "sale", ["sale_id"], ["id"]
        )

    op.create_table(
        "membership_plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("amount_minor", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("benefits", sa.Text(), nullable=True),
        sa.Column("stripe_plan_id", sa.String(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_membership_plan_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_membership_plan")),
    )
    with op.batch_alter_table("membership_plan", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_membership_plan_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "client_membership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("stripe_subscription_id", sa.String(length=64), nullable=True),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_client_membership_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_client_membership_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["membership_plan.id"],
            name=op.f("fk_client_membership_plan_id_membership_plan"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_membership")),
        sa.UniqueConstraint(
            "clinic_id",
            "stripe_subscription_id",
            name=op.f("uq_client_membership_clinic_id_stripe_subscription_id"),
        ),
    )
    with op.batch_alter_table("client_membership", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_client_membership_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_client_membership_clinic_id"), ["clinic_id"], unique=False
        )
    # One open or paid bill per appointment.
    live = sa.text("booking_id IS NOT NULL AND status != 'voided'")
    op.create_index(
        "uq_sale_booking",
        "sale",
        ["clinic_id", "booking_id"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    _receipts(RECEIPTS)
    once = sa.text(ONCE_PER_OBJECT)
    op.create_index(
        "uq_ledger_entry_once",
        "ledger_entry",
        ["clinic_id", "reference", "kind"],
        unique=True,
        sqlite_where=once,
        postgresql_where=once,
    )
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_charges_enabled", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("stripe_account_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
    for table in NEW_TABLES:
        isolate_by_clinic(op, table)
    grant_app_role(op)


def _receipts(where: str) -> None:
    op.drop_index("uq_ledger_entry_receipt", table_name="ledger_entry")
    op.create_index(
        "uq_ledger_entry_receipt",
        "ledger_entry",
        ["clinic_id", "payment_id", "kind"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def downgrade():
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("stripe_account_updated_at")
        batch_op.drop_column("stripe_charges_enabled")
    op.drop_index("uq_ledger_entry_once", table_name="ledger_entry")
    _receipts(OLD_RECEIPTS)
    op.drop_index("uq_sale_booking", table_name="sale")
    for table in NEW_TABLES:
        drop_isolation(op, table)
    with op.batch_alter_table("client_membership", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_membership_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_client_membership_client_id"))

    op.drop_table("client_membership")
    with op.batch_alter_table("membership_plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membership_plan_clinic_id"))

    op.drop_table("membership_plan")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payment_sale_id_sale"), type_="foreignkey")
        batch_op.drop_column("sale_id")

    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entry_account")
        batch_op.drop_column("account")

    with op.batch_alter_table("refund_request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refund_request_sale_line_id"))
        batch_op.drop_index(batch_op.f("ix_refund_request_clinic_id"))

    op.drop_table("refund_request")
    with op.batch_alter_table("tender", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tender_sale_id"))
        batch_op.drop_index(batch_op.f("ix_tender_clinic_id"))

    op.drop_table("tender")
    with op.batch_alter_table("sale_line", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sale_line_sale_id"))
        batch_op.drop_index(batch_op.f("ix_sale_line_clinic_id"))

    op.drop_table("sale_line")
    with op.batch_alter_table("gift_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gift_certificate_clinic_id"))

    op.drop_table("gift_certificate")
    with op.batch_alter_table("client_package", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_package_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_client_package_client_id"))

    op.drop_table("client_package")
    with op.batch_alter_table("sale", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sale_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_sale_client_id"))

    op.drop_table("sale")
    with op.batch_alter_table("store_credit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_credit_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_store_credit_client_id"))

    op.drop_table("store_credit")
    with op.batch_alter_table("product", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_clinic_id"))

    op.drop_table("product")
