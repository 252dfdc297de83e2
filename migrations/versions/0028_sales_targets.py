"""sales targets (业绩目标)

sales_target: one user or one department (CHECK exactly one), a period (month or quarter,
by its first day), a target won amount and / or a target count of new customers (each >= 0,
at least one), who set it. One target per holder and period: two unique indexes, one per kind
of holder (NULLs are distinct on both databases, so each binds only its own rows).

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-30 07:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sales_target',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('period_kind', sa.String(length=8), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('won_amount', sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column('new_customers', sa.Integer(), nullable=True),
        sa.Column('set_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('(user_id IS NULL) <> (department_id IS NULL)',
                           name='ck_sales_target_user_xor_department'),
        sa.CheckConstraint("period_kind in ('month', 'quarter')", name='ck_sales_target_kind'),
        sa.CheckConstraint('won_amount IS NULL OR won_amount >= 0',
                           name='ck_sales_target_won_amount'),
        sa.CheckConstraint('new_customers IS NULL OR new_customers >= 0',
                           name='ck_sales_target_new_customers'),
        sa.CheckConstraint('won_amount IS NOT NULL OR new_customers IS NOT NULL',
                           name='ck_sales_target_some_measure'),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['department_id'], ['department.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['set_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_sales_target_user_period', 'sales_target',
                    ['user_id', 'period_kind', 'period_start'], unique=True)
    op.create_index('uq_sales_target_department_period', 'sales_target',
                    ['department_id', 'period_kind', 'period_start'], unique=True)
    op.create_index('ix_sales_target_period_id', 'sales_target', ['period_start', 'id'],
                    unique=False)
    op.create_index('ix_sales_target_set_by_id', 'sales_target', ['set_by_id'], unique=False)


def downgrade():
    op.drop_index('ix_sales_target_set_by_id', table_name='sales_target')
    op.drop_index('ix_sales_target_period_id', table_name='sales_target')
    op.drop_index('uq_sales_target_department_period', table_name='sales_target')
    op.drop_index('uq_sales_target_user_period', table_name='sales_target')
    op.drop_table('sales_target')
