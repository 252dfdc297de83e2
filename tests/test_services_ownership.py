"""Ownership primitives: the default pool, who can own customers, where a new customer goes
with its 'created' event, the pool moves that re-check the pool in their WHERE, the event log
and the snapshot. (The cap counting is tested with its own module.)"""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import Customer, Ownership, OwnershipEvent, Pool, User
from app.models.customer import utcnow
from app.services import ownership
from app.services.errors import NotFound, ValidationFailed
from tests.helpers import holder_of

NOW = dt.datetime(2027, 3, 1, 9, 30)


def _events(db, customer_id: int) -> list[tuple]:
    db.session.commit()
    return [tuple(r) for r in db.session.execute(
        select(OwnershipEvent.kind, OwnershipEvent.actor_id, OwnershipEvent.from_owner_id,
               OwnershipEvent.from_pool_id, OwnershipEvent.to_owner_id,
               OwnershipEvent.to_pool_id, OwnershipEvent.reason, OwnershipEvent.rule)
        .where(OwnershipEvent.customer_id == customer_id).order_by(OwnershipEvent.id))]


@pytest.fixture
def other_pool(db, org):
    pool = Pool(name="华东公海")
    db.session.add(pool)
    db.session.commit()
    return pool


def test_the_default_pool_and_its_absence(db, org, other_pool):
    assert ownership.default_pool().id == org.pool.id
    db.session.execute(update(Pool).values(is_default=False))
    err = pytest.raises(NotFound, ownership.default_pool).value
    assert (err.code, err.message) == ("no_default_pool", "未配置默认公海，请先运行 flask crm init")


def test_only_an_active_employee_can_own_customers(db, org):
    assert ownership.ensure_active_owner(org.rep.id).id == org.rep.id
    row = ownership.lock_active_rep(org.rep.id)
    assert (row.active, row.department_id, row.username, row.department_path) == (
        True, org.east.id, "rep1", org.east.path)
    db.session.rollback()
    for call in (ownership.ensure_active_owner, ownership.lock_active_rep):
        err = pytest.raises(ValidationFailed, call, 999999).value
        assert err.fields == {"owner": "负责人不存在"}
    db.session.execute(update(User).where(User.id == org.rep2.id).values(active=False))
    db.session.commit()
    err = pytest.raises(ValidationFailed, ownership.ensure_active_owner, org.rep2.id).value
    assert err.fields == {"owner": "测试rep2 已停用或离职，不能成为负责人"}
    err = pytest.raises(ValidationFailed, ownership.lock_active_rep, org.rep2.id).value
    assert err.fields == {"owner": "rep2 已停用或离职，不能成为负责人"}


def test_a_new_customer_goes_to_its_owner_or_its_pool_with_a_created_event(db, org,
                                                                           other_pool):
    owned = Customer(name="宁波海联贸易有限公司", customer_type="company")
    db.session.add(owned)
    placed = ownership.place_new_customer(owned, actor_id=org.manager.id, owner_id=org.rep.id,
                                          pool_id=None, how="rule-assigned", rule="rule:3")
    assert (placed.owner_id, placed.pool_id, placed.first_owner_id, placed.acquired_how,
            placed.locked, placed.won) == (org.rep.id, None, org.rep.id, "rule-assigned",
                                           False, False)
    assert _events(db, owned.id) == [("created", org.manager.id, None, None, org.rep.id, None,
                                      "新建客户", "rule:3")]
    pooled = Customer(name="温州瓯江实业有限公司", customer_type="company")
    db.session.add(pooled)
    ownership.place_new_customer(pooled, actor_id=None, owner_id=None, pool_id=other_pool.id,
                                 reason="导入")
    assert holder_of(db, pooled.id) == (None, other_pool.id)
    assert _events(db, pooled.id) == [("created", None, None, None, None, other_pool.id, "导入",
                                       None)]


def test_a_new_customer_needs_exactly_one_existing_place(db, org):
    def place(**kw):
        customer = Customer(name="台州某某有限公司", customer_type="company")
        db.session.add(customer)
        try:
            return ownership.place_new_customer(customer, actor_id=org.admin.id, **kw)
        finally:
            db.session.rollback()

    for kw in ({"owner_id": None, "pool_id": None}, {"owner_id": org.rep.id,
                                                     "pool_id": org.pool.id}):
        with pytest.raises(ValueError, match="exactly one of owner_id, pool_id"):
            place(**kw)
    assert pytest.raises(ValidationFailed, place, owner_id=None,
                         pool_id=999999).value.fields == {"pool": "公海不存在"}
    assert pytest.raises(ValidationFailed, place, owner_id=999999,
                         pool_id=None).value.fields == {"owner": "负责人不存在"}
    assert db.session.execute(select(Customer).where(
        Customer.name == "台州某某有限公司")).first() is None


def test_a_deletion_is_logged_with_where_the_customer_was(db, org):
    ownership.record_deletion(org.c_rep.id, db.session.get(Ownership, org.c_rep.id),
                              org.admin.id, "重复录入")
    ownership.record_deletion(org.c_pool.id, None, None, "清理")
    assert _events(db, org.c_rep.id)[-1] == ("deleted", org.admin.id, org.rep.id, None, None,
                                             None, "重复录入", None)
    assert _events(db, org.c_pool.id)[-1] == ("deleted", None, None, None, None, None, "清理",
                                              None)


def test_move_from_pool_takes_only_customers_still_in_a_pool(db, org):
    moved = ownership.move_from_pool([org.c_pool.id, org.c_rep2.id], org.rep.id, now=NOW)
    assert moved == 1
    own = db.session.get(Ownership, org.c_pool.id)
    assert (own.owner_id, own.pool_id, own.acquired_at, own.acquired_how, own.locked,
            own.last_followup_at) == (org.rep.id, None, NOW, "claimed", False, None)
    assert holder_of(db, org.c_rep2.id) == (org.rep2.id, None)


def test_take_from_pool_moves_and_logs_only_what_is_still_in_the_checked_pool(db, org,
                                                                               other_pool):
    moved = ownership.take_from_pool(
        {org.pool.id: [org.c_pool.id], other_pool.id: [org.c_rep2.id]}, org.rep.id, now=NOW,
        how="assigned", event={"kind": "assigned", "actor_id": org.manager.id,
                               "reason": "分配", "rule": "even distribution"})
    assert moved == 1
    assert holder_of(db, org.c_pool.id) == (org.rep.id, None)
    assert _events(db, org.c_pool.id)[-1] == ("assigned", org.manager.id, None, org.pool.id,
                                              org.rep.id, None, "分配", "even distribution")
    assert [e[0] for e in _events(db, org.c_rep2.id)] == ["created"]


def test_move_between_pools_leaves_owned_customers_alone(db, org, other_pool):
    assert ownership.move_between_pools([org.c_pool.id, org.c_rep.id], other_pool.id) == 1
    assert holder_of(db, org.c_pool.id) == (None, other_pool.id)
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)


def test_record_events_fills_the_columns_nobody_gave(db, org):
    ownership.record_events([{"customer_id": org.c_rep.id, "kind": "reclaimed",
                              "from_owner_id": org.rep.id, "to_pool_id": org.pool.id,
                              "reason": "30 天未跟进"},
                             {"customer_id": org.c_pool.id, "kind": "moved",
                              "actor_id": org.admin.id, "created_at": NOW}], utcnow())
    assert _events(db, org.c_rep.id)[-1] == ("reclaimed", None, org.rep.id, None, None,
                                             org.pool.id, "30 天未跟进", None)
    assert _events(db, org.c_pool.id)[-1] == ("moved", org.admin.id, None, None, None, None,
                                              None, None)
    assert db.session.execute(select(OwnershipEvent.created_at).where(
        OwnershipEvent.customer_id == org.c_pool.id, OwnershipEvent.kind == "moved")
    ).scalar_one() == NOW


def test_snapshot_reads_plain_rows_of_the_given_customers(db, org):
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(locked=True))
    snap = ownership.snapshot([org.c_rep.id, org.c_pool.id, 999999])
    assert set(snap) == {org.c_rep.id, org.c_pool.id}
    assert (snap[org.c_rep.id].owner_id, snap[org.c_rep.id].pool_id,
            snap[org.c_rep.id].locked) == (org.rep.id, None, True)
    assert (snap[org.c_pool.id].owner_id, snap[org.c_pool.id].pool_id) == (None, org.pool.id)
    # Rows, not ORM objects: a later bulk UPDATE does not rewrite what was read.
    ownership.move_from_pool([org.c_pool.id], org.rep.id, now=NOW)
    assert snap[org.c_pool.id].pool_id == org.pool.id
    assert ownership.snapshot([]) == {}


def test_chunks_split_long_id_lists():
    assert list(ownership.chunks([1, 2, 3, 4, 5], size=2)) == [[1, 2], [3, 4], [5]]
    assert list(ownership.chunks([])) == []
    assert [len(c) for c in ownership.chunks(list(range(12001)))] == [5000, 5000, 2001]
