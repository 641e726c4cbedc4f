"""the subject id of events stored by the batch intake, which left it empty (the log's search missed them)

Revision ID: 0014_batch_event_subjects
Revises: 0013_owed_notifications
Create Date: 2026-11-29 15:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_batch_event_subjects'
down_revision = '0013_owed_notifications'
branch_labels = None
depends_on = None

# As migration 0012: what an event is about, by its type's first word (asset.addToFolder: the asset).
SUBJECT_KEYS = (('asset.%', 'assetId'), ('folder.%', 'folderId'), ('user.%', 'targetUserId'))


def upgrade():
    dialect = op.get_bind().dialect.name
    for pattern, key in SUBJECT_KEYS:
        if dialect == 'postgresql':
            value = f"(payload->>'{key}')::bigint"
            present = f"(payload->>'{key}') ~ '^[0-9]+$'"
        else:
            value = f"json_extract(payload, '$.{key}')"
            present = f"json_type(payload, '$.{key}') = 'integer'"
        op.execute(f"UPDATE events SET subject_id = {value} "
                   f"WHERE subject_id IS NULL AND event_type LIKE '{pattern}' AND {present}")


def downgrade():
    pass  # the ids stay: they are what the events are about
