"""fan-outs: a batch's events are stored in the request and their messages made by the worker

Revision ID: 0016_fan_outs
Revises: 0015_notification_queue_tokens
Create Date: 2026-11-29 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016_fan_outs'
down_revision = '0015_notification_queue_tokens'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('fan_outs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_ids', sa.JSON(), nullable=False),
    sa.Column('subscribers', sa.JSON(), nullable=False),
    sa.Column('webhooks_created', sa.JSON(), nullable=False),
    sa.Column('first_event_id', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fan_outs'))
    )
    with op.batch_alter_table('fan_outs', schema=None) as batch_op:
        batch_op.create_index('ix_fan_outs_enqueued', ['enqueued_at'], unique=False)


def downgrade():
    with op.batch_alter_table('fan_outs', schema=None) as batch_op:
        batch_op.drop_index('ix_fan_outs_enqueued')
    op.drop_table('fan_outs')
