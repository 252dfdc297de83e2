"""quick search keys: customer_search_gram and customer_search_text

Every two consecutive characters of a customer's folded name and of its contacts' names
(customer_search_gram, keyed by gram then customer), and the folded names themselves
(customer_search_text), for app.services.search. Existing customers get theirs here, in id
batches (folding needs the normaliser: NFKC, traditional to simplified).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30 01:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('customer_search_gram',
                    sa.Column('gram', sa.String(length=2), nullable=False),
                    sa.Column('customer_id', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('gram', 'customer_id'))
    with op.batch_alter_table('customer_search_gram', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_search_gram_customer_id'),
                              ['customer_id'], unique=False)
    op.create_table('customer_search_text',
                    sa.Column('customer_id', sa.Integer(), autoincrement=False,
                              nullable=False),
                    sa.Column('name', sa.Text(), nullable=False),
                    sa.Column('contacts', sa.Text(), nullable=False),
                    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('customer_id'))
    from app.services.search import rebuild_all

    rebuild_all(op.get_bind())


def downgrade():
    op.drop_table('customer_search_text')
    with op.batch_alter_table('customer_search_gram', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_search_gram_customer_id'))
    op.drop_table('customer_search_gram')
