"""A clinic may choose the locale its money and dates are written in, in its tenants/ file.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 12:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic") as batch:
        batch.add_column(sa.Column("locale", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clinic") as batch:
        batch.drop_column("locale")
