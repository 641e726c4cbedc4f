"""one attempt row per message and number, so recording an attempt again is a no-op

Revision ID: 0006_unique_attempt_numbers
Revises: 0005_webhook_backlog_index
Create Date: 2026-11-29 05:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006_unique_attempt_numbers'
down_revision = '0005_webhook_backlog_index'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_message')
        batch_op.create_index('ix_attempts_message', ['message_id', 'number'], unique=True)


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_message')
        batch_op.create_index('ix_attempts_message', ['message_id', 'number'], unique=False)
