"""absences (休假) and API keys for machines

absence: a user on leave over business dates (inclusive); cancelled rows stay. api_key: one
purpose per key, the key's SHA-256 and its visible prefix (the lookup), last use, revocation.

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-30 04:10:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'absence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('cancelled_at', sa.DateTime(), nullable=True),
        sa.Column('cancelled_by_id', sa.Integer(), nullable=True),
        sa.CheckConstraint('ends_on >= starts_on', name='ck_absence_dates'),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['cancelled_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_absence_ends_on', 'absence', ['ends_on', 'starts_on'], unique=False)
    op.create_index('ix_absence_user_starts', 'absence', ['user_id', 'starts_on'], unique=False)
    op.create_index('ix_absence_starts_id', 'absence', ['starts_on', 'id'], unique=False)
    op.create_table(
        'api_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('purpose', sa.String(length=32), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('rotated_at', sa.DateTime(), nullable=True),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.CheckConstraint("purpose in ('sms_inbound', 'email_inbound', 'call_events', "
                           "'web_forms')", name='ck_api_key_purpose'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('prefix'))


def downgrade():
    op.drop_table('api_key')
    op.drop_index('ix_absence_starts_id', table_name='absence')
    op.drop_index('ix_absence_user_starts', table_name='absence')
    op.drop_index('ix_absence_ends_on', table_name='absence')
    op.drop_table('absence')
