"""segment policies: reclaim periods and warning days by grade, category, product line,
source and record type

policy gains optional segment conditions and segment_key (the conditions in one canonical
string, '' without any); one policy per target and segment, so the three partial unique
indexes now include segment_key. Plain columns and indexes only: SQLite-safe, no table
rebuild.

Revision ID: 0029
Revises: 0030
Create Date: 2026-11-30 07:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0029'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('policy', sa.Column('segment_record_type', sa.String(length=16), nullable=True))
    op.add_column('policy', sa.Column('segment_grade', sa.String(length=1), nullable=True))
    op.add_column('policy', sa.Column('segment_category', sa.String(length=16), nullable=True))
    op.add_column('policy', sa.Column('segment_product_line', sa.String(length=100),
                                      nullable=True))
    op.add_column('policy', sa.Column('segment_source', sa.String(length=100), nullable=True))
    op.add_column('policy', sa.Column('segment_key', sa.String(length=400), nullable=False,
                                      server_default=''))
    op.drop_index('uq_policy_global', table_name='policy')
    op.drop_index('uq_policy_department', table_name='policy')
    op.drop_index('uq_policy_user', table_name='policy')
    op.create_index('uq_policy_global_segment', 'policy', ['scope', 'segment_key'], unique=True,
                    sqlite_where=sa.text("scope = 'global'"),
                    postgresql_where=sa.text("scope = 'global'"))
    op.create_index('uq_policy_department_segment', 'policy', ['department_id', 'segment_key'],
                    unique=True, sqlite_where=sa.text('department_id IS NOT NULL'),
                    postgresql_where=sa.text('department_id IS NOT NULL'))
    op.create_index('uq_policy_user_segment', 'policy', ['user_id', 'segment_key'], unique=True,
                    sqlite_where=sa.text('user_id IS NOT NULL'),
                    postgresql_where=sa.text('user_id IS NOT NULL'))


def downgrade():
    # Segment policies have no place in the old one-per-target shape.
    op.execute("DELETE FROM policy WHERE segment_key <> ''")
    op.drop_index('uq_policy_user_segment', table_name='policy')
    op.drop_index('uq_policy_department_segment', table_name='policy')
    op.drop_index('uq_policy_global_segment', table_name='policy')
    op.create_index('uq_policy_global', 'policy', ['scope'], unique=True,
                    sqlite_where=sa.text("scope = 'global'"),
                    postgresql_where=sa.text("scope = 'global'"))
    op.create_index('uq_policy_department', 'policy', ['department_id'], unique=True,
                    sqlite_where=sa.text('department_id IS NOT NULL'),
                    postgresql_where=sa.text('department_id IS NOT NULL'))
    op.create_index('uq_policy_user', 'policy', ['user_id'], unique=True,
                    sqlite_where=sa.text('user_id IS NOT NULL'),
                    postgresql_where=sa.text('user_id IS NOT NULL'))
    # Plain DROP COLUMN (SQLite >= 3.35): no rebuild of a table other rows point at.
    for column in ('segment_key', 'segment_source', 'segment_product_line', 'segment_category',
                   'segment_grade', 'segment_record_type'):
        op.drop_column('policy', column)
