"""audit_log (object_type, object_id, action, created_at): an API key's uses in the last
minute read as a range, so the rate check of a busy telephony key stays constant.

Revision ID: 0040
Revises: 0039
Create Date: 2026-11-30 21:45:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0040'
down_revision = '0039'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_object_action_created',
                              ['object_type', 'object_id', 'action', 'created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_object_action_created')
