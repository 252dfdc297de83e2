"""/api/v1/transfers/ per role."""
from __future__ import annotations

from app.models import Ownership


def test_apply_approve_over_the_api(api, db, org):
    rep, mgr = api("rep1"), api("manager1")
    resp = rep("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep2.id, "reason": "客户要求",
        "trigger": "customer_request", "handover_note": "合同在走流程"})
    assert resp.status_code == 200, resp.get_json()
    tid = resp.get_json()["id"]
    assert resp.get_json()["result"]["status"] == "pending"
    assert rep("POST", f"/api/v1/transfers/{tid}/approve", json={}).status_code == 403
    other = api("rep3")
    assert other("GET", f"/api/v1/transfers/{tid}").status_code == 404
    assert tid not in [t["id"] for t in other("GET", "/api/v1/transfers/").get_json()["result"]]
    assert tid in [t["id"] for t in api("auditor1")("GET", "/api/v1/transfers/").get_json()["result"]]
    wrong = api("manager2")("POST", f"/api/v1/transfers/{tid}/approve", json={})
    assert wrong.status_code == 404  # not an approver of this request: not visible either
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
    assert api("auditor1")("POST", "/api/v1/transfers/", json={}).status_code == 403
    assert rep("POST", "/api/v1/transfers/999/cancel", json={}).status_code == 404
