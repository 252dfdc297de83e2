"""the workbench's owner indexes carry the customer in their order: the follow-up reminders
("due today": the first customers by id among the owner's due today; overdue: by date,
then id) read the index in order and stop at the page, instead of fetching and sorting
every due row (1,700 for a rep at 1M customers on PostgreSQL); a tab of my customers pages
by (acquired, id) from an index range, at any depth

Revision ID: 0050
Revises: 0049
Create Date: 2026-12-02 02:45:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0050'
down_revision = '0049'
branch_labels = None
depends_on = None


# Not through batch mode: on SQLite that would rebuild the table without the owner tally's
# triggers (migration 0047).
REPLACED = (('next_contact', 'next_contact_on'), ('acquired', 'acquired_at'))


def upgrade():
    for name, column in REPLACED:
        op.create_index(f'ix_customer_ownership_owner_{name}_id', 'customer_ownership',
                        ['owner_id', column, 'customer_id'])
        op.drop_index(f'ix_customer_ownership_owner_{name}', table_name='customer_ownership')


def downgrade():
    for name, column in REPLACED:
        op.create_index(f'ix_customer_ownership_owner_{name}', 'customer_ownership',
                        ['owner_id', column])
        op.drop_index(f'ix_customer_ownership_owner_{name}_id',
                      table_name='customer_ownership')
