"""value_proposal: the value re-evaluation's proposals (价值复评建议) — a customer whose manual
grade the deals contradict, a grade-A customer whose owner is at the cap or has not followed
it up, a silent valuable customer for a re-activation campaign — open until a manager accepts
or dismisses them; one open proposal per customer and kind (a partial unique index).

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-01 03:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0044'
down_revision = '0043'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'value_proposal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=10), server_default='open', nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('grade', sa.String(length=1), nullable=True),
        sa.Column('proposed_grade', sa.String(length=1), nullable=True),
        sa.Column('proposed_owner_id', sa.Integer(), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decision_note', sa.Text(), nullable=True),
        sa.Column('transfer_id', sa.Integer(), nullable=True),
        sa.Column('campaign_id', sa.Integer(), nullable=True),
        sa.CheckConstraint("kind in ('grade_review', 'grade_a_overloaded', 'grade_a_neglected',"
                           " 'reactivate')", name='ck_value_proposal_kind'),
        sa.CheckConstraint("status in ('open', 'accepted', 'dismissed', 'expired')",
                           name='ck_value_proposal_status'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['proposed_owner_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['decided_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['transfer_id'], ['transfer_request.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('uq_value_proposal_open', 'value_proposal', ['customer_id', 'kind'],
                    unique=True, sqlite_where=sa.text("status = 'open'"),
                    postgresql_where=sa.text("status = 'open'"))
    op.create_index('ix_value_proposal_status_id', 'value_proposal', ['status', 'id'])


def downgrade():
    op.drop_index('ix_value_proposal_status_id', table_name='value_proposal')
    op.drop_index('uq_value_proposal_open', table_name='value_proposal')
    op.drop_table('value_proposal')
