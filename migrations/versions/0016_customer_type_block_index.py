"""customer (customer_type, name_block) index for the fuzzy name candidates

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 01:20:00

"""
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_type_block', 'customer', ['customer_type', 'name_block'],
                    unique=False, postgresql_include=['name_core', 'name_region', 'city'])


def downgrade():
    op.drop_index('ix_customer_type_block', table_name='customer')
