"""failure streaks: when a webhook's current run of failed deliveries began, and when it was warned about it

Revision ID: 0009_failure_streaks
Revises: 0008_user_sessions
Create Date: 2026-12-01 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_failure_streaks'
down_revision = '0008_user_sessions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure_streak_started_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('warned_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('warned_at')
        batch_op.drop_column('failure_streak_started_at')
