"""one policy per target and one default pool, as partial unique indexes

uq_policy_target (scope, department_id, user_id) never fired: every target leaves one of the
nullable columns NULL, and NULLs are distinct. It is replaced by one partial unique index per
kind of target. Pools get a partial unique index on the default flag.

Existing data that breaks the new rules: extra default pools lose the flag (the lowest id
stays default, the row an unordered read returned first); duplicate policies stop the
upgrade with their ids, since which values to keep is the admin's decision.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 17:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_POLICY_TARGETS = (
    ('uq_policy_global', 'scope', "scope = 'global'"),
    ('uq_policy_department', 'department_id', 'department_id IS NOT NULL'),
    ('uq_policy_user', 'user_id', 'user_id IS NOT NULL'),
)


def upgrade():
    conn = op.get_bind()
    duplicates = conn.execute(sa.text(
        "SELECT scope, department_id, user_id, MIN(id), COUNT(*) FROM policy "
        "GROUP BY scope, department_id, user_id HAVING COUNT(*) > 1")).all()
    if duplicates:
        found = '; '.join(f'scope={s} department_id={d} user_id={u}: {n} rows from id {i}'
                          for s, d, u, i, n in duplicates)
        raise RuntimeError('More than one policy for the same target; delete the extra rows '
                           f'(keep one per target) and upgrade again: {found}')
    conn.execute(sa.text(
        "UPDATE pool SET is_default = :no WHERE is_default = :yes "
        "AND id > (SELECT MIN(id) FROM pool WHERE is_default = :yes)"),
        {'yes': True, 'no': False})

    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.drop_constraint('uq_policy_target', type_='unique')
    for name, column, where in _POLICY_TARGETS:
        op.create_index(name, 'policy', [column], unique=True,
                        sqlite_where=sa.text(where), postgresql_where=sa.text(where))
    op.create_index('uq_pool_default', 'pool', ['is_default'], unique=True,
                    sqlite_where=sa.text('is_default'), postgresql_where=sa.text('is_default'))


def downgrade():
    op.drop_index('uq_pool_default', table_name='pool')
    for name, _column, _where in _POLICY_TARGETS:
        op.drop_index(name, table_name='policy')
    with op.batch_alter_table('policy', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_policy_target',
                                          ['scope', 'department_id', 'user_id'])
