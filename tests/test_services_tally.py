"""The owner tally (app.services.tally): what each owner holds, kept by triggers whatever path
writes the ownership rows, folded into totals by a periodic job, read by the caps, the
workbench and the team view. (conftest checks after every test that it equals a recount.)"""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from app.models import owner_tally
from app.services import assignment, caps, customers, deals, followups, pool, tally, workbench
from tests.helpers import in_threads


def _counts(owner_id: int) -> dict:
    return tally.counts_of([owner_id]).get(owner_id, {})


def test_each_state_change_moves_the_counts(db, org):
    rep = org.rep
    start = _counts(rep.id)
    assert start == {"held": 1, "unlocked": 1, "locked": 0, "won": 0, "unlocked_unwon": 1,
                     "fresh": 1}  # the fixture's c_rep, never followed up
    extra = customers.create_customer(rep, {"name": "宁波海昌贸易有限公司"})
    assert _counts(rep.id)["held"] == 2 and _counts(rep.id)["fresh"] == 2

    followups.log_followup(rep, extra.id, {"channel": "call", "content": "电话"})
    assert _counts(rep.id) == {"held": 2, "unlocked": 2, "locked": 0, "won": 0,
                               "unlocked_unwon": 2, "fresh": 1}

    assignment.lock(rep, [extra.id])
    assert _counts(rep.id) == {"held": 2, "unlocked": 1, "locked": 1, "won": 0,
                               "unlocked_unwon": 1, "fresh": 1}

    deals.record_deal(rep, org.c_rep.id, {"amount": "888"})
    assert _counts(rep.id) == {"held": 2, "unlocked": 1, "locked": 1, "won": 1,
                               "unlocked_unwon": 0, "fresh": 0}
    assert caps.counted(rep.id, True) == 1 and caps.counted(rep.id, False) == 0
    assert caps.locked_count(rep.id) == 1

    assignment.unlock(org.admin, [extra.id])
    pool.release_to_pool(rep, [extra.id], reason="不再跟进")
    assert _counts(rep.id) == {"held": 1, "unlocked": 1, "locked": 0, "won": 1,
                               "unlocked_unwon": 0, "fresh": 0}


def test_a_raw_update_is_counted_too(db, org):
    """The triggers see every write, not only the services' (an admin's SQL, a migration)."""
    db.session.execute(text("UPDATE customer_ownership SET owner_id = :o, pool_id = NULL "
                            "WHERE customer_id = :c"), {"o": org.rep2.id, "c": org.c_pool.id})
    db.session.execute(text("DELETE FROM customer_ownership WHERE customer_id = :c"),
                       {"c": org.c_rep.id})
    assert _counts(org.rep.id)["held"] == 0
    assert _counts(org.rep2.id)["held"] == 2
    assert tally.drift() == {}


def test_fold_keeps_the_counts_and_empties_the_changes(db, org):
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "电话"})
    before = tally.counts_of([org.rep.id, org.rep2.id, org.rep_north.id])
    changes = db.session.execute(select(func.count()).select_from(owner_tally).where(~owner_tally.c.base)).scalar()
    assert changes > 0
    assert tally.fold() == changes
    assert db.session.execute(select(func.count()).select_from(owner_tally).where(~owner_tally.c.base)).scalar() == 0
    assert tally.counts_of([org.rep.id, org.rep2.id, org.rep_north.id]) == before
    totals = {t.owner_id: t.held for t in db.session.execute(
        select(owner_tally).where(owner_tally.c.base))}
    assert totals[org.rep.id] == 1 and totals[org.rep2.id] == 1
    assert tally.fold() == 0  # nothing left: a second fold adds nothing


def test_the_workbench_and_team_read_the_tally(db, org):
    customers.create_customer(org.rep, {"name": "温州瓯江机械有限公司"})
    tally.fold()
    followups.log_followup(org.rep, org.c_rep.id, {"channel": "call", "content": "电话"})
    counts = workbench.standing(org.rep.id)
    assert (counts["new"], counts["following"], counts["won"]) == (1, 1, 0)
    assert (counts["unlocked"], counts["unlocked_unwon"], counts["locked"]) == (2, 2, 0)
    team = {row["username"]: row for row in workbench.team(org.manager)}
    assert team[org.rep.username]["owned"] == 2 and team[org.rep2.username]["owned"] == 1


def test_the_fold_job(app, db, org):
    from jobs.ownership import tally_fold

    customers.create_customer(org.rep, {"name": "嘉兴南湖纺织有限公司"})
    db.session.commit()
    assert tally_fold() > 0
    assert _counts(org.rep.id)["held"] == 2


@pytest.mark.real_db
def test_folds_beside_claims_count_every_change_once(app, db, org):
    """Claims, releases and folds at once: every change is folded exactly once, and the
    counts equal a recount at the end (and the cap still holds: the claims read the tally)."""
    from app.models import Policy, PoolMember, User

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=8,
                          daily_claim_limit=10_000, cooldown_days=0))
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=8,
                          daily_claim_limit=10_000, cooldown_days=0))
    db.session.commit()
    ids = [customers.create_customer(org.staff, {"name": f"并发计数客户{i:02d}"}).id
           for i in range(30)]
    reps = [org.rep.id, org.rep2.id]

    def work(i: int) -> int:
        from app.extensions import db as tdb
        from app.services.errors import GuishuError

        done = 0
        for j in range(12):
            if i == 0:
                done += tally.fold()
                continue
            me = tdb.session.get(User, reps[i % 2])
            try:
                pool.claim_from_pool(me, [ids[(i * 7 + j * 3) % len(ids)]])
                if j % 4 == 3:
                    held = customers_of(tdb, me.id)
                    if held:
                        pool.release_to_pool(me, [held[0]], reason="并发测试退回")
            except GuishuError:
                tdb.session.rollback()
        return done

    in_threads(app, 5, work)
    tally.fold()
    db.session.expire_all()
    assert tally.drift() == {}
    assert db.session.execute(select(func.count()).select_from(owner_tally).where(~owner_tally.c.base)).scalar() == 0
    for rep_id in reps:
        assert caps.counted(rep_id, True) <= 8


def customers_of(session_db, owner_id: int) -> list[int]:
    from app.models import Ownership

    return [c for (c,) in session_db.session.execute(
        select(Ownership.customer_id).where(Ownership.owner_id == owner_id)
        .order_by(Ownership.customer_id)).all()]
