"""The platform's fee on each of a clinic's charges, in basis points, set by the operator.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 07:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("platform_fee_bps", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("platform_fee_bps")
