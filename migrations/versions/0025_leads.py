"""leads (线索): lead, lead_ownership (owner xor lead pool), the append-only lead_event log,
lead_follow_up; pools get a record type (customer / lead, one default each); policies get
the lead cap, the lead daily claim limit and the lead reclaim days

Revision ID: 0025
Revises: 0022
Create Date: 2026-11-30 05:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0025'
down_revision = '0023'
branch_labels = None
depends_on = None

LEAD_POOL_NAME = '默认线索公海'


def upgrade():
    # The partial index goes first: SQLite's batch mode rebuilds the table and would copy it
    # without its WHERE.
    op.drop_index('uq_pool_default', table_name='pool')
    if op.get_bind().dialect.name == 'sqlite':
        # The column with its CHECK in one ALTER TABLE: batch mode would rebuild pool, and
        # SQLite refuses to drop a table that customer_ownership rows reference (foreign keys
        # are on), so an existing database with customers in pools could not upgrade.
        op.execute(sa.text(
            "ALTER TABLE pool ADD COLUMN record_type VARCHAR(16) DEFAULT 'customer' NOT NULL "
            "CONSTRAINT ck_pool_record_type CHECK (record_type in ('customer', 'lead'))"))
    else:
        op.add_column('pool', sa.Column('record_type', sa.String(length=16),
                                        server_default='customer', nullable=False))
        op.create_check_constraint('ck_pool_record_type', 'pool',
                                   "record_type in ('customer', 'lead')")
    op.create_index('uq_pool_default', 'pool', ['record_type', 'is_default'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_max', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lead_daily_claim_limit', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lead_reclaim_no_followup_days', sa.Integer(),
                                      nullable=True))

    op.create_table(
        'lead',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_name', sa.String(length=100), nullable=True),
        sa.Column('company_name', sa.String(length=200), nullable=True),
        sa.Column('mobile', sa.String(length=60), nullable=True),
        sa.Column('mobile_e164', sa.String(length=32), nullable=True),
        sa.Column('phone', sa.String(length=60), nullable=True),
        sa.Column('phone_e164', sa.String(length=32), nullable=True),
        sa.Column('email', sa.String(length=200), nullable=True),
        sa.Column('email_norm', sa.String(length=200), nullable=True),
        sa.Column('name_core', sa.String(length=200), nullable=True),
        sa.Column('province', sa.String(length=50), nullable=True),
        sa.Column('city', sa.String(length=50), nullable=True),
        sa.Column('industry', sa.String(length=100), nullable=True),
        sa.Column('source', sa.String(length=20), nullable=True),
        sa.Column('campaign', sa.String(length=200), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=16), server_default='new', nullable=False),
        sa.Column('invalid_reason', sa.String(length=500), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('converted_customer_id', sa.Integer(), nullable=True),
        sa.Column('converted_at', sa.DateTime(), nullable=True),
        sa.Column('converted_by_id', sa.Integer(), nullable=True),
        sa.CheckConstraint('person_name is not null or company_name is not null',
                           name='ck_lead_has_name'),
        sa.CheckConstraint("status in ('new', 'working', 'converted', 'invalid')",
                           name='ck_lead_status'),
        sa.CheckConstraint("source is null or source in ('web_form', 'phone', 'exhibition', "
                           "'referral', 'advertising', 'campaign', 'other')",
                           name='ck_lead_source'),
        sa.CheckConstraint("status <> 'invalid' or invalid_reason is not null",
                           name='ck_lead_invalid_reason'),
        sa.ForeignKeyConstraint(['converted_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['converted_customer_id'], ['customer.id'],
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_lead_created_id', 'lead', ['created_at', 'id'], unique=False)
    op.create_index('ix_lead_status_id', 'lead', ['status', 'id'], unique=False)
    op.create_index(op.f('ix_lead_mobile_e164'), 'lead', ['mobile_e164'], unique=False)
    op.create_index(op.f('ix_lead_phone_e164'), 'lead', ['phone_e164'], unique=False)
    op.create_index(op.f('ix_lead_email_norm'), 'lead', ['email_norm'], unique=False)
    op.create_index(op.f('ix_lead_name_core'), 'lead', ['name_core'], unique=False)
    op.create_index(op.f('ix_lead_converted_customer_id'), 'lead', ['converted_customer_id'],
                    unique=False)

    op.create_table(
        'lead_ownership',
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('pool_id', sa.Integer(), nullable=True),
        sa.Column('home_pool_id', sa.Integer(), nullable=True),
        sa.Column('is_open', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('acquired_at', sa.DateTime(), nullable=False),
        sa.Column('acquired_how', sa.String(length=20), nullable=False),
        sa.Column('previous_owner_id', sa.Integer(), nullable=True),
        sa.Column('last_followup_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint('(owner_id is null) <> (pool_id is null)',
                           name='ck_lead_ownership_owner_xor_pool'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['pool_id'], ['pool.id'], ondelete='RESTRICT'),
        sa.ForeignKeyConstraint(['home_pool_id'], ['pool.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['previous_owner_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('lead_id'),
    )
    op.create_index('ix_lead_ownership_owner_open', 'lead_ownership',
                    ['owner_id', 'is_open', 'last_followup_at'], unique=False)
    op.create_index('ix_lead_ownership_owner_lead', 'lead_ownership', ['owner_id', 'lead_id'],
                    unique=False)
    op.create_index('ix_lead_ownership_pool_lead', 'lead_ownership', ['pool_id', 'lead_id'],
                    unique=False)

    op.create_table(
        'lead_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('from_owner_id', sa.Integer(), nullable=True),
        sa.Column('from_pool_id', sa.Integer(), nullable=True),
        sa.Column('to_owner_id', sa.Integer(), nullable=True),
        sa.Column('to_pool_id', sa.Integer(), nullable=True),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind in ('created', 'claimed', 'released', 'assigned', "
                           "'reclaimed', 'converted', 'invalidated')",
                           name='ck_lead_event_kind'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_lead_event_to_owner_kind_time', 'lead_event',
                    ['to_owner_id', 'kind', 'created_at'], unique=False)
    op.create_index('ix_lead_event_lead_id_id', 'lead_event', ['lead_id', 'id'], unique=False)

    op.create_table(
        'lead_follow_up',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lead_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.Column('happened_at', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel in ('call', 'visit', 'message', 'email', 'meeting')",
                           name='ck_lead_follow_up_channel'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_lead_follow_up_lead_id_id', 'lead_follow_up', ['lead_id', 'id'],
                    unique=False)

    # The default lead pool (app.services.bootstrap creates it on a fresh database too).
    op.execute(sa.text(
        "INSERT INTO pool (name, description, is_default, record_type, created_at) "
        "SELECT :name, '未分配线索的默认线索公海', :yes, 'lead', CURRENT_TIMESTAMP "
        "WHERE NOT EXISTS (SELECT 1 FROM pool WHERE record_type = 'lead' AND is_default)"
        " AND NOT EXISTS (SELECT 1 FROM pool WHERE name = :name)"
    ).bindparams(name=LEAD_POOL_NAME, yes=True))


def downgrade():
    op.drop_index('ix_lead_follow_up_lead_id_id', table_name='lead_follow_up')
    op.drop_table('lead_follow_up')
    op.drop_index('ix_lead_event_lead_id_id', table_name='lead_event')
    op.drop_index('ix_lead_event_to_owner_kind_time', table_name='lead_event')
    op.drop_table('lead_event')
    op.drop_index('ix_lead_ownership_pool_lead', table_name='lead_ownership')
    op.drop_index('ix_lead_ownership_owner_lead', table_name='lead_ownership')
    op.drop_index('ix_lead_ownership_owner_open', table_name='lead_ownership')
    op.drop_table('lead_ownership')
    for name in ('ix_lead_converted_customer_id', 'ix_lead_name_core', 'ix_lead_email_norm',
                 'ix_lead_phone_e164', 'ix_lead_mobile_e164', 'ix_lead_status_id',
                 'ix_lead_created_id'):
        op.drop_index(name, table_name='lead')
    op.drop_table('lead')
    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.drop_column('lead_reclaim_no_followup_days')
        batch_op.drop_column('lead_daily_claim_limit')
        batch_op.drop_column('lead_max')
    op.execute(sa.text("DELETE FROM pool WHERE record_type = 'lead'"))
    op.drop_index('uq_pool_default', table_name='pool')
    with op.batch_alter_table('pool', schema=None) as batch_op:
        batch_op.drop_constraint('ck_pool_record_type', type_='check')
        batch_op.drop_column('record_type')
    op.create_index('uq_pool_default', 'pool', ['is_default'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))
