"""dedupe rules: the three fuzzy rules become the matcher's rule 'scored'

Before: besides the exact identifiers (mobile, phone, e-mail), three fuzzy rules — company
name (fuzz.ratio of the core ≥ a threshold, same city), person + birthday, person + address
— each active or not, blocking or warning. After: one rule, 'scored' (综合评分), whose
thresholds are the matcher's totals (app.services.matching): a pair at or above link_score
is a match and is blocked or warned as the rule's action says; between review_score and
link_score it goes to the review page. Blank thresholds follow the current model.

What each deployment keeps: the rule is active if any of the three was; it blocks if any
active one blocked, else it warns (the stricter of the old answers). The old similarity
thresholds (50–100 % of fuzz.ratio) have no equivalent on the scorer's scale: they are not
carried over, and the model's thresholds apply. The exact rules are untouched. Downgrading
restores the three rules with the shipped defaults and the scored rule's action.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-01 00:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0043'
down_revision = '0042'
branch_labels = None
depends_on = None

_rule = sa.table('dedupe_rule', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                 sa.column('active', sa.Boolean), sa.column('fuzzy', sa.Boolean),
                 sa.column('threshold', sa.Integer), sa.column('same_city', sa.Boolean),
                 sa.column('action', sa.String), sa.column('updated_at', sa.DateTime))
_FUZZY = ('company_name', 'person_birthday', 'person_address')


def upgrade():
    with op.batch_alter_table('dedupe_rule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('link_score', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('review_score', sa.Float(), nullable=True))
        batch_op.drop_constraint('ck_dedupe_rule_kind', type_='check')
    bind = op.get_bind()
    old = bind.execute(sa.select(_rule.c.active, _rule.c.action)
                       .where(_rule.c.kind.in_(_FUZZY))).all()
    bind.execute(_rule.delete().where(_rule.c.kind.in_(_FUZZY)))
    if old:  # a fresh database gets its rules from `flask crm init` (ensure_rules)
        active = [r for r in old if r.active]
        action = 'block' if any(r.action == 'block' for r in active) else 'warn'
        bind.execute(_rule.insert().values(
            kind='scored', active=bool(active), fuzzy=True, threshold=100, same_city=False,
            action=action, updated_at=sa.func.current_timestamp()))
    with op.batch_alter_table('dedupe_rule', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'ck_dedupe_rule_kind', "kind in ('mobile', 'phone', 'email', 'scored')")


def downgrade():
    with op.batch_alter_table('dedupe_rule', schema=None) as batch_op:
        batch_op.drop_constraint('ck_dedupe_rule_kind', type_='check')
    bind = op.get_bind()
    scored = bind.execute(sa.select(_rule.c.active, _rule.c.action)
                          .where(_rule.c.kind == 'scored')).first()
    bind.execute(_rule.delete().where(_rule.c.kind == 'scored'))
    if scored is not None:
        for kind, fuzzy, same_city in (('company_name', True, True),
                                       ('person_birthday', False, False),
                                       ('person_address', True, False)):
            bind.execute(_rule.insert().values(
                kind=kind, active=scored.active, fuzzy=fuzzy,
                threshold=100 if kind == 'person_birthday' else 90, same_city=same_city,
                action=scored.action, updated_at=sa.func.current_timestamp()))
    with op.batch_alter_table('dedupe_rule', schema=None) as batch_op:
        batch_op.drop_column('review_score')
        batch_op.drop_column('link_score')
        batch_op.create_check_constraint(
            'ck_dedupe_rule_kind', "kind in ('mobile', 'phone', 'email', 'company_name', "
                                   "'person_birthday', 'person_address')")
