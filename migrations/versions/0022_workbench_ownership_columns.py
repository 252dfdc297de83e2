"""workbench at scale: customer_ownership.next_contact_on (the latest follow-up's ask) and
the owner's indexes for the workbench (acquired order, follow-ups due, tab counts)

The workbench's reminders read the latest follow-up of each of the rep's customers: 380 ms for
a rep holding 35,000 customers at 1M. The latest follow-up's next contact date now sits on the
ownership row (set by app.services.followups, recomputed by merges), filled here from the
follow-ups already logged.

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-30 04:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

# The latest follow-up of the row's customer (by id: the last one logged), as in
# app.services.followups.refresh_next_contact.
LATEST = ('(SELECT f.next_contact_on FROM follow_up f'
          ' WHERE f.customer_id = customer_ownership.customer_id ORDER BY f.id DESC LIMIT 1)')


def upgrade():
    with op.batch_alter_table('customer_ownership', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_contact_on', sa.Date(), nullable=True))
    op.execute(sa.text(f'UPDATE customer_ownership SET next_contact_on = {LATEST}'
                       ' WHERE EXISTS (SELECT 1 FROM follow_up f'
                       ' WHERE f.customer_id = customer_ownership.customer_id'
                       ' AND f.next_contact_on IS NOT NULL)'))
    op.drop_index('ix_customer_ownership_owner_counts', table_name='customer_ownership')
    op.create_index('ix_customer_ownership_owner_counts', 'customer_ownership',
                    ['owner_id', 'locked', 'won', 'last_followup_at'], unique=False)
    op.create_index('ix_customer_ownership_owner_acquired', 'customer_ownership',
                    ['owner_id', 'acquired_at'], unique=False)
    op.create_index('ix_customer_ownership_owner_next_contact', 'customer_ownership',
                    ['owner_id', 'next_contact_on'], unique=False)
    # The reclaim clock, max(acquired, last follow-up), as app.models.ownership.last_touch_of
    # writes it (an expression index serves only that exact expression).
    op.create_index('ix_customer_ownership_owner_touch', 'customer_ownership',
                    ['owner_id', sa.text('(CASE WHEN (last_followup_at > acquired_at) '
                                         'THEN last_followup_at ELSE acquired_at END)')],
                    unique=False)


def downgrade():
    op.drop_index('ix_customer_ownership_owner_touch', table_name='customer_ownership')
    op.drop_index('ix_customer_ownership_owner_next_contact', table_name='customer_ownership')
    op.drop_index('ix_customer_ownership_owner_acquired', table_name='customer_ownership')
    op.drop_index('ix_customer_ownership_owner_counts', table_name='customer_ownership')
    op.create_index('ix_customer_ownership_owner_counts', 'customer_ownership',
                    ['owner_id', 'locked', 'won'], unique=False)
    with op.batch_alter_table('customer_ownership', schema=None) as batch_op:
        batch_op.drop_column('next_contact_on')
