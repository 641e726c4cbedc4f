"""owed notifications: the warning and Disabled emails, stored with the delivery that decided them

Revision ID: 0013_owed_notifications
Revises: 0011_token_scopes_and_audit
Create Date: 2026-11-29 13:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_owed_notifications'
down_revision = '0011_token_scopes_and_audit'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('owed_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('next_enqueue_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_owed_notifications_message_id_messages'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_owed_notifications_webhook_id_webhooks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_owed_notifications'))
    )
    with op.batch_alter_table('owed_notifications', schema=None) as batch_op:
        batch_op.create_index('ix_owed_notifications_due', ['finished_at', 'next_enqueue_at'], unique=False)


def downgrade():
    with op.batch_alter_table('owed_notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_owed_notifications_due')
    op.drop_table('owed_notifications')
