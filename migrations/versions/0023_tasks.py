"""tasks (待办): the task table

A task has an owner, a due time (stored UTC), a subject, an optional link to one record
(record_type + record_id: a customer now), a status (open / done / cancelled) and the time
its owner was reminded. Follow-ups with a next contact date and care reminders open them.

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-30 05:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'task',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('record_type', sa.String(length=20), nullable=True),
        sa.Column('record_id', sa.Integer(), nullable=True),
        sa.Column('source', sa.String(length=16), server_default='manual', nullable=False),
        sa.Column('status', sa.String(length=12), server_default='open', nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('reminded_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("status in ('open', 'done', 'cancelled')", name='ck_task_status'),
        sa.CheckConstraint("source in ('manual', 'followup', 'care')", name='ck_task_source'),
        sa.CheckConstraint('(record_type IS NULL) = (record_id IS NULL)', name='ck_task_record'),
        sa.CheckConstraint("status <> 'done' OR done_at IS NOT NULL", name='ck_task_done_at'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_created_by_id'), ['created_by_id'],
                              unique=False)
        batch_op.create_index('ix_task_due_id', ['due_at', 'id'], unique=False)
        batch_op.create_index('ix_task_owner_status_due', ['owner_id', 'status', 'due_at'],
                              unique=False)
        batch_op.create_index('ix_task_record', ['record_type', 'record_id', 'status'],
                              unique=False)
        batch_op.create_index('ix_task_to_remind', ['status', 'reminded_at', 'due_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index('ix_task_to_remind')
        batch_op.drop_index('ix_task_record')
        batch_op.drop_index('ix_task_owner_status_due')
        batch_op.drop_index('ix_task_due_id')
        batch_op.drop_index(batch_op.f('ix_task_created_by_id'))
    op.drop_table('task')
