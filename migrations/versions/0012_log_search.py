"""log search and filters: the event's subject id (backfilled from its payload), indexes for the event type
filter, and the headers of each attempt

Revision ID: 0012_log_search
Revises: 0010_replays_and_secret_overlap
Create Date: 2026-11-29 08:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_log_search'
down_revision = '0010_replays_and_secret_overlap'
branch_labels = None
depends_on = None

# What an event is about, by its type's first word (asset.addToFolder: the asset).
SUBJECT_KEYS = (('asset.%', 'assetId'), ('folder.%', 'folderId'), ('user.%', 'targetUserId'))


def _backfill_subjects():
    dialect = op.get_bind().dialect.name
    for pattern, key in SUBJECT_KEYS:
        if dialect == 'postgresql':
            value = f"(payload->>'{key}')::bigint"
            present = f"(payload->>'{key}') ~ '^[0-9]+$'"
        else:
            value = f"json_extract(payload, '$.{key}')"
            present = f"json_type(payload, '$.{key}') = 'integer'"
        op.execute(f"UPDATE events SET subject_id = {value} WHERE event_type LIKE '{pattern}' AND {present}")


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject_id', sa.BigInteger(), nullable=True))
    _backfill_subjects()
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_subject', ['subject_id'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_webhook_type_id', ['webhook_id', 'event_type', 'id'], unique=False)
        batch_op.create_index('ix_messages_type_id', ['event_type', 'id'], unique=False)
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_headers', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('response_headers', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_column('response_headers')
        batch_op.drop_column('request_headers')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_type_id')
        batch_op.drop_index('ix_messages_webhook_type_id')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_subject')
        batch_op.drop_column('subject_id')
