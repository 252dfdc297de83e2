"""marketing core: tags and their links, saved segments, campaigns and campaign members

tag: the list admins and marketing keep (name unique). record_tag: one tag on exactly one
customer, contact or lead (three nullable FKs, CHECK exactly one, a unique index per kind).
segment: a saved filter (criteria JSON) over customers, leads or both, evaluated in its
creator's scope. campaign: kind, status, dates, budget and cost (CHECKed), owner, segment,
launch, e-mail / SMS templates, send window (CHECKed), sign-up token. campaign_member:
exactly one customer or lead per row, once per campaign (unique per kind), frozen from the
segment at launch or added by hand. campaign_message: the campaign outbox, once per member and
channel. marketing_optout: one opt-out per channel and normalised address. campaign_touch: a
click, sign-up or marked response (what attribution counts). marketing_settings: the
attribution window and the consent requirement. customer.consent_version / consented_at.

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-30 10:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'tag',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('color', sa.String(length=16), nullable=True),
        sa.Column('description', sa.String(length=200), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'))
    op.create_table(
        'record_tag',
        sa.Column('id', BigId, nullable=False),
        sa.Column('tag_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('tagged_by_id', sa.Integer(), nullable=True),
        sa.Column('tagged_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('(CASE WHEN customer_id IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END) = 1',
                           name='ck_record_tag_one_record'),
        sa.ForeignKeyConstraint(['tag_id'], ['tag.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['tagged_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_record_tag_customer', 'record_tag', ['customer_id', 'tag_id'],
                    unique=True)
    op.create_index('uq_record_tag_contact', 'record_tag', ['contact_id', 'tag_id'], unique=True)
    op.create_index('uq_record_tag_lead', 'record_tag', ['lead_id', 'tag_id'], unique=True)
    op.create_index('ix_record_tag_tag', 'record_tag', ['tag_id'], unique=False)
    op.create_table(
        'segment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('record_type', sa.String(length=10), server_default='customer',
                  nullable=False),
        sa.Column('criteria', sa.Text(), server_default='{}', nullable=False),
        sa.Column('include_pool', sa.Boolean(), server_default='0', nullable=False),
        sa.Column('description', sa.String(length=500), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("record_type in ('customer', 'lead', 'both')",
                           name='ck_segment_record_type'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'))
    op.create_index('ix_segment_created_by_id', 'segment', ['created_by_id'], unique=False)
    op.create_table(
        'campaign',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=12), server_default='planned', nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=True),
        sa.Column('ends_on', sa.Date(), nullable=True),
        sa.Column('budget', sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column('actual_cost', sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('segment_id', sa.Integer(), nullable=True),
        sa.Column('email_subject', sa.String(length=200), nullable=True),
        sa.Column('email_body', sa.Text(), nullable=True),
        sa.Column('sms_body', sa.Text(), nullable=True),
        sa.Column('send_from_hour', sa.Integer(), server_default='9', nullable=False),
        sa.Column('send_to_hour', sa.Integer(), server_default='20', nullable=False),
        sa.Column('token', sa.String(length=64), nullable=True),
        sa.Column('launched_at', sa.DateTime(), nullable=True),
        sa.Column('launched_by_id', sa.Integer(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind in ('exhibition', 'online_ad', 'email', 'sms', 'seminar',"
                           " 'telemarketing')", name='ck_campaign_kind'),
        sa.CheckConstraint("status in ('planned', 'running', 'finished')",
                           name='ck_campaign_status'),
        sa.CheckConstraint('budget IS NULL OR budget >= 0', name='ck_campaign_budget'),
        sa.CheckConstraint('actual_cost IS NULL OR actual_cost >= 0', name='ck_campaign_cost'),
        sa.CheckConstraint('ends_on IS NULL OR starts_on IS NULL OR ends_on >= starts_on',
                           name='ck_campaign_dates'),
        sa.CheckConstraint('send_from_hour between 0 and 23 AND send_to_hour between 1 and 24'
                           ' AND send_to_hour > send_from_hour', name='ck_campaign_send_window'),
        sa.ForeignKeyConstraint(['owner_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['segment_id'], ['segment.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['launched_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('token'))
    op.create_index('ix_campaign_starts_id', 'campaign', ['starts_on', 'id'], unique=False)
    op.create_index('ix_campaign_owner_id', 'campaign', ['owner_id'], unique=False)
    op.create_index('ix_campaign_segment_id', 'campaign', ['segment_id'], unique=False)
    op.create_table(
        'campaign_member',
        sa.Column('id', BigId, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('source', sa.String(length=10), server_default='manual', nullable=False),
        sa.Column('added_by_id', sa.Integer(), nullable=True),
        sa.Column('added_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('(customer_id IS NULL) <> (lead_id IS NULL)',
                           name='ck_campaign_member_one_record'),
        sa.CheckConstraint("source in ('segment', 'manual')", name='ck_campaign_member_source'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['added_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_campaign_member_customer', 'campaign_member',
                    ['campaign_id', 'customer_id'], unique=True)
    op.create_index('uq_campaign_member_lead', 'campaign_member', ['campaign_id', 'lead_id'],
                    unique=True)
    op.create_index('ix_campaign_member_customer', 'campaign_member', ['customer_id'],
                    unique=False)
    op.create_index('ix_campaign_member_lead', 'campaign_member', ['lead_id'], unique=False)
    op.create_table(
        'campaign_message',
        sa.Column('id', BigId, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('member_id', BigId, nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=12), server_default='pending', nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('subject', sa.String(length=200), nullable=True),
        sa.Column('body', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel in ('email', 'sms')", name='ck_campaign_message_channel'),
        sa.CheckConstraint("status in ('pending', 'sent', 'failed', 'cancelled')",
                           name='ck_campaign_message_status'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['campaign_member.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_campaign_message_once', 'campaign_message', ['member_id', 'channel'],
                    unique=True)
    op.create_index('ix_campaign_message_due', 'campaign_message',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_campaign_message_campaign', 'campaign_message',
                    ['campaign_id', 'status'], unique=False)
    op.create_table(
        'marketing_optout',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('source', sa.String(length=12), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('campaign_id', sa.Integer(), nullable=True),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel in ('email', 'sms')", name='ck_marketing_optout_channel'),
        sa.CheckConstraint("source in ('link', 'sms_reply', 'manual', 'api')",
                           name='ck_marketing_optout_source'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_marketing_optout_address', 'marketing_optout', ['channel', 'address'],
                    unique=True)
    op.create_table(
        'campaign_touch',
        sa.Column('id', BigId, nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('member_id', BigId, nullable=True),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=True),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('occurred_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("kind in ('click', 'signup', 'response')",
                           name='ck_campaign_touch_kind'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['member_id'], ['campaign_member.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_campaign_touch_campaign', 'campaign_touch', ['campaign_id', 'kind'],
                    unique=False)
    op.create_index('ix_campaign_touch_customer', 'campaign_touch',
                    ['customer_id', 'occurred_at'], unique=False)
    op.create_index('ix_campaign_touch_lead', 'campaign_touch', ['lead_id', 'occurred_at'],
                    unique=False)
    op.create_index('ix_campaign_touch_member', 'campaign_touch', ['member_id'], unique=False)
    op.create_table(
        'marketing_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('attribution_days', sa.Integer(), server_default='180', nullable=False),
        sa.Column('require_consent', sa.Boolean(), server_default='1', nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('attribution_days between 1 and 3650',
                           name='ck_marketing_settings_attribution_days'),
        sa.PrimaryKeyConstraint('id'))
    # A customer keeps the consent its lead gave on a public form.
    op.add_column('customer', sa.Column('consent_version', sa.String(length=40), nullable=True))
    op.add_column('customer', sa.Column('consented_at', sa.DateTime(), nullable=True))


def downgrade():
    op.drop_column('customer', 'consented_at')
    op.drop_column('customer', 'consent_version')
    op.drop_table('marketing_settings')
    op.drop_table('campaign_touch')
    op.drop_table('marketing_optout')
    op.drop_table('campaign_message')
    op.drop_table('campaign_member')
    op.drop_table('campaign')
    op.drop_table('segment')
    op.drop_table('record_tag')
    op.drop_table('tag')
