"""lead capture: public capture forms and their submissions; a lead's consent (policy
version, time) and its priority score with one column per rule; import batches as leads;
the memory of lead pre-reclaim warnings

Revision ID: 0030
Revises: 0028
Create Date: 2026-11-30 07:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0030'
down_revision = '0028'
branch_labels = None
depends_on = None

SOURCES = "'web_form', 'phone', 'exhibition', 'referral', 'advertising', 'campaign', 'other'"
PRIORITY_PARTS = ('priority_score', 'priority_source', 'priority_completeness',
                  'priority_engagement', 'priority_age')


def upgrade():
    # Plain ADD COLUMNs (nullable, or with a server default): SQLite adds them in place; a
    # batch rebuild of lead would drop and copy a table other rows reference.
    op.add_column('lead', sa.Column('consent_version', sa.String(length=40), nullable=True))
    op.add_column('lead', sa.Column('consented_at', sa.DateTime(), nullable=True))
    for name in PRIORITY_PARTS:
        op.add_column('lead', sa.Column(name, sa.Integer(), server_default='0',
                                        nullable=False))
    op.create_index('ix_lead_priority_id', 'lead', ['priority_score', 'id'], unique=False)

    # Import as leads: the batch's record type (with its CHECK in one ALTER TABLE on SQLite,
    # as 0025 adds pool.record_type) and the owner its leads go to.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(sa.text(
            "ALTER TABLE import_batch ADD COLUMN record_type VARCHAR(10) DEFAULT 'customer' "
            "NOT NULL CONSTRAINT ck_import_batch_record_type "
            "CHECK (record_type in ('customer', 'lead'))"))
    else:
        op.add_column('import_batch', sa.Column('record_type', sa.String(length=10),
                                                server_default='customer', nullable=False))
        op.create_check_constraint('ck_import_batch_record_type', 'import_batch',
                                   "record_type in ('customer', 'lead')")
    # The owner is checked when the batch is configured and under lock_active_rep when it
    # runs; a plain column (no foreign key) adds in place on SQLite.
    op.add_column('import_batch', sa.Column('lead_owner_id', sa.Integer(), nullable=True))

    op.create_table(
        'lead_reclaim_warning',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('lead_id', 'owner_id', 'due_at',
                            name='uq_lead_reclaim_warning_cycle'))
    op.create_index('ix_lead_reclaim_warning_lead_id', 'lead_reclaim_warning', ['lead_id'],
                    unique=False)
    op.create_index('ix_lead_reclaim_warning_owner_id', 'lead_reclaim_warning', ['owner_id'],
                    unique=False)

    op.create_table(
        'capture_form',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('channel', sa.String(length=20), nullable=False),
        sa.Column('pool_id', sa.Integer(), nullable=False),
        sa.Column('policy_text', sa.Text(), nullable=False),
        sa.Column('policy_version', sa.String(length=40), nullable=False),
        sa.Column('is_active', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('token_rotated_at', sa.DateTime(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint(f"channel in ({SOURCES})", name='ck_capture_form_channel'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('token'))
    op.create_table(
        'capture_submission',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('form_id', sa.Integer(), nullable=False),
        sa.Column('client_ip', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("outcome in ('lead', 'duplicate', 'honeypot', 'invalid')",
                           name='ck_capture_submission_outcome'),
        sa.ForeignKeyConstraint(['form_id'], ['capture_form.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_capture_submission_ip_time', 'capture_submission',
                    ['client_ip', 'created_at'], unique=False)
    op.create_index('ix_capture_submission_form_id', 'capture_submission', ['form_id', 'id'],
                    unique=False)


def downgrade():
    op.drop_index('ix_capture_submission_form_id', table_name='capture_submission')
    op.drop_index('ix_capture_submission_ip_time', table_name='capture_submission')
    op.drop_table('capture_submission')
    op.drop_table('capture_form')
    op.drop_index('ix_lead_reclaim_warning_owner_id', table_name='lead_reclaim_warning')
    op.drop_index('ix_lead_reclaim_warning_lead_id', table_name='lead_reclaim_warning')
    op.drop_table('lead_reclaim_warning')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('ck_import_batch_record_type', 'import_batch', type_='check')
        op.drop_column('import_batch', 'record_type')
    # SQLite keeps record_type: it cannot drop a column with a CHECK without rebuilding the
    # table its problem rows reference.
    op.drop_column('import_batch', 'lead_owner_id')
    op.drop_index('ix_lead_priority_id', table_name='lead')
    # Plain DROP COLUMNs (SQLite 3.35+): no batch rebuild of a table others reference.
    for name in ('consent_version', 'consented_at') + PRIORITY_PARTS:
        op.drop_column('lead', name)
