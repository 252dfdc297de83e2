"""Assigning and distributing pool customers, and locking key accounts: who may, to whom,
from which pools, and the exact refusal of each rule (test_services_pool covers the cap and
the even spread)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Ownership, OwnershipEvent, Pool, PoolMember
from app.services import assignment, caps, customers
from app.services.errors import NotInPool, OutOfScope, PermissionDenied, ValidationFailed
from app.security import ROLE_REP
from app.services.org import mark_departed
from tests.conftest import make_user
from tests.helpers import holder_of


@pytest.fixture
def pools(db, org):
    """The default pool open to the east department (three customers in it) and a second
    pool, 华北公海, of the north department, with one customer."""
    north = Pool(name="华北公海")
    db.session.add(north)
    db.session.flush()
    db.session.add_all([PoolMember(pool_id=org.pool.id, department_id=org.east.id),
                        PoolMember(pool_id=north.id, department_id=org.north.id)])
    db.session.commit()
    east_ids = [org.c_pool.id] + [customers.create_customer(
        org.staff, {"name": f"华东公海客户{i}"}).id for i in range(2)]
    north_id = customers.create_customer(org.staff, {"name": "华北公海客户"},
                                         pool_id=north.id).id
    return {"east": east_ids, "north": north_id, "north_pool": north}


def _refusal(err_type, call):
    with pytest.raises(err_type) as err:
        call()
    return err.value


def test_assign_moves_the_customers_and_logs_who_and_why(db, org, pools):
    ids = pools["east"][:2]
    assert assignment.assign(org.manager, ids, org.rep2.id, reason="重点跟进") == ids
    assert [holder_of(db, i) for i in ids] == [(org.rep2.id, None)] * 2
    events = db.session.execute(select(
        OwnershipEvent.customer_id, OwnershipEvent.from_pool_id, OwnershipEvent.to_owner_id,
        OwnershipEvent.actor_id, OwnershipEvent.reason).where(
        OwnershipEvent.kind == "assigned").order_by(OwnershipEvent.customer_id)).all()
    assert [tuple(e) for e in events] == [(i, org.pool.id, org.rep2.id, org.manager.id,
                                           "重点跟进") for i in ids]
    assert db.session.get(Ownership, ids[0]).acquired_how == "assigned"


@pytest.mark.parametrize("role", ["rep", "staff", "auditor"])
def test_only_managers_admins_and_pool_admins_assign(db, org, pools, role):
    err = _refusal(PermissionDenied, lambda: assignment.assign(
        getattr(org, role), pools["east"][:1], org.rep.id))
    assert (err.code, err.message) == ("forbidden", "只有销售经理、管理员和公海管理员可以分配客户")
    err = _refusal(PermissionDenied, lambda: assignment.distribute(
        getattr(org, role), pools["east"][:1], [org.rep.id]))
    assert err.message == "只有销售经理、管理员和公海管理员可以分配客户"
    assert holder_of(db, pools["east"][0]) == (None, org.pool.id)


def test_assign_refusals_name_the_rule_and_the_customers(db, org, pools):
    east = pools["east"]
    err = _refusal(OutOfScope, lambda: assignment.assign(org.manager, east[:1],
                                                         org.rep_north.id))
    assert (err.code, err.message) == ("out_of_scope", "测试rep3 不在您的数据权限内")
    err = _refusal(OutOfScope, lambda: assignment.assign(org.manager, [pools["north"]],
                                                         org.rep.id))
    assert (err.code, err.message, err.details) == (
        "not_pool_member", "这些客户所在的公海不在您的管理范围：华北公海客户",
        {"customer_ids": [pools["north"]]})
    err = _refusal(NotInPool, lambda: assignment.assign(org.manager, [east[0], org.c_rep2.id],
                                                        org.rep.id))
    assert (err.code, err.message) == ("not_in_pool", "客户已不在公海中：苏州恒信电子有限公司")
    gone = make_user("gone", ROLE_REP, org.east, org.manager)
    mark_departed(gone.id, org.admin.id)
    err = _refusal(ValidationFailed, lambda: assignment.assign(org.manager, east[:1], gone.id))
    assert err.fields == {"owner": "测试gone 已停用或离职，不能成为负责人"}
    err = _refusal(ValidationFailed, lambda: assignment.assign(org.manager, ["x"], org.rep.id))
    assert err.fields == {"customer_ids": "客户编号必须是正整数列表"}
    assert [holder_of(db, i) for i in east] == [(None, org.pool.id)] * 3


def test_a_pool_admin_hands_out_their_pool_to_its_members_only(db, org, pools):
    """rep2, marked admin of 华北公海, may give its customers to the pool's members (the
    north department), who are outside a rep's data scope; not the default pool's
    customers, and not to outsiders such as rep1."""
    db.session.add(PoolMember(pool_id=pools["north_pool"].id, user_id=org.rep2.id,
                              is_admin=True))
    db.session.commit()
    assert assignment.distributable_pool_ids(org.rep2) == {pools["north_pool"].id}
    err = _refusal(OutOfScope, lambda: assignment.assign(org.rep2, [pools["north"]],
                                                         org.rep.id))
    assert err.message == "测试rep1 不在您的数据权限内"
    err = _refusal(OutOfScope, lambda: assignment.assign(org.rep2, pools["east"][:1],
                                                         org.rep2.id))
    assert err.code == "not_pool_member"
    assert assignment.assign(org.rep2, [pools["north"]], org.rep_north.id) == [pools["north"]]
    assert holder_of(db, pools["north"]) == (org.rep_north.id, None)


def test_distribute_needs_at_least_one_rep(db, org, pools):
    for owner_ids in ([], ["abc"], None):
        err = _refusal(ValidationFailed, lambda: assignment.distribute(
            org.manager, pools["east"], owner_ids))
        assert err.fields == {"owner_ids": "请至少选择一名销售"}


def test_distribute_skips_unknown_reps_and_a_dry_run_changes_nothing(db, org, pools):
    plan = assignment.distribute(org.manager, pools["east"], [org.rep.id, 999999])
    assert plan.to_dict() == {
        "dry_run": True, "unassigned": [],
        "skipped": [{"owner_id": 999999, "reason": "用户不存在"}],
        "assignments": [{"owner_id": org.rep.id, "username": "rep1", "owned_before": 1,
                         "cap": 100, "count": 3, "customer_ids": pools["east"]}]}
    assert [holder_of(db, i) for i in pools["east"]] == [(None, org.pool.id)] * 3


def test_only_the_owner_locks_and_locking_twice_counts_once(db, org, pools):
    assert assignment.lock(org.rep, [org.c_rep.id]) == [org.c_rep.id]
    assert assignment.lock(org.rep, [org.c_rep.id]) == []   # already locked: nothing new
    assert caps.locked_count(org.rep.id) == 1
    for actor, ids in ((org.rep, [org.c_rep2.id]), (org.manager, [org.c_rep.id]),
                       (org.rep, [pools["east"][0]])):
        err = _refusal(OutOfScope, lambda: assignment.lock(actor, ids))
        assert (err.code, err.message, err.details) == (
            "out_of_scope", "只能锁定自己负责的客户", {"customer_ids": ids})


def test_lock_and_unlock_write_one_audit_row_per_customer_that_changed(db, org, pools):
    def rows():
        return [(a.actor_id, a.action, a.object_type, a.object_id, a.changes)
                for a in db.session.execute(select(AuditLog).where(
                    AuditLog.action.in_(("lock", "unlock"))).order_by(AuditLog.id)).scalars()]

    assignment.lock(org.rep, [org.c_rep.id])
    assignment.lock(org.rep, [org.c_rep.id])  # nothing new: no second row
    assert rows() == [(org.rep.id, "lock", "customer", org.c_rep.id, {"locked": [False, True]})]
    # Unlocking a locked and an unlocked customer: a row for the one that changed.
    assignment.unlock(org.admin, [org.c_rep.id, org.c_rep2.id])
    assert rows()[1:] == [(org.admin.id, "unlock", "customer", org.c_rep.id,
                           {"locked": [True, False]})]
    # A refused lock writes nothing.
    with pytest.raises(OutOfScope):
        assignment.lock(org.rep, [org.c_rep2.id])
    assert len(rows()) == 2


def test_unlock_is_for_managers_in_scope_and_admins(db, org, pools):
    assignment.lock(org.rep, [org.c_rep.id])
    assignment.lock(org.rep_north, [org.c_north.id])
    err = _refusal(PermissionDenied, lambda: assignment.unlock(org.rep, [org.c_rep.id]))
    assert (err.code, err.message) == ("forbidden", "只有销售经理和管理员可以解锁客户")
    err = _refusal(OutOfScope, lambda: assignment.unlock(org.manager, [org.c_rep.id,
                                                                       org.c_north.id]))
    assert (err.message, err.details) == ("客户不存在或不在您的数据权限内",
                                          {"customer_ids": [org.c_north.id]})
    assert db.session.get(Ownership, org.c_rep.id).locked is True
    assert assignment.unlock(org.admin, [org.c_rep.id, org.c_north.id]) == [org.c_rep.id,
                                                                          org.c_north.id]
    assert caps.locked_count(org.rep.id) == caps.locked_count(org.rep_north.id) == 0
