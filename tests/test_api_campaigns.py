"""/api/v1/campaigns/ per role: everyone reads, marketing and admins write; CRUD, members
(masked, in the caller's scope), launch once, finish; every bad input a 4xx naming the field;
a session caller needs the CSRF token."""
from __future__ import annotations

import pytest

from tests.campaign_fixtures import queued  # noqa: F401 (fixture)
from tests.conftest import login

USERS = {"admin": "admin", "manager": "manager1", "rep": "rep1", "staff": "staff1",
         "auditor": "auditor1", "marketing": "marketing1"}
WRITERS = {"admin", "marketing"}


@pytest.fixture
def made(api, org):
    resp = api("marketing1")("POST", "/api/v1/campaigns/", json={
        "name": "接口展会", "kind": "exhibition", "budget": "800.50",
        "starts_on": "2026-05-01", "ends_on": "2026-05-03"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cid = resp.get_json()["id"]
    resp = api("marketing1")("POST", f"/api/v1/campaigns/{cid}/members", json={
        "customer_ids": [org.c_rep.id, org.c_north.id]})
    assert resp.get_json() == {"added": 2, "skipped": 0}
    return cid


@pytest.mark.parametrize("role", list(USERS))
def test_every_role_reads_campaigns_and_members_in_its_scope(api, org, made, role):
    call = api(USERS[role])
    listing = call("GET", "/api/v1/campaigns/")
    assert listing.status_code == 200
    assert [c["name"] for c in listing.get_json()["result"]] == ["接口展会"]
    one = call("GET", f"/api/v1/campaigns/{made}").get_json()["result"]
    assert (one["status"], one["budget"], one["ends_on"]) == ("planned", "800.50", "2026-05-03")
    members = call("GET", f"/api/v1/campaigns/{made}/members").get_json()["result"]
    seen = {m["customer_id"]: m["mobile"] for m in members}
    expected = {"admin": {org.c_rep.id: "13800138000", org.c_north.id: None},
                "staff": {org.c_rep.id: "13800138000", org.c_north.id: None},
                "auditor": {org.c_rep.id: "138****8000", org.c_north.id: None},
                "marketing": {org.c_rep.id: "138****8000", org.c_north.id: None},
                "manager": {org.c_rep.id: "13800138000"}, "rep": {org.c_rep.id: "13800138000"}}
    assert seen == expected[role]
    email = {m["customer_id"]: m["email"] for m in members}.get(org.c_north.id)
    if role in ("auditor", "marketing"):
        assert email != "Contact@HuaLian.cn" and "***" in email


@pytest.mark.parametrize("role", list(USERS))
def test_only_marketing_and_admins_write(api, made, role, queued):
    call = api(USERS[role])
    status = 200 if role in WRITERS else 403
    assert call("POST", "/api/v1/campaigns/", json={"name": f"{role}的活动",
                                                    "kind": "email"}).status_code == status
    assert call("PUT", f"/api/v1/campaigns/{made}", json={"actual_cost": "1"}) \
        .status_code == status
    assert call("POST", f"/api/v1/campaigns/{made}/launch").status_code == status
    assert queued == ([made] if role in WRITERS else [])


def test_the_lifecycle(api, org, made, queued):
    call = api("marketing1")
    resp = call("PUT", f"/api/v1/campaigns/{made}", json={"actual_cost": "1200", "kind": "seminar"})
    assert resp.get_json()["result"]["actual_cost"] == "1200.00"
    resp = call("POST", f"/api/v1/campaigns/{made}/members", json={
        "customer_ids": [org.c_rep.id, org.c_pool.id]})
    assert resp.get_json() == {"added": 1, "skipped": 1}
    resp = call("POST", f"/api/v1/campaigns/{made}/launch")
    assert resp.status_code == 200
    assert resp.get_json() == {"campaign_id": made, "from_segment": 0, "manual": 3, "total": 3,
                               "queued": 7}
    again = call("POST", f"/api/v1/campaigns/{made}/launch")
    assert (again.status_code, again.get_json()["code"]) == (409, "campaign_launched")
    gone = call("DELETE", f"/api/v1/campaigns/{made}")
    assert (gone.status_code, gone.get_json()["code"]) == (409, "campaign_launched")
    resp = call("POST", f"/api/v1/campaigns/{made}/finish")
    assert resp.get_json()["result"]["status"] == "finished"
    assert resp.get_json()["result"]["launched_at"].startswith("20")
    member = call("GET", f"/api/v1/campaigns/{made}/members?page_size=1").get_json()
    assert member["count"] == 1 and member["next_after"] is not None
    refused = call("DELETE", f"/api/v1/campaigns/{made}/members/{member['result'][0]['id']}")
    assert (refused.status_code, refused.get_json()["code"]) == (409, "campaign_finished")


def test_a_planned_campaign_and_a_member_are_deleted(api, org, made):
    call = api("admin")
    member = call("GET", f"/api/v1/campaigns/{made}/members").get_json()["result"][0]["id"]
    assert call("DELETE", f"/api/v1/campaigns/{made}/members/{member}").get_json() == \
        {"id": member}
    assert call("DELETE", f"/api/v1/campaigns/{made}").get_json() == {"id": made}
    assert call("GET", f"/api/v1/campaigns/{made}").status_code == 404


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/api/v1/campaigns/", {"name": "x", "kind": "fax"}, "kind"),
    ("POST", "/api/v1/campaigns/", {"kind": "email"}, "name"),
    ("POST", "/api/v1/campaigns/", {"name": "x", "kind": "email", "budget": "-1"}, "budget"),
    ("POST", "/api/v1/campaigns/", {"name": "x", "kind": "email", "owner_id": 2147483648},
     "owner_id"),
    ("POST", "/api/v1/campaigns/", {"name": "x\u0000", "kind": "email"}, "name"),
    ("POST", "/api/v1/campaigns/", {"name": "x", "kind": "email", "segment_id": 99999},
     "segment_id"),
    ("PUT", "/api/v1/campaigns/{cid}", {"ends_on": "2026-04-01"}, "ends_on"),
    ("PUT", "/api/v1/campaigns/{cid}", {"status": "finished"}, "status"),
    ("POST", "/api/v1/campaigns/{cid}/members", {"customer_ids": ["a"]}, "customer_ids"),
    ("POST", "/api/v1/campaigns/{cid}/members", {"lead_ids": list(range(1, 502))}, "lead_ids"),
    ("POST", "/api/v1/campaigns/{cid}/members", {}, "customer_ids"),
    ("GET", "/api/v1/campaigns/?status=open", None, "status"),
    ("GET", "/api/v1/campaigns/?page_size=0", None, "page_size"),
    ("GET", "/api/v1/campaigns/?after=2147483648", None, "after"),
    ("GET", "/api/v1/campaigns/?nope=1", None, "nope"),
])
def test_bad_input_is_400_naming_the_field(api, made, method, path, body, field):
    resp = api("marketing1")(method, path.format(cid=made), json=body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert field in resp.get_json()["fields"]


def test_unknown_records_are_404(api, made):
    call = api("marketing1")
    assert call("GET", "/api/v1/campaigns/2147483647").status_code == 404
    assert call("POST", "/api/v1/campaigns/2147483647/launch").status_code == 404
    resp = call("POST", f"/api/v1/campaigns/{made}/members", json={"customer_ids": [2147483647]})
    assert (resp.status_code, resp.get_json()["customer_ids"]) == (404, [2147483647])


def test_the_list_filters_and_pages(api, made, queued):
    call = api("admin")
    for i in range(3):
        call("POST", "/api/v1/campaigns/", json={"name": f"短信{i}", "kind": "sms"})
    first = call("GET", "/api/v1/campaigns/?kind=sms&page_size=2").get_json()
    rest = call("GET", f"/api/v1/campaigns/?kind=sms&page_size=2&after={first['next_after']}") \
        .get_json()
    assert [c["name"] for c in first["result"] + rest["result"]] == ["短信2", "短信1", "短信0"]
    call("POST", f"/api/v1/campaigns/{made}/launch")
    running = call("GET", "/api/v1/campaigns/?status=running").get_json()["result"]
    assert [c["id"] for c in running] == [made]


def test_a_session_caller_needs_the_csrf_token(app, org, made, queued):
    client = login(app.test_client(), "marketing1")
    resp = client.post(f"/api/v1/campaigns/{made}/launch")
    assert (resp.status_code, resp.get_json()["code"]) == (400, "csrf")
    assert queued == []
    resp = client.post(f"/api/v1/campaigns/{made}/launch", headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 200 and queued == [made]
