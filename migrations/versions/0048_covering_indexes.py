"""read from indexes alone: the acquisitions index carries the customer (a count of
distinct customers per rep and period), the deals' user index the date and amount, the
follow-ups' customer index the time (the churn-risk panel's history)

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-01 19:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0048'
down_revision = '0047'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_ownership_event_to_owner_kind_time', table_name='ownership_event')
    op.create_index('ix_ownership_event_to_owner_kind_time', 'ownership_event',
                    ['to_owner_id', 'kind', 'created_at', 'customer_id'])
    op.drop_index('ix_deal_user_id', table_name='deal')
    op.create_index('ix_deal_user_won', 'deal', ['user_id', 'won_on', 'amount'])
    op.drop_index('ix_follow_up_customer_id', table_name='follow_up')
    op.create_index('ix_follow_up_customer_happened', 'follow_up', ['customer_id', 'happened_at'])


def downgrade():
    op.drop_index('ix_follow_up_customer_happened', table_name='follow_up')
    op.create_index('ix_follow_up_customer_id', 'follow_up', ['customer_id'])
    op.drop_index('ix_deal_user_won', table_name='deal')
    op.create_index('ix_deal_user_id', 'deal', ['user_id'])
    op.drop_index('ix_ownership_event_to_owner_kind_time', table_name='ownership_event')
    op.create_index('ix_ownership_event_to_owner_kind_time', 'ownership_event',
                    ['to_owner_id', 'kind', 'created_at'])
