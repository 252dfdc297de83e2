"""risk_model: the trained risk models (流失风险) — per run and kind (lapse: no follow-up
before the reclaim deadline; silent: a won customer goes quiet for 90 days), with the
coefficients, both AUCs of the time-split backtest and the gate's verdict.

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-01 08:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0045'
down_revision = '0044'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'risk_model',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('trained_at', sa.DateTime(), nullable=False),
        sa.Column('params', sa.Text(), nullable=True),
        sa.Column('model_auc', sa.Float(), nullable=True),
        sa.Column('baseline_auc', sa.Float(), nullable=True),
        sa.Column('n_train', sa.Integer(), nullable=False),
        sa.Column('n_test', sa.Integer(), nullable=False),
        sa.Column('positives_train', sa.Integer(), nullable=False),
        sa.Column('positives_test', sa.Integer(), nullable=False),
        sa.Column('test_from', sa.DateTime(), nullable=True),
        sa.Column('shown', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('verdict', sa.String(length=20), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.CheckConstraint("kind in ('lapse', 'silent')", name='ck_risk_model_kind'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_risk_model_kind_id', 'risk_model', ['kind', 'id'])


def downgrade():
    op.drop_index('ix_risk_model_kind_id', table_name='risk_model')
    op.drop_table('risk_model')
