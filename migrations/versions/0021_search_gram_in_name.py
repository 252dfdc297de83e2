"""search keys: which grams come from the customer's own name (customer_search_gram.in_name)

A two-character "name contains" (FAB's filter on the customer's name) is then answered by a
partial index alone; before, each of a common gram's candidates (科技: ~5 % of customers) had
its folded text checked, a scan of customer_search_text. Existing keys are marked from the
folded names in customer_search_text in one set-based UPDATE (no re-folding needed).

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30 04:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def mark_name_grams(bind):
    """in_name for every key whose gram is in the customer's folded name (tested on both
    databases in tests/test_search.py)."""
    # The folded name holds letters, digits and CJK only, so the gram is a plain substring.
    position = ('strpos(t.name, customer_search_gram.gram)' if bind.dialect.name == 'postgresql'
                else 'instr(t.name, customer_search_gram.gram)')
    bind.execute(sa.text(
        'UPDATE customer_search_gram SET in_name = true WHERE EXISTS ('
        ' SELECT 1 FROM customer_search_text t'
        ' WHERE t.customer_id = customer_search_gram.customer_id'
        f' AND {position} > 0)'))


def upgrade():
    with op.batch_alter_table('customer_search_gram', schema=None) as batch_op:
        batch_op.add_column(sa.Column('in_name', sa.Boolean(), nullable=False,
                                      server_default=sa.text('false')))
    mark_name_grams(op.get_bind())
    op.create_index('ix_customer_search_gram_name', 'customer_search_gram',
                    ['gram', 'customer_id'], unique=False,
                    sqlite_where=sa.text('in_name = 1'), postgresql_where=sa.text('in_name'))


def downgrade():
    op.drop_index('ix_customer_search_gram_name', table_name='customer_search_gram')
    with op.batch_alter_table('customer_search_gram', schema=None) as batch_op:
        batch_op.drop_column('in_name')
