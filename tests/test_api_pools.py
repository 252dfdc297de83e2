"""POST /api/v1/ownership/move-pool: admins move pool customers between pools."""
from __future__ import annotations

import pytest

from app.models import Pool
from app.services import customers
from tests.helpers import holder_of


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
    assert resp.status_code == 409
    assert holder_of(db, other.id) == (None, org.pool.id)


@pytest.mark.parametrize("user", ["manager1", "rep1", "staff1", "auditor1"])
def test_only_admins_move(api, db, org, south, user):
    resp = api(user)("POST", "/api/v1/ownership/move-pool",
                     json={"customer_ids": [org.c_pool.id], "pool_id": south.id})
    assert resp.status_code == 403
    assert holder_of(db, org.c_pool.id) == (None, org.pool.id)
