"""Clients and their health records, consents, photos, break-glass access, the audit trail and clinic data keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:45:22.651276

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

CLINIC_OWNED = (
    "audit_chain",
    "audit_event",
    "clinic_data_key",
    "client",
    "guardian",
    "health_intake",
    "clinical_note",
    "product_use",
    "adverse_reaction",
    "consent",
    "photo",
    "emergency_access",
)


# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_audit_chain_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("clinic_id", name=op.f("uq_audit_chain_clinic_id")),
    )
    with op.batch_alter_table("audit_chain", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_chain_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_role", sa.String(length=32), nullable=True),
        sa.Column(
            "action",
            sa.Enum(
                "read",
                "create",
                "update",
                "delete",
                "export",
                "disclose",
                "emergency_access",
                "review",
                name="auditaction",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("resource", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recipient", sa.String(length=200), nullable=True),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_user_id"],
            ["user_account.id"],
            name=op.f("fk_audit_event_actor_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_audit_event_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("clinic_id", "seq", name=op.f("uq_audit_event_clinic_id_seq")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            "ix_audit_event_clinic_client_at", ["clinic_id", "client_id", "at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_event_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "clinic_data_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("master_key_id", sa.String(length=64), nullable=False),
        sa.Column("wrapped", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_clinic_data_key_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinic_data_key")),
        sa.UniqueConstraint(
            "clinic_id", "version", name=op.f("uq_clinic_data_key_clinic_id_version")
        ),
    )
    with op.batch_alter_table("clinic_data_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_clinic_data_key_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legal_first_name", sa.String(length=100), nullable=False),
        sa.Column("legal_last_name", sa.String(length=100), nullable=False),
        sa.Column("preferred_name", sa.String(length=100), nullable=True),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(length=50), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("street", sa.String(length=200), nullable=True),
        sa.Column("unit", sa.String(length=100), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("emergency_contact_name", sa.String(length=200), nullable=True),
        sa.Column("emergency_contact_phone", sa.String(length=32), nullable=True),
        sa.Column("emergency_contact_relationship", sa.String(length=100), nullable=True),
        sa.Column("preferred_location_id", sa.Integer(), nullable=True),
        sa.Column(
            "preferred_channel",
            sa.Enum("email", "sms", "phone", "none", name="channel", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("search_first", sa.String(length=100), nullable=False),
        sa.Column("search_last", sa.String(length=100), nullable=False),
        sa.Column("search_preferred", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_client_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["preferred_location_id"],
            ["location.id"],
            name=op.f("fk_client_preferred_location_id_location"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client")),
    )
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.create_index("ix_client_clinic_email", ["clinic_id", "email"], unique=False)
        batch_op.create_index("ix_client_clinic_first", ["clinic_id", "search_first"], unique=False)
        batch_op.create_index(batch_op.f("ix_client_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index("ix_client_clinic_last", ["clinic_id", "search_last"], unique=False)
        batch_op.create_index("ix_client_clinic_phone", ["clinic_id", "phone"], unique=False)
        batch_op.create_index(
            "ix_client_clinic_preferred", ["clinic_id", "search_preferred"], unique=False
        )

    op.create_table(
        "clinical_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "skin",
                "treatment",
                "medical_condition",
                "leisure",
                "general",
                name="notekind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("amends_note_id", sa.Integer(), nullable=True),
        sa.Column("author_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["amends_note_id"],
            ["clinical_note.id"],
            name=op.f("fk_clinical_note_amends_note_id_clinical_note"),
        ),
        sa.ForeignKeyConstraint(
            ["author_user_id"],
            ["user_account.id"],
            name=op.f("fk_clinical_note_author_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_clinical_note_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_clinical_note_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinical_note")),
    )
    with op.batch_alter_table("clinical_note", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clinical_note_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_clinical_note_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "emergency_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_emergency_access_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_emergency_access_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_emergency_access_reviewed_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_emergency_access_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_access")),
    )
    with op.batch_alter_table("emergency_access", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_emergency_access_clinic_id"), ["clinic_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_emergency_access_user_id"), ["user_id"], unique=False)

    op.create_table(
        "guardian",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("relationship_to_client", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_guardian_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_guardian_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guardian")),
    )
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guardian_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_guardian_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "health_intake",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("change_reason", sa.Text(), nullable=True),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_health_intake_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_health_intake_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_health_intake_recorded_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_intake")),
        sa.UniqueConstraint(
            "clinic_id",
            "client_id",
            "version",
            name=op.f("uq_health_intake_clinic_id_client_id_version"),
        ),
    )
    with op.batch_alter_table("health_intake", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_health_intake_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_health_intake_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "product_use",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("product", sa.Text(), nullable=False),
        sa.Column(
            "setting",
            sa.Enum("in_clinic", "at_home", name="productsetting", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("started_on", sa.Date(), nullable=True),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_product_use_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_product_use_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_product_use_recorded_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_use")),
    )
    with op.batch_alter_table("product_use", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_product_use_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_product_use_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "adverse_reaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("product_use_id", sa.Integer(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "severity",
            sa.Enum("mild", "moderate", "severe", name="severity", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_adverse_reaction_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_adverse_reaction_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["product_use_id"],
            ["product_use.id"],
            name=op.f("fk_adverse_reaction_product_use_id_product_use"),
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_adverse_reaction_recorded_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adverse_reaction")),
    )
    with op.batch_alter_table("adverse_reaction", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_adverse_reaction_client_id"), ["client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_adverse_reaction_clinic_id"), ["clinic_id"], unique=False
        )

    op.create_table(
        "consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "treatment",
                "clinical_photos",
                "marketing_photos",
                "transactional_sms",
                "marketing_sms",
                "marketing_email",
                "parental",
                name="consentkind",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_version", sa.String(length=50), nullable=False),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "written",
                "electronic",
                "verbal",
                "sms_keyword",
                name="consentmethod",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("guardian_id", sa.Integer(), nullable=True),
        sa.Column("recorded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_method", sa.String(length=32), nullable=True),
        sa.Column("revoked_by_user_id", sa.Integer(), nullable=True),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_consent_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_consent_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["guardian_id"], ["guardian.id"], name=op.f("fk_consent_guardian_id_guardian")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_consent_recorded_by_user_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_consent_revoked_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent")),
    )
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_clinic_client_kind", ["clinic_id", "client_id", "kind"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_consent_clinic_id"), ["clinic_id"], unique=False)

    op.create_table(
        "photo",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("before", "after", "progress", name="photokind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("byte_size", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=True),
        sa.Column("marketing_use", sa.Boolean(), nullable=False),
        sa.Column("uploaded_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["client.id"], name=op.f("fk_photo_client_id_client")
        ),
        sa.ForeignKeyConstraint(
            ["clinic_id"],
            ["clinic.id"],
            name=op.f("fk_photo_clinic_id_clinic"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consent.id"], name=op.f("fk_photo_consent_id_consent")
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_user_id"],
            ["user_account.id"],
            name=op.f("fk_photo_uploaded_by_user_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo")),
        sa.UniqueConstraint(
            "clinic_id", "storage_key", name=op.f("uq_photo_clinic_id_storage_key")
        ),
    )
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_photo_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_photo_clinic_id"), ["clinic_id"], unique=False)

    for table in CLINIC_OWNED:
        isolate_by_clinic(op, table)
    grant_app_role(op)
    make_append_only(op, "audit_event")


def downgrade():
    undo_append_only(op, "audit_event")
    for table in CLINIC_OWNED:
        drop_isolation(op, table)
    with op.batch_alter_table("photo", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_photo_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_photo_client_id"))

    op.drop_table("photo")
    with op.batch_alter_table("consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_clinic_id"))
        batch_op.drop_index("ix_consent_clinic_client_kind")

    op.drop_table("consent")
    with op.batch_alter_table("adverse_reaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_adverse_reaction_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_adverse_reaction_client_id"))

    op.drop_table("adverse_reaction")
    with op.batch_alter_table("product_use", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_product_use_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_product_use_client_id"))

    op.drop_table("product_use")
    with op.batch_alter_table("health_intake", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_intake_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_health_intake_client_id"))

    op.drop_table("health_intake")
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guardian_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_guardian_client_id"))

    op.drop_table("guardian")
    with op.batch_alter_table("emergency_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_emergency_access_user_id"))
        batch_op.drop_index(batch_op.f("ix_emergency_access_clinic_id"))

    op.drop_table("emergency_access")
    with op.batch_alter_table("clinical_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinical_note_clinic_id"))
        batch_op.drop_index(batch_op.f("ix_clinical_note_client_id"))

    op.drop_table("clinical_note")
    with op.batch_alter_table("client", schema=None) as batch_op:
        batch_op.drop_index("ix_client_clinic_preferred")
        batch_op.drop_index("ix_client_clinic_phone")
        batch_op.drop_index("ix_client_clinic_last")
        batch_op.drop_index(batch_op.f("ix_client_clinic_id"))
        batch_op.drop_index("ix_client_clinic_first")
        batch_op.drop_index("ix_client_clinic_email")

    op.drop_table("client")
    with op.batch_alter_table("clinic_data_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clinic_data_key_clinic_id"))

    op.drop_table("clinic_data_key")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_clinic_id"))
        batch_op.drop_index("ix_audit_event_clinic_client_at")
        batch_op.drop_index(batch_op.f("ix_audit_event_client_id"))

    op.drop_table("audit_event")
    with op.batch_alter_table("audit_chain", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_chain_clinic_id"))

    op.drop_table("audit_chain")
