"""dashboard aggregates: stat_daily (daily counts per owner and kind that the heavy charts
sum) and stat_watermark (the id of each source table counted so far)

Revision ID: 0046
Revises: 0044
Create Date: 2026-12-01 08:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0046'
down_revision = '0044'
branch_labels = None
depends_on = None

SOURCES = ("ownership_event", "follow_up", "deal", "customer")


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


def downgrade():
    op.drop_table('stat_watermark')
    op.drop_table('stat_daily')
