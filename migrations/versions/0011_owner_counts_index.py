"""owner counts index

The cap count of every claim and assignment (an owner's unlocked, not-won customers) becomes
an index-only scan: (owner_id, locked, won) replaces the index on owner_id alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 20:20:00

"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_ownership_owner_counts', 'customer_ownership',
                    ['owner_id', 'locked', 'won'], unique=False)
    op.drop_index('ix_customer_ownership_owner_id', table_name='customer_ownership')


def downgrade():
    op.create_index('ix_customer_ownership_owner_id', 'customer_ownership', ['owner_id'],
                    unique=False)
    op.drop_index('ix_customer_ownership_owner_counts', table_name='customer_ownership')
