"""/api/v1/opportunities/ per role: list in scope with the cursor, get, post, put and
<id>/stage (won records the deal, lost needs a reason), with the Error shape and exact codes."""
from __future__ import annotations

import pytest

from app.services import opportunities
from tests.helpers import FAB_FORBIDDEN


@pytest.fixture
def k(db, org):
    stages = {s.name: s.id for s in opportunities.stages()}
    mine = opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "接口商机",
                                          "amount": "8000", "product_line": "SaaS"})
    north = opportunities.create(org.rep_north, {"customer_id": org.c_north.id,
                                                 "title": "华北商机", "amount": "9000"})
    return type("K", (), dict(mine=mine.id, north=north.id, c_rep=org.c_rep.id,
                              c_rep2=org.c_rep2.id, c_pool=org.c_pool.id, stages=stages))


@pytest.mark.parametrize("user, seen", [("rep1", {"mine"}), ("rep2", set()),
                                        ("manager1", {"mine"}), ("manager2", {"north"}),
                                        ("admin", {"mine", "north"}),
                                        ("staff1", {"mine", "north"}),
                                        ("auditor1", {"mine", "north"})])
def test_list_is_scoped(api, k, user, seen):
    resp = api(user)("GET", "/api/v1/opportunities/")
    assert resp.status_code == 200
    assert {r["id"] for r in resp.get_json()["result"]} == {getattr(k, n) for n in seen}


def test_list_pages_by_cursor_and_answers_owner_and_weight(api, k):
    admin = api("admin")
    first = admin("GET", "/api/v1/opportunities/?page_size=1").get_json()
    assert first["count"] == 1 and first["next_after"] == first["result"][0]["id"] == k.north
    second = admin("GET", f"/api/v1/opportunities/?page_size=1&after={k.north}").get_json()
    assert [r["id"] for r in second["result"]] == [k.mine] and second["next_after"] is None
    row = second["result"][0]
    assert (row["amount"], row["weighted_amount"], row["stage"], row["probability"]) == (
        "8000.00", "800.00", "初步接洽", 10)
    assert row["owner"]["username"] == "rep1" and row["status"] == "open"


@pytest.mark.parametrize("query, field", [("page_size=0", "page_size"),
                                          ("after=99999999999", "after"),
                                          ("status=maybe", "status"), ("nope=1", "nope")])
def test_bad_list_arguments_name_the_field(api, k, query, field):
    resp = api("admin")("GET", f"/api/v1/opportunities/?{query}")
    assert resp.status_code == 400 and field in resp.get_json()["fields"]


def test_get_in_and_out_of_scope(api, k):
    assert api("rep1")("GET", f"/api/v1/opportunities/{k.mine}").status_code == 200
    resp = api("rep1")("GET", f"/api/v1/opportunities/{k.north}")
    assert resp.status_code == 404 and resp.get_json()["code"] == "out_of_scope"


def test_create_and_refusals(api, k):
    resp = api("rep1")("POST", "/api/v1/opportunities/", json={
        "customer_id": k.c_rep, "title": "新商机", "amount": 5000.5,
        "expected_close_on": "2026-12-31", "stage_id": k.stages["需求确认"]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()["result"]
    assert (body["amount"], body["stage"], body["expected_close_on"]) == (
        "5000.50", "需求确认", "2026-12-31")
    resp = api("rep1")("POST", "/api/v1/opportunities/", json={
        "customer_id": k.c_rep2, "title": "x", "amount": "1"})
    assert resp.status_code == 400 and list(resp.get_json()["fields"]) == ["customer_id"]
    resp = api("admin")("POST", "/api/v1/opportunities/", json={
        "customer_id": k.c_pool, "title": "x", "amount": "1"})
    assert resp.status_code == 400 and "公海" in resp.get_json()["fields"]["customer_id"]
    resp = api("admin")("POST", "/api/v1/opportunities/", json={
        "customer_id": k.c_rep, "title": "x", "amount": "1", "stage_id": k.stages["赢单"]})
    assert resp.status_code == 400 and "stage_id" in resp.get_json()["fields"]
    resp = api("auditor1")("POST", "/api/v1/opportunities/", json={
        "customer_id": k.c_rep, "title": "x", "amount": "1"})
    assert resp.status_code == 403 and resp.get_json() == FAB_FORBIDDEN


def test_put_edits_in_scope_only(api, k):
    resp = api("manager1")("PUT", f"/api/v1/opportunities/{k.mine}", json={"amount": "9999"})
    assert resp.status_code == 200 and resp.get_json()["result"]["amount"] == "9999.00"
    resp = api("manager1")("PUT", f"/api/v1/opportunities/{k.north}", json={"amount": "1"})
    assert resp.status_code == 404 and resp.get_json()["code"] == "out_of_scope"
    resp = api("rep1")("PUT", f"/api/v1/opportunities/{k.mine}", json={"stage_id": 1})
    assert resp.status_code == 400 and "stage_id" in resp.get_json()["fields"]


def test_stage_lost_needs_a_reason_then_closed(api, k):
    call = api("rep1")
    resp = call("POST", f"/api/v1/opportunities/{k.mine}/stage",
                json={"stage_id": k.stages["输单"]})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"loss_reason": "输单需要填写原因"}
    resp = call("POST", f"/api/v1/opportunities/{k.mine}/stage",
                json={"stage_id": k.stages["输单"], "loss_reason": "预算砍掉"})
    assert resp.status_code == 200
    assert resp.get_json()["result"]["status"] == "lost"
    resp = call("POST", f"/api/v1/opportunities/{k.mine}/stage",
                json={"stage_id": k.stages["需求确认"]})
    assert resp.status_code == 409 and resp.get_json()["code"] == "opportunity_closed"


def test_stage_won_records_the_deal(api, k):
    resp = api("rep1")("POST", f"/api/v1/opportunities/{k.mine}/stage",
                       json={"stage_id": k.stages["赢单"], "won_on": "2026-11-01"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()["result"]
    assert body["status"] == "won" and body["deal_id"]
    from app.extensions import db
    from app.models import Deal

    deal = db.session.get(Deal, body["deal_id"])
    assert (str(deal.amount), deal.product_line, str(deal.won_on)) == (
        "8000.00", "SaaS", "2026-11-01")


def test_stale_expected_stage_is_a_conflict(api, k):
    resp = api("rep1")("POST", f"/api/v1/opportunities/{k.mine}/stage", json={
        "stage_id": k.stages["方案报价"], "expected_stage_id": k.stages["需求确认"]})
    assert resp.status_code == 409 and resp.get_json()["code"] == "conflict"


@pytest.mark.parametrize("user, status", [("auditor1", 403), ("rep2", 404),
                                          ("manager2", 404)])
def test_stage_refused_outside_write_scope(api, k, user, status):
    resp = api(user)("POST", f"/api/v1/opportunities/{k.mine}/stage",
                     json={"stage_id": k.stages["需求确认"]})
    assert resp.status_code == status


def test_lead_conversion_takes_an_optional_opportunity(api, db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep, {"company_name": "嘉兴南湖纺织有限公司"})
    call = api("rep1")
    resp = call("POST", "/api/v1/leads/convert", json={
        "lead_id": lead.id, "opportunity": {"title": "纺织线", "amount": "-5"}})
    assert resp.status_code == 400 and "opportunity.amount" in resp.get_json()["fields"]
    resp = call("POST", "/api/v1/leads/convert", json={
        "lead_id": lead.id, "opportunity": {"title": "纺织线", "amount": "50000"}})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    got = call("GET", f"/api/v1/opportunities/{body['opportunity_id']}").get_json()["result"]
    assert (got["customer_id"], got["amount"]) == (body["customer_id"], "50000.00")


@pytest.mark.parametrize("method, path, body, field", [
    ("GET", "/api/v1/opportunities/99999999999", None, None),
    ("POST", "/api/v1/opportunities/", {"customer_id": 99999999999, "title": "x",
                                        "amount": "1"}, "customer_id"),
    ("POST", "/api/v1/opportunities/", {"customer_id": 1, "title": "a\x00b", "amount": "1"},
     "title"),
    ("POST", "/api/v1/opportunities/", {"customer_id": 1, "title": "x" * 5000, "amount": "1"},
     "title"),
    ("POST", "/api/v1/opportunities/", {"customer_id": 1, "title": "x", "amount": "9" * 30},
     "amount"),
    ("POST", "/api/v1/opportunities/", {"customer_id": 1, "title": "x", "amount": True},
     "amount"),
    ("POST", "/api/v1/opportunities/1/stage", {"stage_id": 99999999999}, "stage_id"),
])
def test_bad_input_is_a_4xx_naming_the_field(api, k, method, path, body, field):
    resp = api("admin")(method, path, json=body)
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
    if field:
        assert field in resp.get_json()["fields"]


def test_bad_ids_on_the_pages_are_404_not_500(clients, k):
    client = clients.manager
    for url in ("/opportunities/show/99999999999", "/opportunities/show/abc",
                "/opportunities/kanban?owner_id=99999999999", "/opportunities/kanban?owner_id=x",
                "/opportunities/edit/99999999999"):
        assert client.get(url).status_code == 404, url
    resp = client.post("/opportunities/stage/99999999999",
                       headers={"Accept": "application/json"},
                       data={"csrf_token": client.csrf, "stage_id": "1"})
    assert 400 <= resp.status_code < 500
