"""Pool administration: who administers which pool, who belongs to a pool, moving customers
between pools (admins only, all or nothing, a `moved` event each, never an owner), and the
shape of a membership."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import OwnershipEvent, Pool, PoolMember
from app.services import pool_admin
from app.services.errors import NotInPool, PermissionDenied, ValidationFailed
from tests.helpers import holder_of


@pytest.fixture
def east_pool(db, org):
    pool = Pool(name="华东公海")
    db.session.add(pool)
    db.session.commit()
    return pool


def _member(db, **kw) -> PoolMember:
    member = PoolMember(**kw)
    db.session.add(member)
    db.session.commit()
    return member


def test_admins_administer_every_pool_others_only_where_marked(db, org, east_pool):
    assert pool_admin.admin_pool_ids(org.admin) == {org.pool.id, east_pool.id}
    assert pool_admin.admin_pool_ids(org.manager) == set()
    # An admin membership of a department reaches the departments below it.
    _member(db, pool_id=east_pool.id, department_id=org.centre.id, is_admin=True)
    _member(db, pool_id=org.pool.id, department_id=org.east.id, is_admin=False)
    assert pool_admin.admin_pool_ids(org.manager) == {east_pool.id}
    assert pool_admin.admin_pool_ids(org.rep_north) == {east_pool.id}
    assert pool_admin.admin_pool_ids(org.staff) == set()
    _member(db, pool_id=org.pool.id, user_id=org.staff.id, is_admin=True)
    assert pool_admin.admin_pool_ids(org.staff) == {org.pool.id}


def test_pool_members_are_named_users_and_everyone_below_a_member_department(db, org, east_pool):
    def members(pool_ids):
        return set(db.session.execute(pool_admin.member_user_ids(pool_ids)).scalars())

    assert members([east_pool.id]) == set()
    _member(db, pool_id=east_pool.id, department_id=org.east.id)
    _member(db, pool_id=east_pool.id, user_id=org.staff.id)
    assert members([east_pool.id]) == {org.manager.id, org.rep.id, org.rep2.id, org.staff.id}
    _member(db, pool_id=org.pool.id, department_id=org.centre.id)
    assert members([org.pool.id]) == {org.manager.id, org.rep.id, org.rep2.id,
                                      org.manager_north.id, org.rep_north.id}
    assert members([]) == set()


def test_admin_moves_pool_customers_to_another_pool(db, org, east_pool):
    assert pool_admin.move_to_pool(org.admin, [str(org.c_pool.id)], east_pool.id,
                                   "  划给华东  ") == [org.c_pool.id]
    assert holder_of(db, org.c_pool.id) == (None, east_pool.id)
    event = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_pool.id, OwnershipEvent.kind == "moved")).scalar_one()
    assert (event.from_pool_id, event.to_pool_id, event.to_owner_id, event.actor_id,
            event.reason) == (org.pool.id, east_pool.id, None, org.admin.id, "划给华东")
    pool_admin.move_to_pool(org.admin, [org.c_pool.id], org.pool.id)
    last = db.session.execute(select(OwnershipEvent.reason).where(
        OwnershipEvent.kind == "moved").order_by(OwnershipEvent.id.desc())).scalars().first()
    assert last == "管理员移动公海"


@pytest.mark.parametrize("role", ["manager", "staff", "rep", "auditor"])
def test_only_admins_move_customers_between_pools(db, org, east_pool, role):
    with pytest.raises(PermissionDenied) as err:
        pool_admin.move_to_pool(getattr(org, role), [org.c_pool.id], east_pool.id)
    assert (err.value.code, err.value.message) == ("forbidden", "只有管理员可以在公海之间移动客户")
    assert holder_of(db, org.c_pool.id) == (None, org.pool.id)


def test_refused_moves_name_the_customers_and_move_nothing(db, org, east_pool):
    with pytest.raises(ValidationFailed) as err:
        pool_admin.move_to_pool(org.admin, [org.c_pool.id], None)
    assert err.value.fields == {"pool_id": "请选择目标公海"}
    with pytest.raises(ValidationFailed) as err:
        pool_admin.move_to_pool(org.admin, [org.c_pool.id], 999999)
    assert err.value.fields == {"pool_id": "请选择目标公海"}
    with pytest.raises(NotInPool) as err:   # an owned customer is not moved out of its owner
        pool_admin.move_to_pool(org.admin, [org.c_pool.id, org.c_rep.id], east_pool.id)
    assert (err.value.code, err.value.message, err.value.details) == (
        "not_in_pool", "客户已不在公海中：杭州云帆科技有限公司", {"customer_ids": [org.c_rep.id]})
    with pytest.raises(ValidationFailed) as err:
        pool_admin.move_to_pool(org.admin, [org.c_pool.id], org.pool.id)
    assert err.value.fields == {"pool_id": "这些客户已在『默认公海』中：上海申达物流有限公司"}
    with pytest.raises(ValidationFailed) as err:
        pool_admin.move_to_pool(org.admin, [], east_pool.id)
    assert err.value.fields == {"customer_ids": "请至少选择一个客户"}
    assert holder_of(db, org.c_pool.id) == (None, org.pool.id)
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)
    assert db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.kind == "moved")).first() is None


def test_a_membership_names_a_pool_and_one_department_or_user(db, org):
    pool_admin.validate_member(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    pool_admin.validate_member(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    with pytest.raises(ValidationFailed) as err:
        pool_admin.validate_member(PoolMember(department_id=org.east.id, user_id=org.rep.id))
    assert err.value.fields == {"pool": "请选择公海",
                                "department": "请选择一个部门或一个用户（二选一）"}
    with pytest.raises(ValidationFailed) as err:
        pool_admin.validate_member(PoolMember(pool_id=org.pool.id))
    assert err.value.fields == {"department": "请选择一个部门或一个用户（二选一）"}
