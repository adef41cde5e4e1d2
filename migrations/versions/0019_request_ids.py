"""Messages and webhook events keep the id of the request that caused them, sent on when delivered.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 12:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("outbox_message", "webhook_event"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    for table in ("outbox_message", "webhook_event"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("request_id")
