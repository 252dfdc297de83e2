"""surveys (市场调研): survey, survey_question, survey_invitation, survey_response, survey_answer

survey: title unique, intro, status draft|open|closed (CHECKed), invitation lifetime in days
(1..365), opened / closed times. survey_question: kind single|multiple|rating|text, text,
options (JSON list), required, position unique per survey. survey_invitation: exactly one of
customer / contact / lead (CHECK), once per survey and record (a unique index per kind), the
campaign it came through, an unguessable unique token, the delivery (channel, address,
status, attempts, retry time), expiry and answered_at. survey_response: unique per invitation
(one answer per token). survey_answer: one choice, rating (1..5) or text per row.

Revision ID: 0037
Revises: 0036
Create Date: 2026-11-30 10:05:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0037'
down_revision = '0036'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'survey',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('intro', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=10), server_default='draft', nullable=False),
        sa.Column('expires_days', sa.Integer(), server_default='30', nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=True),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("status in ('draft', 'open', 'closed')", name='ck_survey_status'),
        sa.CheckConstraint('expires_days between 1 and 365', name='ck_survey_expires_days'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('title'))
    op.create_index('ix_survey_created_id', 'survey', ['created_at', 'id'], unique=False)
    op.create_table(
        'survey_question',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('survey_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('text', sa.String(length=500), nullable=False),
        sa.Column('options', sa.Text(), nullable=True),
        sa.Column('required', sa.Boolean(), server_default='1', nullable=False),
        sa.CheckConstraint("kind in ('single', 'multiple', 'rating', 'text')",
                           name='ck_survey_question_kind'),
        sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('uq_survey_question_position', 'survey_question', ['survey_id', 'position'],
                    unique=True)
    op.create_table(
        'survey_invitation',
        sa.Column('id', BigId, nullable=False),
        sa.Column('survey_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=True),
        sa.Column('contact_id', sa.Integer(), nullable=True),
        sa.Column('lead_id', sa.Integer(), nullable=True),
        sa.Column('campaign_id', sa.Integer(), nullable=True),
        sa.Column('token', sa.String(length=64), nullable=False),
        sa.Column('greeting_name', sa.String(length=200), nullable=True),
        sa.Column('channel', sa.String(length=8), nullable=True),
        sa.Column('address', sa.String(length=200), nullable=True),
        sa.Column('delivery_status', sa.String(length=10), nullable=True),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('answered_at', sa.DateTime(), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('(CASE WHEN customer_id IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END) = 1',
                           name='ck_survey_invitation_one_record'),
        sa.CheckConstraint("channel IS NULL OR channel in ('email', 'sms')",
                           name='ck_survey_invitation_channel'),
        sa.CheckConstraint("delivery_status IS NULL OR delivery_status in"
                           " ('pending', 'sending', 'sent', 'failed', 'cancelled')",
                           name='ck_survey_invitation_delivery_status'),
        sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['contact_id'], ['contact.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['created_by_id'], ['ab_user.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token'))
    op.create_index('uq_survey_invitation_customer', 'survey_invitation',
                    ['survey_id', 'customer_id'], unique=True)
    op.create_index('uq_survey_invitation_contact', 'survey_invitation',
                    ['survey_id', 'contact_id'], unique=True)
    op.create_index('uq_survey_invitation_lead', 'survey_invitation', ['survey_id', 'lead_id'],
                    unique=True)
    op.create_index('ix_survey_invitation_due', 'survey_invitation',
                    ['delivery_status', 'next_attempt_at'], unique=False)
    op.create_index('ix_survey_invitation_customer', 'survey_invitation', ['customer_id'],
                    unique=False)
    op.create_index('ix_survey_invitation_contact', 'survey_invitation', ['contact_id'],
                    unique=False)
    op.create_index('ix_survey_invitation_lead', 'survey_invitation', ['lead_id'], unique=False)
    op.create_index('ix_survey_invitation_campaign_id', 'survey_invitation', ['campaign_id'],
                    unique=False)
    op.create_table(
        'survey_response',
        sa.Column('id', BigId, nullable=False),
        sa.Column('survey_id', sa.Integer(), nullable=False),
        sa.Column('invitation_id', BigId, nullable=False),
        sa.Column('submitted_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['invitation_id'], ['survey_invitation.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('invitation_id'))
    op.create_index('ix_survey_response_survey', 'survey_response', ['survey_id', 'submitted_at'],
                    unique=False)
    op.create_table(
        'survey_answer',
        sa.Column('id', BigId, nullable=False),
        sa.Column('response_id', BigId, nullable=False),
        sa.Column('question_id', sa.Integer(), nullable=False),
        sa.Column('choice', sa.String(length=100), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=True),
        sa.CheckConstraint('rating IS NULL OR rating between 1 and 5',
                           name='ck_survey_answer_rating'),
        sa.CheckConstraint('(CASE WHEN choice IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN rating IS NULL THEN 0 ELSE 1 END'
                           ' + CASE WHEN text IS NULL THEN 0 ELSE 1 END) = 1',
                           name='ck_survey_answer_one_value'),
        sa.ForeignKeyConstraint(['response_id'], ['survey_response.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['question_id'], ['survey_question.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_survey_answer_question', 'survey_answer', ['question_id', 'choice'],
                    unique=False)
    op.create_index('ix_survey_answer_response', 'survey_answer', ['response_id'], unique=False)


def downgrade():
    op.drop_table('survey_answer')
    op.drop_table('survey_response')
    op.drop_table('survey_invitation')
    op.drop_table('survey_question')
    op.drop_table('survey')
