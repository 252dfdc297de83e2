"""dedupe_model: the matching models `flask crm dedupe-train` estimates on a deployment's own
customers (m/u per field and level, the link and review thresholds); at most one active (a
partial unique index), none active = the shipped default model.

Revision ID: 0041
Revises: 0040
Create Date: 2026-11-30 23:31:01

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0041'
down_revision = '0040'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'dedupe_model',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model', sa.Text(), nullable=False),
        sa.Column('link_threshold', sa.Float(), nullable=False),
        sa.Column('review_threshold', sa.Float(), nullable=False),
        sa.Column('pairs_used', sa.Integer(), nullable=False),
        sa.Column('trained_at', sa.DateTime(), nullable=False),
        sa.Column('trained_by_id', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), server_default='0', nullable=False),
        sa.ForeignKeyConstraint(['trained_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('dedupe_model', schema=None) as batch_op:
        batch_op.create_index('uq_dedupe_model_active', ['active'], unique=True,
                              sqlite_where=sa.text('active'),
                              postgresql_where=sa.text('active'))


def downgrade():
    with op.batch_alter_table('dedupe_model', schema=None) as batch_op:
        batch_op.drop_index('uq_dedupe_model_active', sqlite_where=sa.text('active'),
                            postgresql_where=sa.text('active'))
    op.drop_table('dedupe_model')
