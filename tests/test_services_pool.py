"""Claim, release, assign, distribute, lock: every refusal names its rule and numbers."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from app.models import Ownership, OwnershipEvent, Policy, Pool, PoolMember
from app.models.customer import utcnow
from app.services import assignment, customers, pool
from app.services.errors import (CapExceeded, DailyLimitReached, InCooldown, LockCapExceeded,
                                 NotInPool, OutOfScope, PermissionDenied, ValidationFailed)
from tests.helpers import holder_of


@pytest.fixture
def sales_pool(db, org):
    """The default pool open to the whole sales centre, with ten customers in it."""
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    ids = [customers.create_customer(org.staff, {"name": f"公海客户{i:02d}"}).id for i in range(10)]
    return [org.c_pool.id] + ids


def set_policy(db, user, **values):
    db.session.add(Policy(scope="user", user_id=user.id, **values))
    db.session.commit()


def test_claim_moves_customer_and_writes_event(db, org, sales_pool):
    assert pool.claim_from_pool(org.rep, [sales_pool[0]]) == [sales_pool[0]]
    assert holder_of(db, sales_pool[0]) == (org.rep.id, None)
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == sales_pool[0], OwnershipEvent.kind == "claimed")).scalar_one()
    assert (ev.from_pool_id, ev.to_owner_id, ev.actor_id) == (org.pool.id, org.rep.id, org.rep.id)
    own = db.session.get(Ownership, sales_pool[0])
    assert own.acquired_how == "claimed"


def test_claim_refused_for_non_member_of_pool(db, org):
    other = Pool(name="华南公海")
    db.session.add(other)
    db.session.commit()
    c = customers.create_customer(org.staff, {"name": "华南客户"}, pool_id=other.id)
    with pytest.raises(OutOfScope) as exc:
        pool.claim_from_pool(org.rep, [c.id])
    assert exc.value.code == "not_pool_member"
    assert holder_of(db, c.id) == (None, other.id)


def test_claim_of_owned_customer_says_not_in_pool(db, org, sales_pool):
    with pytest.raises(NotInPool) as exc:
        pool.claim_from_pool(org.rep, [org.c_rep2.id])
    assert exc.value.code == "not_in_pool"
    assert exc.value.message == f"客户已不在公海中：{org.c_rep2.name}"


def test_bulk_claim_is_all_or_nothing(db, org, sales_pool):
    with pytest.raises(NotInPool):
        pool.claim_from_pool(org.rep, [sales_pool[1], org.c_rep2.id])
    assert holder_of(db, sales_pool[1]) == (None, org.pool.id)


def test_claim_refused_over_cap_with_numbers(db, org, sales_pool):
    set_policy(db, org.rep, max_customers=3)
    with pytest.raises(CapExceeded) as exc:
        pool.claim_from_pool(org.rep, sales_pool[:3])
    assert exc.value.message == "超出客户上限：上限 3，已拥有 1，本次领取 3"
    assert pool.claim_from_pool(org.rep, sales_pool[:2]) == sales_pool[:2]


def test_daily_claim_limit(db, org, sales_pool):
    set_policy(db, org.rep, daily_claim_limit=3)
    pool.claim_from_pool(org.rep, sales_pool[:2])
    with pytest.raises(DailyLimitReached) as exc:
        pool.claim_from_pool(org.rep, sales_pool[2:4])
    assert exc.value.code == "daily_limit"
    assert exc.value.message == "超出每日领取上限：上限 3，今日已领取 2，本次领取 2"
    pool.claim_from_pool(org.rep, sales_pool[2:3])
    # Yesterday's claims (in the business time zone) do not count today.
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.kind == "claimed")
                       .values(created_at=pool.local_day_start() - dt.timedelta(minutes=1)))
    db.session.commit()
    assert pool.claim_from_pool(org.rep, sales_pool[3:6]) == sales_pool[3:6]


def test_previous_owner_cooldown(db, org, sales_pool):
    set_policy(db, org.rep, cooldown_days=30)
    pool.release_to_pool(org.rep, [org.c_rep.id], reason="客户暂无需求")
    with pytest.raises(InCooldown) as exc:
        pool.claim_from_pool(org.rep, [org.c_rep.id])
    assert exc.value.code == "cooldown"
    assert exc.value.message.startswith(f"原负责人冷却期 30 天：{org.c_rep.name} 于 ")
    assert exc.value.message.endswith("还需 30 天才能再领取")
    pool.claim_from_pool(org.rep2, [org.c_rep.id])  # someone else may take it
    # After the cooldown the previous owner may claim it back.
    pool.release_to_pool(org.rep2, [org.c_rep.id], reason="转回公海")
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.customer_id == org.c_rep.id,
                                                    OwnershipEvent.from_owner_id == org.rep.id)
                       .values(created_at=utcnow() - dt.timedelta(days=31)))
    db.session.commit()
    assert pool.claim_from_pool(org.rep, [org.c_rep.id]) == [org.c_rep.id]


def test_cooldown_outlives_a_later_owner(db, org, sales_pool):
    """rep1 releases c; rep2 claims and releases it too: rep1 is still cooling off, because
    c left rep1 within the cooldown, whoever held it since."""
    set_policy(db, org.rep, cooldown_days=30)
    c = org.c_pool.id  # sales_pool[0]
    pool.claim_from_pool(org.rep, [c])
    pool.release_to_pool(org.rep, [c], reason="客户暂无需求")
    with pytest.raises(InCooldown):
        pool.claim_from_pool(org.rep, [c])
    pool.claim_from_pool(org.rep2, [c])
    pool.release_to_pool(org.rep2, [c], reason="转回公海")
    with pytest.raises(InCooldown) as exc:
        pool.claim_from_pool(org.rep, [c, sales_pool[1]])
    assert exc.value.to_dict()["customer_ids"] == [c]
    assert exc.value.message.startswith(f"原负责人冷却期 30 天：{org.c_pool.name} 于 ")
    assert exc.value.message.endswith("还需 30 天才能再领取")
    assert holder_of(db, c) == (None, org.pool.id)
    # rep2's own cooldown, and nobody else's: rep3 may claim it.
    set_policy(db, org.rep2, cooldown_days=30)
    with pytest.raises(InCooldown):
        pool.claim_from_pool(org.rep2, [c])
    pool.claim_from_pool(org.rep_north, [c])


def test_release_needs_reason_and_scope(db, org, sales_pool):
    with pytest.raises(ValidationFailed) as exc:
        pool.release_to_pool(org.rep, [org.c_rep.id], reason="  ")
    assert exc.value.fields == {"reason": "请填写放弃原因"}
    with pytest.raises(OutOfScope):
        pool.release_to_pool(org.rep, [org.c_rep2.id], reason="不是我的")
    with pytest.raises(OutOfScope):
        pool.release_to_pool(org.manager, [org.c_north.id], reason="别的部门")
    pool.release_to_pool(org.manager, [org.c_rep2.id], reason="经理收回")
    assert holder_of(db, org.c_rep2.id) == (None, org.pool.id)
    own = db.session.get(Ownership, org.c_rep2.id)
    assert own.previous_owner_id == org.rep2.id and own.released_at is not None
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_rep2.id, OwnershipEvent.kind == "released")).scalar_one()
    assert (ev.from_owner_id, ev.to_pool_id, ev.actor_id, ev.reason) == (
        org.rep2.id, org.pool.id, org.manager.id, "经理收回")


def test_assign_within_scope_and_cap(db, org, sales_pool):
    assert assignment.assign(org.manager, sales_pool[:2], org.rep2.id) == sales_pool[:2]
    assert holder_of(db, sales_pool[0]) == (org.rep2.id, None)
    with pytest.raises(OutOfScope):
        assignment.assign(org.manager, sales_pool[2:3], org.rep_north.id)
    with pytest.raises(PermissionDenied):
        assignment.assign(org.rep, sales_pool[2:3], org.rep.id)
    set_policy(db, org.rep, max_customers=2)
    with pytest.raises(CapExceeded) as exc:
        assignment.assign(org.admin, sales_pool[2:4], org.rep.id)
    assert exc.value.message == "超出客户上限：上限 2，已拥有 1，本次分配 2"


def test_distribute_dry_run_then_commit(db, org, sales_pool):
    set_policy(db, org.rep, max_customers=3)          # rep owns 1: room for 2
    from app.services.org import mark_departed
    from tests.conftest import make_user
    from app.security import ROLE_REP

    gone = make_user("gone", ROLE_REP, org.east, org.manager)
    mark_departed(gone.id, org.admin.id)
    ids = sales_pool[:8]
    plan = assignment.distribute(org.manager, ids, [org.rep.id, org.rep2.id, gone.id,
                                                    org.rep_north.id], dry_run=True)
    out = plan.to_dict()
    counts = {a["username"]: a["count"] for a in out["assignments"]}
    assert counts == {"rep1": 2, "rep2": 6}
    assert {s["username"]: s["reason"] for s in out["skipped"]} == {
        "gone": "已停用或离职", "rep3": "不在您的数据权限内"}
    assert out["unassigned"] == []
    assert all(holder_of(db, i) == (None, org.pool.id) for i in ids)  # dry run changed nothing
    plan = assignment.distribute(org.manager, ids, [org.rep.id, org.rep2.id], dry_run=False)
    owners = [holder_of(db, i)[0] for i in ids]
    assert owners.count(org.rep.id) == 2 and owners.count(org.rep2.id) == 6
    n_events = db.session.execute(select(func.count()).select_from(OwnershipEvent).where(
        OwnershipEvent.kind == "assigned", OwnershipEvent.customer_id.in_(ids))).scalar_one()
    assert n_events == 8


def test_distribute_evens_out_and_reports_leftovers(db, org, sales_pool):
    set_policy(db, org.rep, max_customers=2)
    set_policy(db, org.rep2, max_customers=2)
    plan = assignment.distribute(org.admin, sales_pool[:5], [org.rep.id, org.rep2.id]).to_dict()
    assert [(a["username"], a["count"]) for a in plan["assignments"]] == [("rep1", 1), ("rep2", 1)]
    assert plan["unassigned"] == sales_pool[2:5]


def test_lock_cap_and_unlock(db, org, sales_pool):
    set_policy(db, org.rep, max_locked=1)
    pool.claim_from_pool(org.rep, sales_pool[:1])
    assert assignment.lock(org.rep, [org.c_rep.id]) == [org.c_rep.id]
    with pytest.raises(LockCapExceeded) as exc:
        assignment.lock(org.rep, sales_pool[:1])
    assert exc.value.message == "超出锁定上限：上限 1，已锁定 1，本次锁定 1"
    with pytest.raises(OutOfScope):
        assignment.lock(org.rep, [org.c_rep2.id])
    with pytest.raises(PermissionDenied):
        assignment.unlock(org.rep, [org.c_rep.id])
    with pytest.raises(OutOfScope):
        assignment.unlock(org.manager_north, [org.c_rep.id])
    assignment.unlock(org.manager, [org.c_rep.id])
    assert db.session.get(Ownership, org.c_rep.id).locked is False
