"""Privacy requests, retention holds, opt-out reviews, the breach register and data recipients.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 02:08:57.243262

"""

import sqlalchemy as sa
from alembic import op

from core.tenancy.rls import drop_isolation, grant_app_role, isolate_by_clinic

CLINIC_OWNED = (
    "breach_incident",
    "breach_notice",
    "data_recipient",
    "opt_out_review",
    "privacy_request",
    "processor_notice",
    "retention_hold",
)


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "breach_incident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("affected_count", sa.Integer(), nullable=False),
        sa.Column("affected_by_region", sa.JSON(), nullable=False),
        sa.Column("health_data", sa.Boolean(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), nullable=False),
        sa.Column("serious_harm_likely", sa.Boolean(), nullable=False),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_breach_incident_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_breach_incident_recorded_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_incident")),
    )
    with op.batch_alter_table("breach_incident", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_breach_incident_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "data_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("basis", sa.String(length=40), nullable=True),
        sa.Column("basis_note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_data_recipient_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_recipient")),
    )
    with op.batch_alter_table("data_recipient", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_data_recipient_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "breach_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=100), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("as_soon_as_practicable", sa.Boolean(), nullable=False),
        sa.Column("clause_id", sa.String(length=120), nullable=False),
        sa.Column("clause_text", sa.Text(), nullable=False),
        sa.Column("clause_source", sa.String(length=200), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_breach_notice_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["breach_incident.id"],
            name=op.f("fk_breach_notice_incident_id_breach_incident"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_breach_notice")),
    )
    with op.batch_alter_table("breach_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_breach_notice_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_breach_notice_incident_id"), ["incident_id"], unique=False
        )

    op.create_table(
        "opt_out_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("honour_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by_user_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_opt_out_review_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_opt_out_review_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_opt_out_review_decided_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opt_out_review")),
    )
    with op.batch_alter_table("opt_out_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_opt_out_review_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_opt_out_review_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "received",
                "verified",
                "completed",
                "denied",
                "withdrawn",
                name="requeststatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("requester_name", sa.String(length=200), nullable=False),
        sa.Column("requester_email", sa.String(length=254), nullable=True),
        sa.Column("requester_phone", sa.String(length=32), nullable=True),
        sa.Column("requester_date_of_birth", sa.Date(), nullable=True),
        sa.Column("representative_name", sa.String(length=200), nullable=True),
        sa.Column("representative_relationship", sa.String(length=100), nullable=True),
        sa.Column("guardian_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledge_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_clause_id", sa.String(length=120), nullable=False),
        sa.Column("deadline_clause_text", sa.Text(), nullable=False),
        sa.Column("verify_identity", sa.Boolean(), nullable=False),
        sa.Column("lookback_days", sa.Integer(), nullable=True),
        sa.Column("extendable_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("extension_notice", sa.Text(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by_user_id", sa.Integer(), nullable=True),
        sa.Column("verification_method", sa.String(length=200), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("denial_reason", sa.Text(), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_privacy_request_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_privacy_request_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["closed_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_privacy_request_closed_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"], ["guardian.id"], name=op.f("fk_privacy_request_guardian_id_guardian")
        ),
        sa.ForeignKeyConstraint(
            ["verified_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_privacy_request_verified_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_request")),
    )
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_privacy_request_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_privacy_request_clinic_id"), ["clinic_id"], unique=False
        )
        batch_op.create_index(
            "ix_privacy_request_queue", ["clinic_id", "status", "due_at"], unique=False
        )

    op.create_table(
        "processor_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("processor", sa.String(length=100), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "not_held",
                name="processornoticestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_processor_notice_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_processor_notice_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_request.id"],
            name=op.f("fk_processor_notice_request_id_privacy_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_processor_notice")),
    )
    with op.batch_alter_table("processor_notice", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processor_notice_clinic_id"), ["clinic_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_processor_notice_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "retention_hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("record_kind", sa.String(length=40), nullable=False),
        sa.Column("keep_until", sa.Date(), nullable=False),
        sa.Column("clause_id", sa.String(length=120), nullable=False),
        sa.Column("clause_text", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("holding", "purged", name="holdstatus", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_retention_hold_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_retention_hold_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_request.id"],
            name=op.f("fk_retention_hold_request_id_privacy_request"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retention_hold")),
    )
    with op.batch_alter_table("retention_hold", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retention_hold_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_retention_hold_clinic_id"), ["clinic_id"], unique=False
        )
        batch_op.create_index(
            "ix_retention_hold_due", ["clinic_id", "status", "keep_until"], unique=False
        )
    for table in CLINIC_OWNED:
        isolate_by_clinic(op, table)
    grant_app_role(op)


def downgrade():
    for table in CLINIC_OWNED:
        drop_isolation(op, table)
    with op.batch_alter_table("retention_hold", schema=None) as batch_op:
        batch_op.drop_index("ix_retention_hold_due")
        batch_op.drop_index(batch_op.f("ix_retention_hold_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_retention_hold_client_id"))

    op.drop_table("retention_hold")
    with op.batch_alter_table("processor_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processor_notice_request_id"))
        batch_op.drop_index(batch_op.f("ix_processor_notice_clinic_id"))

    op.drop_table("processor_notice")
    with op.batch_alter_table("privacy_request", schema=None) as batch_op:
        batch_op.drop_index("ix_privacy_request_queue")
        batch_op.drop_index(batch_op.f("ix_privacy_request_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_privacy_request_client_id"))

    op.drop_table("privacy_request")
    with op.batch_alter_table("opt_out_review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opt_out_review_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_opt_out_review_client_id"))

    op.drop_table("opt_out_review")
    with op.batch_alter_table("breach_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_breach_notice_incident_id"))
        batch_op.drop_index(batch_op.f("ix_breach_notice_clinic_id"))

    op.drop_table("breach_notice")
    with op.batch_alter_table("data_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_data_recipient_clinic_id"))

    op.drop_table("data_recipient")
    with op.batch_alter_table("breach_incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_breach_incident_clinic_id"))

    op.drop_table("breach_incident")
