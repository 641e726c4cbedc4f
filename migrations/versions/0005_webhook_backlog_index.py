"""an index for claiming one webhook's due messages as a batch

Revision ID: 0005_webhook_backlog_index
Revises: 0004_hourly_outcome_indexes
Create Date: 2026-11-28 23:50:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005_webhook_backlog_index'
down_revision = '0004_hourly_outcome_indexes'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_webhook_status_due', ['webhook_id', 'status', 'next_attempt_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_webhook_status_due')
