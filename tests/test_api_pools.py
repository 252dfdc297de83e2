"""POST /api/v1/ownership/move-pool: admins move pool customers between pools."""
from __future__ import annotations

import pytest

from app.models import Pool
from app.services import customers
from tests.helpers import FAB_FORBIDDEN, holder_of


@pytest.fixture
def south(db, org):
    pool = Pool(name="华南公海")
    db.session.add(pool)
    db.session.commit()
    return pool


def test_admin_moves_and_refusals_name_the_rule(api, db, org, south):
    admin = api("admin")
    resp = admin("POST", "/api/v1/ownership/move-pool",
                 json={"customer_ids": [org.c_pool.id], "pool_id": south.id, "reason": "区域调整"})
    assert resp.status_code == 200 and resp.get_json()["customer_ids"] == [org.c_pool.id]
    assert holder_of(db, org.c_pool.id) == (None, south.id)
    # An owned customer is not in a pool: refused, nothing moves.
    resp = admin("POST", "/api/v1/ownership/move-pool",
                 json={"customer_ids": [org.c_rep.id], "pool_id": south.id})
    assert resp.status_code == 409 and resp.get_json()["code"] == "not_in_pool"
    resp = admin("POST", "/api/v1/ownership/move-pool", json={"customer_ids": [org.c_pool.id]})
    assert resp.status_code == 400 and resp.get_json()["fields"] == {"pool_id": "请选择目标公海"}


def test_all_or_nothing(api, db, org, south):
    other = customers.create_customer(org.staff, {"name": "另一个公海客户"})
    resp = api("admin")("POST", "/api/v1/ownership/move-pool",
                        json={"customer_ids": [other.id, org.c_rep.id], "pool_id": south.id})
    assert (resp.status_code, resp.get_json()) == (409, {
        "code": "not_in_pool", "message": "客户已不在公海中：杭州云帆科技有限公司",
        "customer_ids": [org.c_rep.id]})
    assert holder_of(db, other.id) == (None, org.pool.id)


@pytest.mark.parametrize("user", ["manager1", "rep1", "staff1", "auditor1"])
def test_only_admins_move(api, db, org, south, user):
    resp = api(user)("POST", "/api/v1/ownership/move-pool",
                     json={"customer_ids": [org.c_pool.id], "pool_id": south.id})
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    assert holder_of(db, org.c_pool.id) == (None, org.pool.id)


def test_pool_admin_rep_assigns_via_the_api_and_others_are_refused(api, db, org, south):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    rep1, rep2 = api("rep1"), api("rep2")
    body = {"customer_ids": [org.c_pool.id], "owner_id": org.rep2.id}
    resp = rep2("POST", "/api/v1/ownership/assign", json=body)
    assert resp.status_code == 403
    assert resp.get_json()["message"] == "只有销售经理、管理员和公海管理员可以分配客户"
    # Not a member of the pool, not in rep1's scope: refused by name.
    resp = rep1("POST", "/api/v1/ownership/assign",
                json={"customer_ids": [org.c_pool.id], "owner_id": org.rep_north.id})
    assert resp.status_code == 404 and resp.get_json()["code"] == "out_of_scope"
    # Pool admins still may not unlock.
    resp = rep1("POST", "/api/v1/ownership/unlock", json={"customer_ids": [org.c_rep.id]})
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    resp = rep1("POST", "/api/v1/ownership/assign", json=body)
    assert resp.status_code == 200
    assert holder_of(db, org.c_pool.id) == (org.rep2.id, None)
    # Customers of a pool rep1 does not administer stay out of reach.
    other = customers.create_customer(org.staff, {"name": "华南公海客户"}, pool_id=south.id)
    resp = rep1("POST", "/api/v1/ownership/distribute", json={
        "customer_ids": [other.id], "owner_ids": [org.rep2.id], "dry_run": True})
    assert resp.status_code == 404 and resp.get_json()["code"] == "not_pool_member"
