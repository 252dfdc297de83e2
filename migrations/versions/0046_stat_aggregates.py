"""dashboard aggregates: stat_daily (daily counts per owner and kind that the heavy charts
sum) and stat_watermark (the id of each source table counted so far); a partial index of the
acquisitions in the event log (customer, owner, time) for the conversion chart

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-01 08:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0046'
down_revision = '0045'
branch_labels = None
depends_on = None

SOURCES = ("ownership_event", "follow_up", "deal", "customer")
ACQUIRED_KINDS_SQL = "kind IN ('created', 'claimed', 'assigned', 'rule-assigned')"


def upgrade():
    op.create_table(
        'stat_daily',
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('peer_id', sa.Integer(), nullable=False),
        sa.Column('since', sa.Date(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'owner_id', 'day', 'peer_id', 'since'),
    )
    table = op.create_table(
        'stat_watermark',
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('last_id', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=True),
        sa.Column('rebuilt_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('source'),
    )
    # One row per source from the start: a refresh locks its row, never inserts it.
    op.bulk_insert(table, [{"source": s, "last_id": 0} for s in SOURCES])
    acquired = sa.text(ACQUIRED_KINDS_SQL)
    op.create_index('ix_ownership_event_acquired', 'ownership_event',
                    ['customer_id', 'to_owner_id', 'created_at'],
                    postgresql_where=acquired, sqlite_where=acquired)


def downgrade():
    op.drop_index('ix_ownership_event_acquired', table_name='ownership_event')
    op.drop_table('stat_watermark')
    op.drop_table('stat_daily')
