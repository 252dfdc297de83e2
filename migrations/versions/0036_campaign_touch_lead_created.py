"""campaign_touch.lead_created: the touch that made its lead

A sign-up through a capture form or a response recorded by hand either lands on a record that
exists (a customer, an open lead: dedupe found it) or creates a new lead. The effect table's
"leads" are the second kind only, so the touch says which it was: a boolean set in the same
transaction that inserts the lead (app.services.campaign_responses).

Revision ID: 0036
Revises: 0032
Create Date: 2026-11-30 10:10:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0036'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('campaign_touch', sa.Column('lead_created', sa.Boolean(), nullable=False,
                                              server_default='0'))


def downgrade():
    with op.batch_alter_table('campaign_touch') as batch:
        batch.drop_column('lead_created')
