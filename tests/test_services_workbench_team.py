"""The manager's team view reads the whole team in a fixed number of statements and says,
for every member, exactly what the one-user read (workbench.limits) says."""
from __future__ import annotations

from sqlalchemy import event, select

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


def _brute_force_soon(user):
    """The old reading: every unlocked, unwon customer of the user, filtered in Python."""
    from app.extensions import db
    from app.models import Customer, Ownership
    from app.services import policies

    policy = policies.effective_policy(user.id)
    window = int(policy["warn_before_days"].value or 0)
    out = []
    for cid, name, own in db.session.execute(
            select(Customer.id, Customer.name, Ownership).join(
                Ownership, Ownership.customer_id == Customer.id).where(
                Ownership.owner_id == user.id, Ownership.locked.is_(False),
                Ownership.won.is_(False))).all():
        left = workbench.days_left(own, policy)
        if left is not None and left <= window:
            out.append({"id": cid, "name": name, "days_left": left})
    return sorted(out, key=lambda r: (r["days_left"], r["id"]))


def test_about_to_be_reclaimed_is_the_soonest_by_either_rule(db, org):
    import datetime as dt

    from app.models import Ownership
    from app.models.customer import utcnow

    db.session.add(Policy(scope="user", user_id=org.rep.id, reclaim_no_followup_days=30,
                          reclaim_no_deal_days=90, warn_before_days=5))
    db.session.commit()
    now = utcnow()
    # (days since acquired, days since the last follow-up or None)
    shapes = [(28, None), (29, 1), (87, 2), (88, 10), (26, None), (24, None), (89, 25),
              (10, None), (200, 199), (86, 27)]
    ids = [customers.create_customer(org.rep, {"name": f"回收预警{i}号贸易有限公司"},
                                     confirm_duplicates=True).id for i in range(len(shapes))]
    for cid, (acquired, followed) in zip(ids, shapes):
        own = db.session.get(Ownership, cid)
        own.acquired_at = now - dt.timedelta(days=acquired, hours=1)
        own.last_followup_at = now - dt.timedelta(days=followed, hours=1) \
            if followed is not None else None
    db.session.commit()
    expected = _brute_force_soon(org.rep)
    assert len(expected) >= 5
    assert workbench.about_to_be_reclaimed(org.rep) == expected
    assert workbench.about_to_be_reclaimed(org.rep, limit=3) == expected[:3]
