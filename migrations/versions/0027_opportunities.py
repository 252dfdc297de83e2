"""opportunities (商机): opportunity_stage (admin-edited stages: probability, position, kind
open / won / lost, protects from reclaim; seeded), opportunity (no owner column: an open one
belongs to its customer's owner; closed ones keep closed_owner_id), and the append-only
opportunity_stage_change history

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-30 07:00:00

"""
import datetime as dt

import sqlalchemy as sa
from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

STAGES = (("初步接洽", 10, "open", False), ("需求确认", 30, "open", False),
          ("方案报价", 60, "open", True), ("商务谈判", 80, "open", True),
          ("赢单", 100, "won", False), ("输单", 0, "lost", False))


def upgrade():
    stage = op.create_table(
        'opportunity_stage',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('probability', sa.SmallInteger(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), server_default='open', nullable=False),
        sa.Column('protects_from_reclaim', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('probability between 0 and 100',
                           name='ck_opportunity_stage_probability'),
        sa.CheckConstraint("kind in ('open', 'won', 'lost')", name='ck_opportunity_stage_kind'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_index('uq_opportunity_stage_closed_kind', 'opportunity_stage', ['kind'],
                    unique=True, sqlite_where=sa.text("kind <> 'open'"),
                    postgresql_where=sa.text("kind <> 'open'"))
    op.create_table(
        'opportunity',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('expected_close_on', sa.Date(), nullable=True),
        sa.Column('product_line', sa.String(length=100), nullable=True),
        sa.Column('stage_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=8), server_default='open', nullable=False),
        sa.Column('loss_reason', sa.String(length=500), nullable=True),
        sa.Column('closed_owner_id', sa.Integer(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('deal_id', sa.Integer(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('amount >= 0', name='ck_opportunity_amount'),
        sa.CheckConstraint("status in ('open', 'won', 'lost')", name='ck_opportunity_status'),
        sa.CheckConstraint("status <> 'lost' or loss_reason is not null",
                           name='ck_opportunity_loss_reason'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['stage_id'], ['opportunity_stage.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['closed_owner_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['deal_id'], ['deal.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_opportunity_customer_status', 'opportunity',
                    ['customer_id', 'status', 'stage_id', 'amount'], unique=False)
    op.create_index('ix_opportunity_closed_owner', 'opportunity',
                    ['closed_owner_id', 'closed_at', 'stage_id', 'amount'], unique=False)
    op.create_index('ix_opportunity_stage_amount', 'opportunity', ['stage_id', 'amount', 'id'],
                    unique=False)
    op.create_table(
        'opportunity_stage_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('opportunity_id', sa.Integer(), nullable=False),
        sa.Column('from_stage_id', sa.Integer(), nullable=True),
        sa.Column('to_stage_id', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_opportunity_stage_change_opp_id', 'opportunity_stage_change',
                    ['opportunity_id', 'id'], unique=False)
    # The default stages (app.services.bootstrap seeds a fresh database the same way).
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    op.bulk_insert(stage, [
        {"name": name, "probability": prob, "position": (i + 1) * 10, "kind": kind,
         "protects_from_reclaim": protects, "created_at": now}
        for i, (name, prob, kind, protects) in enumerate(STAGES)])


def downgrade():
    op.drop_index('ix_opportunity_stage_change_opp_id', table_name='opportunity_stage_change')
    op.drop_table('opportunity_stage_change')
    for name in ('ix_opportunity_stage_amount', 'ix_opportunity_closed_owner',
                 'ix_opportunity_customer_status'):
        op.drop_index(name, table_name='opportunity')
    op.drop_table('opportunity')
    op.drop_index('uq_opportunity_stage_closed_kind', table_name='opportunity_stage')
    op.drop_table('opportunity_stage')
