"""Processor notices say what a deletion asks of each processor and what came of it.

Each notice names the processor as staff read it, the account the client's
data lives in (the clinic's Stripe account), the registered data recipient it
goes to, the action (delete, keep, notify, record), the outcome, and when the
platform last called out. The status column is text, so its new values
(deleted, kept, failed, recorded) need no change.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processor_notice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("account", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("data_recipient_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("action", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_processor_notice_data_recipient_id_data_recipient"),
            "data_recipient",
            ["data_recipient_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("processor_notice", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_processor_notice_data_recipient_id_data_recipient"), type_="foreignkey"
        )
        batch_op.drop_column("attempted_at")
        batch_op.drop_column("outcome")
        batch_op.drop_column("action")
        batch_op.drop_column("data_recipient_id")
        batch_op.drop_column("account")
        batch_op.drop_column("name")
