"""/api/v1/transfers/ per role."""
from __future__ import annotations

from app.models import Ownership

NO_TRANSFER = {"code": "not_found", "message": "转移申请不存在"}


def test_apply_approve_over_the_api(api, db, org):
    rep, mgr = api("rep1"), api("manager1")
    resp = rep("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep2.id, "reason": "客户要求",
        "trigger": "customer_request", "handover_note": "合同在走流程"})
    assert resp.status_code == 200, resp.get_json()
    tid = resp.get_json()["id"]
    assert resp.get_json()["result"]["status"] == "pending"
    resp = rep("POST", f"/api/v1/transfers/{tid}/approve", json={})
    assert (resp.status_code, resp.get_json()) == (403, {"message": "Forbidden"})
    other = api("rep3")
    resp = other("GET", f"/api/v1/transfers/{tid}")
    assert (resp.status_code, resp.get_json()) == (404, NO_TRANSFER)
    assert tid not in [t["id"] for t in other("GET", "/api/v1/transfers/").get_json()["result"]]
    assert tid in [t["id"] for t in api("auditor1")("GET", "/api/v1/transfers/").get_json()["result"]]
    wrong = api("manager2")("POST", f"/api/v1/transfers/{tid}/approve", json={})
    # Not an approver of this request: not visible either.
    assert (wrong.status_code, wrong.get_json()) == (404, NO_TRANSFER)
    done = mgr("POST", f"/api/v1/transfers/{tid}/approve", json={"note": "同意"})
    assert done.status_code == 200
    assert done.get_json()["result"]["status"] == "completed"
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).owner_id == org.rep2.id


def test_refusals_are_json_4xx(api, org):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/transfers/", json={"customer_ids": [org.c_rep.id],
                                                   "to_owner_id": org.rep2.id, "reason": ""})
    assert resp.status_code == 400
    assert resp.get_json()["fields"]["reason"] == "请填写转移原因"
    resp = rep("POST", "/api/v1/transfers/", json={"customer_ids": [org.c_rep.id]})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"to_owner_id": "请选择接收人"}
    resp = api("auditor1")("POST", "/api/v1/transfers/", json={})
    assert (resp.status_code, resp.get_json()) == (403, {"message": "Forbidden"})
    resp = rep("POST", "/api/v1/transfers/999/cancel", json={})
    assert (resp.status_code, resp.get_json()) == (404, NO_TRANSFER)
