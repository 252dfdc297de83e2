"""dedupe matcher's blocking entries: customer_match_key

One row per (block, customer) of app.services.match_keys — the blocking keys of the matcher
(app.services.matching) with the customer's position in each block — so the entry check and
the import read the candidates the batch scan pairs, by one range read per block. Existing
customers get theirs here, in id batches.

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('customer_match_key',
                    sa.Column('block', sa.String(length=120), nullable=False),
                    sa.Column('sort_key', sa.String(length=60).with_variant(
                        sa.String(length=60, collation='C'), 'postgresql'), nullable=False),
                    sa.Column('customer_id', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('block', 'sort_key', 'customer_id'))
    with op.batch_alter_table('customer_match_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_match_key_customer_id'),
                              ['customer_id'], unique=False)
    from app.services.match_keys import rebuild_all

    rebuild_all(op.get_bind())


def downgrade():
    with op.batch_alter_table('customer_match_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_match_key_customer_id'))
    op.drop_table('customer_match_key')
