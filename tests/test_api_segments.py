"""/api/v1/segments/: admins and marketing keep segments (every other role 403), bodies read
by their schema (400 naming the field), the preview masked by the caller's rule."""
from __future__ import annotations

import pytest

from app.services import leads
from tests.helpers import FAB_FORBIDDEN


def make(call, **body):
    resp = call("POST", "/api/v1/segments/", json=dict({"name": "浙江客户"}, **body))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_marketing_keeps_segments_through_the_api(api, org):
    call = api("marketing1")
    made = make(call, record_type="both", include_pool=True,
                criteria={"provinces": ["浙江"], "won": "no", "cities": None})
    assert made["result"]["criteria"] == {"provinces": ["浙江"], "won": "no"}
    assert made["result"]["created_by"] == {"id": org.marketing.id, "username": "marketing1"}
    pk = made["id"]
    resp = call("PUT", f"/api/v1/segments/{pk}", json={"name": "浙江（含公海）",
                                                      "criteria": {"grades": ["A", "B"]}})
    assert resp.status_code == 200
    assert resp.get_json()["result"]["criteria"] == {"grades": ["A", "B"]}
    listing = call("GET", "/api/v1/segments/?page_size=1").get_json()
    assert [r["id"] for r in listing["result"]] == [pk] and listing["next_after"] is None
    assert call("GET", f"/api/v1/segments/{pk}").get_json()["result"]["name"] == "浙江（含公海）"
    resp = call("DELETE", f"/api/v1/segments/{pk}")
    assert resp.status_code == 200 and resp.get_json() == {"id": pk}
    resp = call("GET", f"/api/v1/segments/{pk}")
    assert resp.status_code == 404 and resp.get_json()["code"] == "not_found"


@pytest.mark.parametrize("username", ["manager1", "rep1", "staff1", "auditor1"])
def test_other_roles_are_refused(api, org, username):
    call = api(username)
    for method, path in (("GET", "/api/v1/segments/"), ("GET", "/api/v1/segments/1"),
                         ("GET", "/api/v1/segments/1/preview"),
                         ("PUT", "/api/v1/segments/1"), ("DELETE", "/api/v1/segments/1")):
        resp = call(method, path, json={} if method == "PUT" else None)
        assert resp.status_code == 403 and resp.get_json() == FAB_FORBIDDEN, (method, path)
    resp = call("POST", "/api/v1/segments/", json={"name": "x"})
    assert resp.status_code == 403


def test_bad_bodies_and_arguments_name_the_field(api, org):
    call = api("marketing1")
    resp = call("POST", "/api/v1/segments/", json={
        "name": "x" * 101, "record_type": "all", "include_pool": "yes",
        "criteria": {"grades": ["D"], "owner": 1}})
    assert resp.status_code == 400
    fields = resp.get_json()["fields"]
    assert set(fields) == {"name", "record_type", "include_pool", "criteria"}
    assert fields["record_type"] == "对象只能是 customer（客户）、lead（线索）或 both（两者）"
    resp = call("POST", "/api/v1/segments/", json={"name": "线索", "record_type": "lead",
                                                   "criteria": {"grades": ["A"]}})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {
        "criteria.grades": "线索没有等级和生命周期：线索分群不能按它筛选"}
    resp = call("POST", "/api/v1/segments/", json={"name": "标签", "criteria": {
        "tag_ids": [2147483647]}})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"criteria.tag_ids": "未知标签：2147483647"}
    pk = make(call)["id"]
    for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("x=1", "x")):
        resp = call("GET", f"/api/v1/segments/{pk}/preview?{query}")
        assert resp.status_code == 400 and field in resp.get_json()["fields"], query
    resp = call("GET", "/api/v1/segments/?after=2147483648")
    assert resp.status_code == 400 and "after" in resp.get_json()["fields"]
    assert call("GET", "/api/v1/segments/2147483648").status_code == 404


def test_preview_counts_and_masks(api, org):
    leads.create_lead(org.rep, {"company_name": "宁波海曙贸易有限公司", "province": "浙江",
                                "mobile": "13700137000"})
    pk = make(api("marketing1"), record_type="both", criteria={"provinces": ["浙江"]})["id"]
    seen = api("marketing1")("GET", f"/api/v1/segments/{pk}/preview").get_json()
    assert seen["count"] == 2
    assert [(r["record_type"], r["mobile"]) for r in seen["result"]] == [
        ("customer", "138****8000"), ("lead", "137****7000")]
    full = api("admin")("GET", f"/api/v1/segments/{pk}/preview?limit=1").get_json()
    assert full["count"] == 2 and [r["mobile"] for r in full["result"]] == ["13800138000"]


def test_a_segment_a_live_campaign_uses_is_not_deleted(api, org, db):
    from app.models.marketing import Campaign

    pk = make(api("admin"))["id"]
    db.session.add(Campaign(name="双十一", kind="email", status="planned", segment_id=pk))
    db.session.commit()
    resp = api("admin")("DELETE", f"/api/v1/segments/{pk}")
    assert resp.status_code == 409
    assert resp.get_json() == {"code": "conflict", "message": "仍有市场活动使用该分群：双十一"}
