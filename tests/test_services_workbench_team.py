"""The manager's team view reads the whole team in a fixed number of statements and says,
for every member, exactly what the one-user read (workbench.limits) says."""
from __future__ import annotations

from sqlalchemy import event

from app.models import Policy, PoolMember
from app.services import assignment, customers, deals, pool, workbench


def _statements(fn, *args):
    from app.extensions import db

    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        return fn(*args), seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_team_rows_equal_each_members_own_limits(db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=40, max_locked=3))
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=30,
                          count_won=True))
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep2.id))
    db.session.commit()
    extra = [customers.create_customer(org.rep, {"name": f"团队视图{i}号贸易有限公司"},
                                       confirm_duplicates=True).id for i in range(4)]
    assignment.lock(org.rep, extra[:1])
    deals.record_deal(org.rep, extra[1], {"amount": "5000"})
    pool.claim_from_pool(org.rep2, [org.c_pool.id])

    for manager in (org.manager, org.admin):
        rows, seen = _statements(workbench.team, manager)
        assert len(seen) <= 8, seen  # the team, policies, counts, claims (+ roles, scope)
        assert rows, manager
        for row in rows:
            single = workbench.limits(row["id"])
            assert {k: row[k] for k in single} == single, row["username"]
    by_name = {r["id"]: r for r in workbench.team(org.manager)}
    assert by_name[org.rep.id]["locked"] == 1
    assert by_name[org.rep.id]["policy"]["max_customers"]["value"] == 40
    assert by_name[org.rep2.id]["claimed_today"] == 1
    assert by_name[org.rep2.id]["policy"]["count_won"]["value"] is True
