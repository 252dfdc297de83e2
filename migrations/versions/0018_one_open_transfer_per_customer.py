"""one open transfer request per customer: the open_transfer table

A customer held by a pending or approved request has one row here, keyed by the customer, so
two simultaneous applications for one customer cannot both commit (the check-then-insert in
the service let four through).

Existing data: every customer in an open request gets its row, naming the oldest such request.
Customers already in more than one open request (the race this closes) keep those requests
open; the newer ones hold no row and end as usual.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 18:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('open_transfer',
                    sa.Column('customer_id', sa.Integer(), autoincrement=False, nullable=False),
                    sa.Column('transfer_id', sa.Integer(), nullable=False),
                    sa.ForeignKeyConstraint(['transfer_id'], ['transfer_request.id'],
                                            ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('customer_id'))
    with op.batch_alter_table('open_transfer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_open_transfer_transfer_id'), ['transfer_id'],
                              unique=False)
    op.execute(
        "INSERT INTO open_transfer (customer_id, transfer_id) "
        "SELECT i.customer_id, MIN(r.id) FROM transfer_item i "
        "JOIN transfer_request r ON r.id = i.transfer_id "
        "WHERE r.status IN ('pending', 'approved') GROUP BY i.customer_id")


def downgrade():
    with op.batch_alter_table('open_transfer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_open_transfer_transfer_id'))
    op.drop_table('open_transfer')
