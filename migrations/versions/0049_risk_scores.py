"""the churn-risk scores of every held customer stored by the nightly run (the riskiest of
each owner per model), so the workbench scores a few candidates instead of thousands; the
owner's held-customers index carries what the due list under segment policies reads
(PostgreSQL)

Revision ID: 0049
Revises: 0048
Create Date: 2026-12-01 22:10:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0049'
down_revision = '0048'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('risk_model') as batch:
        batch.add_column(sa.Column('scored_at', sa.DateTime(), nullable=True))
    op.create_table(
        'risk_score',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('probability', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['risk_model.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('model_id', 'owner_id', 'customer_id'))
    op.create_index('ix_risk_score_customer_id', 'risk_score', ['customer_id'])
    # Not through batch mode: on SQLite that would rebuild the table without the owner
    # tally's triggers (migration 0047).
    op.drop_index('ix_customer_ownership_owner_counts', table_name='customer_ownership')
    op.create_index('ix_customer_ownership_owner_counts', 'customer_ownership',
                    ['owner_id', 'locked', 'won', 'last_followup_at'],
                    postgresql_include=['customer_id', 'acquired_at', 'grade', 'category'])


def downgrade():
    op.drop_index('ix_customer_ownership_owner_counts', table_name='customer_ownership')
    op.create_index('ix_customer_ownership_owner_counts', 'customer_ownership',
                    ['owner_id', 'locked', 'won', 'last_followup_at'])
    op.drop_index('ix_risk_score_customer_id', table_name='risk_score')
    op.drop_table('risk_score')
    with op.batch_alter_table('risk_model') as batch:
        batch.drop_column('scored_at')
