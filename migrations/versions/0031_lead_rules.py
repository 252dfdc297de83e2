"""lead rules: an assignment rule places customers or leads (record_type, CHECK-constrained),
and a lead event names the rule that placed the lead (like ownership_event.rule)

Revision ID: 0031
Revises: 0029
Create Date: 2026-11-30 07:40:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0031'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs: SQLite adds them in place (the CHECK inside the one ALTER TABLE, as
    # 0025 adds pool.record_type); a batch rebuild would copy tables other rows reference.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(sa.text(
            "ALTER TABLE assignment_rule ADD COLUMN record_type VARCHAR(10) "
            "DEFAULT 'customer' NOT NULL CONSTRAINT ck_rule_record_type "
            "CHECK (record_type in ('customer', 'lead'))"))
    else:
        op.add_column('assignment_rule', sa.Column('record_type', sa.String(length=10),
                                                   server_default='customer', nullable=False))
        op.create_check_constraint('ck_rule_record_type', 'assignment_rule',
                                   "record_type in ('customer', 'lead')")
    op.add_column('lead_event', sa.Column('rule', sa.String(length=200), nullable=True))


def downgrade():
    op.drop_column('lead_event', 'rule')
    if op.get_bind().dialect.name != 'sqlite':
        op.drop_constraint('ck_rule_record_type', 'assignment_rule', type_='check')
        op.drop_column('assignment_rule', 'record_type')
    # SQLite keeps record_type: it cannot drop a column with a CHECK without a rebuild.
