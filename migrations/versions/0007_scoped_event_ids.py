"""eventId unique per sender (scope) instead of globally, and a digest of each event's validated input

Revision ID: 0007_scoped_event_ids
Revises: 0006_unique_attempt_numbers
Create Date: 2026-11-29 06:00:00

Events stored before this revision get the scope "legacy": nothing records which token (or the CLI)
sent them, and giving them a live scope could make a different sender's new event look like a repeat
of theirs and be dropped. The cost is that a repeat sent across the upgrade of an event accepted just
before it is stored again (its messages carry the same eventId, so receivers can still tell).

Downgrading fails while two senders' events share an eventId.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_scoped_event_ids'
down_revision = '0006_unique_attempt_numbers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=32), server_default='legacy', nullable=False))
        batch_op.add_column(sa.Column('body_digest', sa.String(length=64), nullable=True))
        batch_op.drop_constraint('uq_events_event_uuid', type_='unique')
        batch_op.create_unique_constraint('uq_events_event_uuid_scope', ['event_uuid', 'scope'])


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_events_event_uuid_scope', type_='unique')
        batch_op.create_unique_constraint('uq_events_event_uuid', ['event_uuid'])
        batch_op.drop_column('body_digest')
        batch_op.drop_column('scope')
