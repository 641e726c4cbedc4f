"""covering indexes for the hourly outcomes chart

Revision ID: 0004_hourly_outcome_indexes
Revises: 0003_activity_log
Create Date: 2026-11-28 21:05:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004_hourly_outcome_indexes'
down_revision = '0003_activity_log'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_webhook_started_outcome', ['webhook_id', 'started_at', 'succeeded'],
                              unique=False)
        batch_op.create_index('ix_attempts_started_outcome', ['started_at', 'succeeded'], unique=False)
        batch_op.drop_index('ix_attempts_webhook_started')
        batch_op.drop_index('ix_attempts_started')


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index('ix_attempts_started', ['started_at'], unique=False)
        batch_op.create_index('ix_attempts_webhook_started', ['webhook_id', 'started_at'], unique=False)
        batch_op.drop_index('ix_attempts_started_outcome')
        batch_op.drop_index('ix_attempts_webhook_started_outcome')
