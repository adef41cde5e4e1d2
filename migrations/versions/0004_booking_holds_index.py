"""An index for finding lapsed holds without scanning booking history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:55:00

"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.create_index(
            "ix_booking_holds",
            ["clinic_id", "status", "provider_id", "hold_expires_at"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("booking", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_holds")
