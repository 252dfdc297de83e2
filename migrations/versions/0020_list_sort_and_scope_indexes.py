"""indexes for keyset list paging: (sort column, id) per sortable list column, and the
owner's / pool's customer ids for scoped lists

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 01:30:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_customer_name_id', 'customer', ['name', 'id']),
    ('ix_customer_created_id', 'customer', ['created_at', 'id']),
    ('ix_contact_name_id', 'contact', ['name', 'id']),
    ('ix_follow_up_happened_id', 'follow_up', ['happened_at', 'id']),
    ('ix_deal_won_id', 'deal', ['won_on', 'id']),
    ('ix_care_message_date_id', 'care_message', ['occasion_date', 'id']),
    ('ix_customer_ownership_owner_customer', 'customer_ownership', ['owner_id', 'customer_id']),
    ('ix_customer_ownership_pool_customer', 'customer_ownership', ['pool_id', 'customer_id']),
    ('ix_notification_user_id_id', 'notification', ['user_id', 'id']),
    ('ix_audit_log_action_id', 'audit_log', ['action', 'id']),
    ('ix_dedupe_cluster_open_order', 'dedupe_cluster', ['status', 'best_score', 'id']),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    unread = sa.text('read_at IS NULL')
    op.create_index('ix_notification_unread', 'notification', ['user_id'], unique=False,
                    sqlite_where=unread, postgresql_where=unread)


def downgrade():
    op.drop_index('ix_notification_unread', table_name='notification')

    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
