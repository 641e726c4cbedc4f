"""owed notifications: the token of the one queue entry that may send each, so a replaced entry sends nothing

Revision ID: 0015_notification_queue_tokens
Revises: 0014_batch_event_subjects
Create Date: 2026-11-29 16:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_notification_queue_tokens'
down_revision = '0014_batch_event_subjects'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('owed_notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queue_token', sa.String(length=36), nullable=True))


def downgrade():
    with op.batch_alter_table('owed_notifications', schema=None) as batch_op:
        batch_op.drop_column('queue_token')
