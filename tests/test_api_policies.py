"""/api/v1/policies/: Admin writes (validated, audited), Sales Manager and Auditor read, the
others are refused; /effective/<user_id> answers with values and sources within scope."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Policy
from app.services import policies


def test_admin_creates_updates_and_deletes_a_department_policy_with_audit(api, db, org):
    admin = api("admin")
    resp = admin("POST", "/api/v1/policies/", json={
        "scope": "department", "department_id": org.east.id, "max_customers": 40,
        "count_won": True})
    assert resp.status_code == 200, resp.get_json()
    pid = resp.get_json()["id"]
    assert policies.effective_policy(org.rep.id)["max_customers"].value == 40
    resp = admin("PUT", f"/api/v1/policies/{pid}", json={"max_customers": 45,
                                                         "daily_claim_limit": 5})
    assert resp.get_json()["result"]["max_customers"] == 45
    update = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "policy", AuditLog.action == "update")).scalar_one()
    assert update.actor_id == org.admin.id
    assert update.changes == {"max_customers": [40, 45], "daily_claim_limit": [None, 5]}
    assert admin("DELETE", f"/api/v1/policies/{pid}").status_code == 200
    db.session.commit()
    assert db.session.get(Policy, pid) is None
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "policy", AuditLog.action == "delete")).scalar_one()


@pytest.mark.parametrize("body,field,message", [
    ({"scope": "department"}, "department", "部门策略须选择部门，且不选用户"),
    ({"scope": "user", "user_id": 999999}, "user_id", "用户不存在"),
    ({"scope": "global", "max_customers": -1}, "max_customers", "不能为负数"),
    ({"scope": "user", "user_id": "x"}, "user_id", "user_id 必须是整数或 null"),
    ({"scope": "global", "colour": "red"}, "colour", "不能修改或不存在的字段"),
    ({"scope": "global", "count_won": "yes"}, "count_won", "count_won 必须是 true、false 或 null"),
])
def test_invalid_policies_are_refused_with_the_field(api, db, org, body, field, message):
    before = db.session.execute(select(Policy.id)).scalars().all()
    resp = api("admin")("POST", "/api/v1/policies/", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["fields"][field] == message
    db.session.commit()
    assert db.session.execute(select(Policy.id)).scalars().all() == before


def test_second_policy_for_the_same_user_is_refused(api, db, org):
    admin = api("admin")
    assert admin("POST", "/api/v1/policies/", json={"scope": "user", "user_id": org.rep.id,
                                                     "max_locked": 2}).status_code == 200
    resp = admin("POST", "/api/v1/policies/", json={"scope": "user", "user_id": org.rep.id})
    assert resp.status_code == 400 and "该对象已有策略" in resp.get_json()["fields"]["scope"]


def test_global_policy_cannot_be_deleted(api, db, org):
    gid = policies.global_policy().id
    resp = api("admin")("DELETE", f"/api/v1/policies/{gid}")
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid"


@pytest.mark.parametrize("user,read,write", [
    ("manager1", 200, 403), ("auditor1", 200, 403), ("rep1", 403, 403), ("staff1", 403, 403)])
def test_who_reads_and_who_writes(api, db, org, user, read, write):
    call = api(user)
    assert call("GET", "/api/v1/policies/").status_code == read
    assert call("POST", "/api/v1/policies/", json={"scope": "user", "user_id": org.rep.id,
                                                    "max_customers": 1}).status_code == write
    gid = policies.global_policy().id
    assert call("PUT", f"/api/v1/policies/{gid}", json={"max_customers": 1}).status_code == write
    assert call("DELETE", f"/api/v1/policies/{gid}").status_code == write
    db.session.commit()
    assert policies.effective_policy(org.rep.id)["max_customers"].value == \
        policies.GLOBAL_DEFAULTS["max_customers"]


def test_effective_policy_within_scope(api, db, org):
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=40))
    db.session.commit()
    resp = api("manager1")("GET", f"/api/v1/policies/effective/{org.rep.id}")
    assert resp.status_code == 200
    assert resp.get_json()["result"]["max_customers"] == {"value": 40,
                                                          "source": "department:华东大区"}
    # Another department's rep is outside manager1's scope; auditors see everyone.
    resp = api("manager1")("GET", f"/api/v1/policies/effective/{org.rep_north.id}")
    assert (resp.status_code, resp.get_json()) == (404, {
        "code": "not_found", "message": "用户不存在或不在您的数据权限内"})
    assert api("auditor1")("GET", f"/api/v1/policies/effective/{org.rep_north.id}"
                           ).status_code == 200
    resp = api("admin")("GET", "/api/v1/policies/effective/999999")
    assert (resp.status_code, resp.get_json()) == (404, {
        "code": "not_found", "message": "用户不存在或不在您的数据权限内"})


def test_segment_policy_through_the_api_and_a_cap_on_it_refused(api, db, org):
    admin = api("admin")
    resp = admin("POST", "/api/v1/policies/", json={
        "scope": "global", "segment_grade": "A", "segment_source": "官网",
        "reclaim_no_followup_days": 180})
    assert resp.status_code == 200
    body = resp.get_json()["result"]
    assert (body["segment_grade"], body["segment_source"], body["segment_record_type"],
            body["reclaim_no_followup_days"]) == ("A", "官网", None, 180)
    resp = admin("POST", "/api/v1/policies/", json={
        "scope": "global", "segment_grade": "B", "max_customers": 5})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"max_customers": (
        "细分策略只能设置回收期限和预警天数；max_customers 只能按用户、部门或全局设置"
        "（不带细分条件的策略）")}
    resp = admin("POST", "/api/v1/policies/", json={"scope": "global", "segment_grade": "Z"})
    assert resp.status_code == 400 and resp.get_json()["fields"] == {
        "segment_grade": "等级只能是 A、B 或 C"}


def test_effective_policy_lists_the_segment_policies_that_apply(api, db, org):
    admin = api("admin")
    made = admin("POST", "/api/v1/policies/", json={
        "scope": "department", "department_id": org.east.id, "segment_grade": "A",
        "reclaim_no_deal_days": 365}).get_json()["result"]
    result = api("manager1")("GET", f"/api/v1/policies/effective/{org.rep.id}").get_json()[
        "result"]
    assert result["reclaim_no_deal_days"] == {"value": 90, "source": "global", "segments": [
        {"segment": "等级 A", "value": 365, "source": "department:华东大区",
         "policy_id": made["id"]}]}
    assert result["reclaim_no_followup_days"]["segments"] == []
    assert "segments" not in result["max_customers"]
