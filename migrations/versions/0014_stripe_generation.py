"""Which of a clinic's Stripe accounts is current, and the ones it had before.

The clinic's connected account is created with an idempotency key naming the
clinic and a generation number, so a retry makes the same account, and after
the owner disconnects one (the number goes up) onboarding makes a new one. A
disconnected account is remembered on its clinic, so Stripe's events about
payments made on it (a refund, a dispute) still reach the clinic.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 07:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stripe_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("former_stripe_accounts", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clinic", schema=None) as batch_op:
        batch_op.drop_column("former_stripe_accounts")
        batch_op.drop_column("stripe_generation")
