"""/api/v1/leads/ per role: list in scope, get, post, put, claim, release, convert, with the
Error shape and exact refusal codes."""
from __future__ import annotations

import pytest

from app.models import LeadOwnership, Policy, PoolMember
from app.services import leads
from tests.helpers import FAB_FORBIDDEN


@pytest.fixture
def k(db, org):
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    mine = leads.create_lead(org.rep, {"person_name": "接口线索", "mobile": "13612340001"})
    north = leads.create_lead(org.rep_north, {"person_name": "华北接口线索"})
    pooled = leads.create_lead(org.staff, {"company_name": "接口公海公司",
                                           "mobile": "13612348000"})
    return type("K", (), dict(mine=mine.id, north=north.id, pooled=pooled.id, pool=pool.id))


def test_list_is_scoped_and_masks_pool_leads(api, k):
    body = api("rep1")("GET", "/api/v1/leads/").get_json()
    ids = {r["id"] for r in body["result"]}
    assert ids == {k.mine, k.pooled}
    pooled = next(r for r in body["result"] if r["id"] == k.pooled)
    assert pooled["mobile"] == "136****8000" and pooled["pool"]["id"] == k.pool
    mine = next(r for r in body["result"] if r["id"] == k.mine)
    assert mine["mobile"] == "13612340001" and mine["status"] == "new"
    all_ids = {r["id"] for r in api("auditor1")("GET", "/api/v1/leads/").get_json()["result"]}
    assert {k.mine, k.north, k.pooled} <= all_ids


def test_list_pages_by_keyset_and_filters(api, k):
    admin = api("admin")
    first = admin("GET", "/api/v1/leads/?page_size=1").get_json()
    assert first["count"] == 1 and first["next_after"] == first["result"][0]["id"]
    second = admin("GET", f"/api/v1/leads/?page_size=1&after={first['next_after']}").get_json()
    assert second["result"][0]["id"] < first["result"][0]["id"]
    found = admin("GET", "/api/v1/leads/?search=13612340001").get_json()["result"]
    assert [r["id"] for r in found] == [k.mine]
    assert admin("GET", "/api/v1/leads/?status=converted").get_json()["result"] == []


@pytest.mark.parametrize("query, field", [("page_size=0", "page_size"),
                                          ("after=99999999999", "after"),
                                          ("status=won", "status"), ("nope=1", "nope")])
def test_bad_list_arguments_name_the_field(api, k, query, field):
    resp = api("admin")("GET", f"/api/v1/leads/?{query}")
    assert resp.status_code == 400 and field in resp.get_json()["fields"]


def test_get_outside_the_scope_is_404(api, k):
    resp = api("rep1")("GET", f"/api/v1/leads/{k.north}")
    assert resp.status_code == 404 and resp.get_json()["code"] == "out_of_scope"
    assert api("rep1")("GET", f"/api/v1/leads/{k.mine}").status_code == 200


def test_post_and_put(api, db, org, k):
    rep = api("rep1")
    resp = rep("POST", "/api/v1/leads/", json={"person_name": "新接口线索",
                                              "source": "web_form"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["result"]["owner"]["id"] == org.rep.id and body["result"]["source"] == "web_form"
    resp = rep("PUT", f"/api/v1/leads/{body['id']}", json={"city": "宁波"})
    assert resp.status_code == 200 and resp.get_json()["result"]["city"] == "宁波"
    resp = rep("POST", "/api/v1/leads/", json={"person_name": "x", "source": "tv"})
    assert resp.status_code == 400 and "source" in resp.get_json()["fields"]
    resp = rep("POST", "/api/v1/leads/", json={"person_name": "撞号",
                                              "mobile": "13612340001"})
    assert resp.status_code == 409 and resp.get_json()["code"] == "duplicate"
    assert resp.get_json()["matches"][0]["record"] == "lead"
    resp = api("auditor1")("POST", "/api/v1/leads/", json={"person_name": "审计"})
    assert (resp.status_code, resp.get_json()) == (403, FAB_FORBIDDEN)


def test_claim_release_and_the_cap(api, db, org, k):
    db.session.add(Policy(scope="user", user_id=org.rep.id, lead_max=1))
    db.session.commit()
    rep = api("rep1")
    resp = rep("POST", "/api/v1/leads/claim", json={"lead_ids": [k.pooled]})
    body = resp.get_json()
    assert resp.status_code == 409 and body["code"] == "cap_exceeded"
    assert (body["cap"], body["owned"], body["adding"]) == (1, 1, 1)
    resp = rep("POST", "/api/v1/leads/release", json={"lead_ids": [k.mine], "reason": "让出"})
    assert resp.status_code == 200 and resp.get_json() == {"lead_ids": [k.mine]}
    resp = rep("POST", "/api/v1/leads/claim", json={"lead_ids": [k.pooled]})
    assert resp.status_code == 200
    db.session.expire_all()
    assert db.session.get(LeadOwnership, k.pooled).owner_id == org.rep.id
    resp = api("staff1")("POST", "/api/v1/leads/claim", json={"lead_ids": [k.mine]})
    assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
    resp = rep("POST", "/api/v1/leads/claim", json={"lead_ids": [k.north]})
    assert resp.status_code == 409 and resp.get_json()["code"] == "not_in_pool"
    assert resp.get_json()["lead_ids"] == [k.north]
    resp = rep("POST", "/api/v1/leads/claim", json={"lead_ids": []})
    assert resp.status_code == 400 and "lead_ids" in resp.get_json()["fields"]


def test_convert(api, db, org, k):
    resp = api("auditor1")("POST", "/api/v1/leads/convert", json={"lead_id": k.mine})
    assert resp.status_code == 403
    resp = api("rep3")("POST", "/api/v1/leads/convert", json={"lead_id": k.mine})
    assert resp.status_code == 404
    resp = api("rep1")("POST", "/api/v1/leads/convert", json={"lead_id": k.mine})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["outcome"] == "created" and body["lead_id"] == k.mine
    again = api("rep1")("POST", "/api/v1/leads/convert", json={"lead_id": k.mine})
    assert again.status_code == 409 and again.get_json()["code"] == "already_converted"
