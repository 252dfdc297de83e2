"""/api/v1/pool/* and /api/v1/ownership/*: per role, with the exact refusal codes."""
from __future__ import annotations

import pytest

from app.models import Ownership, Policy, PoolMember
from app.services import customers
from tests.helpers import FAB_FORBIDDEN, holder_of


@pytest.fixture
def pool_ids(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    return [org.c_pool.id] + [customers.create_customer(org.staff, {"name": f"接口公海{i}"}).id
                              for i in range(5)]


def test_rep_claims_and_releases(api, db, org, pool_ids):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/pool/claim", json={"customer_ids": pool_ids[:2]})
    assert resp.status_code == 200
    assert resp.get_json()["customer_ids"] == pool_ids[:2]
    assert holder_of(db, pool_ids[0]) == (org.rep.id, None)
    resp = rep("POST", "/api/v1/pool/claim", json={"customer_ids": [pool_ids[0]]})
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "not_in_pool"
    resp = rep("POST", "/api/v1/pool/release", json={"customer_ids": [pool_ids[0]]})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"reason": "请填写放弃原因"}
    resp = rep("POST", "/api/v1/pool/release",
               json={"customer_ids": [pool_ids[0]], "reason": "无意向"})
    assert resp.status_code == 200
    assert holder_of(db, pool_ids[0]) == (None, org.pool.id)


def test_claim_refusals_carry_codes_and_numbers(api, db, org, pool_ids):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=2))
    db.session.commit()
    resp = api("rep1")("POST", "/api/v1/pool/claim", json={"customer_ids": pool_ids[:2]})
    assert resp.status_code == 409
    assert resp.get_json() == {"code": "cap_exceeded", "message": "超出客户上限：上限 2，已拥有 1，本次领取 2",
                               "cap": 2, "owned": 1, "adding": 2}
    assert holder_of(db, pool_ids[0]) == (None, org.pool.id)


@pytest.mark.parametrize("body,field", [
    ({"customer_ids": []}, "customer_ids"),
    ({"customer_ids": ["x"]}, "customer_ids"),
    ({"customer_ids": [1], "pool_id": "abc"}, "pool_id"),
])
def test_bad_claim_bodies_are_400(api, org, pool_ids, body, field):
    resp = api("rep1")("POST", "/api/v1/pool/claim", json=body)
    assert resp.status_code == 400
    assert field in resp.get_json()["fields"]


def test_non_json_is_400(api, org, pool_ids):
    resp = api("rep1")("POST", "/api/v1/pool/claim", data="customer_ids=1")
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"body": "请求体必须是 JSON 对象"}


@pytest.mark.parametrize("username,path,status", [
    ("staff1", "/api/v1/pool/claim", 403),
    ("auditor1", "/api/v1/pool/claim", 403),
    ("rep1", "/api/v1/ownership/assign", 403),
    ("rep1", "/api/v1/ownership/distribute", 403),
    ("rep1", "/api/v1/ownership/unlock", 403),
    ("staff1", "/api/v1/ownership/assign", 403),
    ("auditor1", "/api/v1/pool/release", 403),
])
def test_roles_without_the_permission_get_403(api, db, org, pool_ids, username, path, status):
    before = holder_of(db, pool_ids[0])
    body = {"customer_ids": [pool_ids[0]], "owner_id": org.rep.id, "reason": "x"}
    if path.endswith("/distribute"):
        body = {"customer_ids": [pool_ids[0]], "owner_ids": [org.rep.id]}
    resp = api(username)("POST", path, json=body)
    assert resp.status_code == status
    assert holder_of(db, pool_ids[0]) == before


def test_manager_assigns_and_distributes(api, db, org, pool_ids):
    mgr = api("manager1")
    resp = mgr("POST", "/api/v1/ownership/assign",
               json={"customer_ids": [pool_ids[0]], "owner_id": org.rep2.id})
    assert resp.status_code == 200
    assert holder_of(db, pool_ids[0]) == (org.rep2.id, None)
    resp = mgr("POST", "/api/v1/ownership/assign",
               json={"customer_ids": [pool_ids[1]], "owner_id": org.rep_north.id})
    assert resp.status_code == 404
    assert resp.get_json()["code"] == "out_of_scope"
    plan = mgr("POST", "/api/v1/ownership/distribute",
               json={"customer_ids": pool_ids[1:5], "owner_ids": [org.rep.id, org.rep2.id],
                     "dry_run": True})
    assert plan.status_code == 200
    body = plan.get_json()
    assert body["dry_run"] is True
    # rep1 owns 1 and rep2 owns 2 (one just assigned): fewest first, then alternate.
    assert {a["username"]: (a["owned_before"], a["count"]) for a in body["assignments"]} == {
        "rep1": (1, 3), "rep2": (2, 1)}
    assert holder_of(db, pool_ids[1]) == (None, org.pool.id)
    done = mgr("POST", "/api/v1/ownership/distribute",
               json={"customer_ids": pool_ids[1:5], "owner_ids": [org.rep.id, org.rep2.id],
                     "dry_run": False})
    assert done.status_code == 200
    owners = [holder_of(db, i)[0] for i in pool_ids[1:5]]
    assert sorted(owners) == sorted([org.rep.id] * 3 + [org.rep2.id])


def test_lock_then_unlock(api, db, org):
    assert api("rep1")("POST", "/api/v1/ownership/lock",
                       json={"customer_ids": [org.c_rep.id]}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is True
    resp = api("manager2")("POST", "/api/v1/ownership/unlock", json={"customer_ids": [org.c_rep.id]})
    assert (resp.status_code, resp.get_json()) == (404, {
        "code": "out_of_scope", "message": "客户不存在或不在您的数据权限内",
        "customer_ids": [org.c_rep.id]})
    assert api("manager1")("POST", "/api/v1/ownership/unlock",
                           json={"customer_ids": [org.c_rep.id]}).status_code == 200
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is False


def test_departure_handover_is_admin_only_and_previews(api, db, org):
    body = {"user_id": org.rep.id, "mode": "rep", "owner_id": org.rep2.id}
    resp = api("manager1")("POST", "/api/v1/ownership/departure", json=body)
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)
    preview = api("admin")("POST", "/api/v1/ownership/departure", json=dict(body, dry_run=True))
    assert preview.status_code == 200
    assert preview.get_json()["assignments"] == [
        {"owner_id": org.rep2.id, "count": 1, "customer_ids": [org.c_rep.id]}]
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)
    done = api("admin")("POST", "/api/v1/ownership/departure", json=dict(body, dry_run=False))
    assert done.status_code == 200
    assert holder_of(db, org.c_rep.id) == (org.rep2.id, None)


def test_apply_rules_endpoint(api, db, org, pool_ids):
    from app.models import AssignmentRule

    db.session.add(AssignmentRule(name="全部给 rep2", target_type="user", target_user_id=org.rep2.id))
    db.session.commit()
    body = {"customer_ids": pool_ids[:2], "dry_run": True}
    resp = api("rep1")("POST", "/api/v1/ownership/apply-rules", json=body)
    assert (resp.status_code, resp.get_json()) == (403, {
        "code": "forbidden", "message": "只有销售经理、管理员和公海管理员可以分配客户"})
    resp = api("manager1")("POST", "/api/v1/ownership/apply-rules", json=body)
    assert resp.status_code == 200
    assert [p["owner_id"] for p in resp.get_json()["plan"]] == [org.rep2.id, org.rep2.id]
    assert holder_of(db, pool_ids[0]) == (None, org.pool.id)
    resp = api("manager1")("POST", "/api/v1/ownership/apply-rules", json=dict(body, dry_run=False))
    assert resp.status_code == 200
    assert holder_of(db, pool_ids[0]) == (org.rep2.id, None)
