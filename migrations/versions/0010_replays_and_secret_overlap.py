"""replays of missed events and Send again; a reset secret's overlap

Revision ID: 0010_replays_and_secret_overlap
Revises: 0009_failure_streaks
Create Date: 2026-11-29 09:00:00

- webhooks: the replaced secret (encrypted like the current one) and when it stops being valid.
- replays: one row per "Replay missed events" (its window, who asked, where it got to).
- messages: what a replay repeats (replay_of_id/uuid) and which replay made it; at most one pending
  (Queued or Scheduled retry) message per webhook and event, so a replay never queues a second copy.
- events: an index on created_at (a replay's window; the prune's cutoff).
- metric_counters: webhooks_replayed_total, kept where every web process reads it.

Upgrading fails if a webhook already has two pending messages for one event (the pipeline never makes them).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_replays_and_secret_overlap'
down_revision = '0009_failure_streaks'
branch_labels = None
depends_on = None

PENDING = sa.text("status IN ('queued', 'scheduled_retry')")


def upgrade():
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_secret_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('previous_secret_expires_at', sa.DateTime(), nullable=True))

    op.create_table('replays',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('webhook_id', sa.Integer(), nullable=False),
    sa.Column('since', sa.DateTime(), nullable=False),
    sa.Column('requested_by', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('cursor_event_id', sa.Integer(), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('messages_created', sa.Integer(), nullable=False),
    sa.Column('stop_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_replays_webhook_id_webhooks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_replays'))
    )
    with op.batch_alter_table('replays', schema=None) as batch_op:
        batch_op.create_index('ix_replays_webhook', ['webhook_id', 'id'], unique=False)
        batch_op.create_index('ix_replays_status', ['status'], unique=False)

    op.create_table('metric_counters',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_metric_counters'))
    )

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replay_of_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('replay_of_uuid', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('replay_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_messages_replay_of_id_messages'), 'messages', ['replay_of_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_messages_replay_id_replays'), 'replays', ['replay_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_index('uq_messages_pending_webhook_event', ['webhook_id', 'event_id'], unique=True,
                              postgresql_where=PENDING, sqlite_where=PENDING)
        batch_op.create_index('ix_messages_replay_of', ['replay_of_id'], unique=False,
                              postgresql_where=sa.text('replay_of_id IS NOT NULL'),
                              sqlite_where=sa.text('replay_of_id IS NOT NULL'))
        batch_op.create_index('ix_messages_replay', ['replay_id'], unique=False,
                              postgresql_where=sa.text('replay_id IS NOT NULL'),
                              sqlite_where=sa.text('replay_id IS NOT NULL'))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_created', ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_created')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_replay')
        batch_op.drop_index('ix_messages_replay_of')
        batch_op.drop_index('uq_messages_pending_webhook_event')
        batch_op.drop_constraint(batch_op.f('fk_messages_replay_id_replays'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_messages_replay_of_id_messages'), type_='foreignkey')
        batch_op.drop_column('replay_id')
        batch_op.drop_column('replay_of_uuid')
        batch_op.drop_column('replay_of_id')

    op.drop_table('metric_counters')
    with op.batch_alter_table('replays', schema=None) as batch_op:
        batch_op.drop_index('ix_replays_status')
        batch_op.drop_index('ix_replays_webhook')
    op.drop_table('replays')

    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('previous_secret_expires_at')
        batch_op.drop_column('previous_secret_encrypted')
