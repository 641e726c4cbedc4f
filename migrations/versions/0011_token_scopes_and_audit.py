"""API token scopes (existing tokens keep events:write) and the audit log of management calls

Revision ID: 0011_token_scopes_and_audit
Revises: 0012_log_search
Create Date: 2026-12-02 09:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_token_scopes_and_audit'
down_revision = '0012_log_search'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        # The server default gives every existing token exactly the scope it had: posting events.
        batch_op.add_column(sa.Column('scopes', sa.String(length=255), server_default='events:write',
                                      nullable=False))
    op.create_table('api_audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('token_name', sa.String(length=255), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=2048), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_api_audit_log_token_id_api_tokens'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_audit_log'))
    )
    with op.batch_alter_table('api_audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_api_audit_log_created', ['created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('api_audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_api_audit_log_created')
    op.drop_table('api_audit_log')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scopes')
