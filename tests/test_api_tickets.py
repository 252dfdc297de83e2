"""/api/v1/tickets/: raise, read, list (scoped, keyset, filters), change, assign, status,
reply, note — each a thin caller of app.services.tickets, refusals as the Error shape."""
from __future__ import annotations

import pytest

from app.models import Contact
from tests.ticket_fixtures import build_desk, route_to


@pytest.fixture
def desk(db, org):
    return build_desk(db, org)


def test_an_agent_raises_works_and_resolves_a_ticket(api, db, org, desk):
    db.session.add(Contact(customer_id=org.c_rep.id, name="李工", email="li@yunfan.cn"))
    db.session.commit()
    route_to(db, desk.team)  # agent1's team: the ticket comes back to it
    call = api("agent1")
    resp = call("POST", "/api/v1/tickets/", json={
        "customer_id": org.c_rep.id, "channel": "phone", "subject": "打印机卡纸",
        "priority": "P2", "category_id": desk.consult.id})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ticket = resp.get_json()["result"]
    tid = ticket["id"]
    assert (ticket["status"], ticket["priority"], ticket["customer_name"]) == (
        "assigned", "P2", "杭州云帆科技有限公司")
    assert (ticket["team_id"], ticket["agent_id"]) == (desk.team.id, org.agent.id)
    assert ticket["created_at"].endswith("+08:00")
    resp = call("POST", f"/api/v1/tickets/{tid}/assign",
                json={"agent_id": org.agent.id, "team_id": desk.team.id})
    assert resp.get_json()["result"]["status"] == "assigned"
    resp = call("POST", f"/api/v1/tickets/{tid}/reply", json={"body": "已安排工程师"})
    message = resp.get_json()["result"]
    assert (message["kind"], message["delivery_status"]) == ("reply", None)
    resp = call("PATCH", f"/api/v1/tickets/{tid}", json={"priority": "P1"})
    assert resp.get_json()["result"]["priority"] == "P1"
    resp = call("POST", f"/api/v1/tickets/{tid}/status", json={"status": "waiting"})
    assert resp.get_json()["result"]["status"] == "waiting"
    resp = call("POST", f"/api/v1/tickets/{tid}/status", json={"status": "new"})
    assert resp.status_code == 409
    assert resp.get_json() == {"code": "ticket_status",
                               "message": "工单不能从“待客户确认”变为“新建”"}
    resp = call("POST", f"/api/v1/tickets/{tid}/status",
                json={"status": "resolved", "note": "已修好"})
    assert resp.get_json()["result"]["status"] == "resolved"
    listed = call("GET", f"/api/v1/tickets/{tid}/messages").get_json()
    assert [m["kind"] for m in listed["result"]] == ["reply"]


def test_refusals_name_the_field(api, org, desk):
    call = api("agent1")
    resp = call("POST", "/api/v1/tickets/", json={"channel": "fax", "subject": "x" * 201,
                                                  "customer_id": 2**31})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {
        "channel": "channel 只能是：phone、email、online、wechat、visit",
        "subject": "不能超过 200 个字符",
        "customer_id": "customer_id 必须是 1 到 2147483647 之间的整数"}
    resp = call("GET", "/api/v1/tickets/?status=done&agent_id=0&colour=red")
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {
        "colour": "未知参数", "agent_id": "agent_id 必须是 1 到 2147483647 之间的整数",
        "status": "status 只能是：new、assigned、in_progress、waiting、resolved、closed"}
    assert call("GET", "/api/v1/tickets/2147483647").status_code == 404
    assert api("marketing1")("GET", "/api/v1/tickets/").status_code == 403
    resp = api("auditor1")("POST", "/api/v1/tickets/", json={
        "customer_id": org.c_rep.id, "channel": "phone", "subject": "审计"})
    assert resp.status_code == 403


def test_the_list_is_scoped_filtered_and_keyset_paged(api, org, desk):
    staff = api("staff1")
    ids = []
    for i, customer in enumerate([org.c_rep, org.c_rep, org.c_north, org.c_rep]):
        resp = staff("POST", "/api/v1/tickets/", json={
            "customer_id": customer.id, "channel": "email", "subject": f"工单{i}",
            "priority": "P1" if i == 1 else "P3"})
        ids.append(resp.get_json()["id"])
    mine = [ids[3], ids[1], ids[0]]
    rep = api("rep1")
    page = rep("GET", "/api/v1/tickets/?page_size=2").get_json()
    assert ([t["id"] for t in page["result"]], page["next_after"]) == (mine[:2], mine[1])
    page = rep("GET", f"/api/v1/tickets/?page_size=2&after={mine[1]}").get_json()
    assert ([t["id"] for t in page["result"]], page["next_after"]) == (mine[2:], None)
    assert [t["id"] for t in rep("GET", "/api/v1/tickets/?priority=P1").get_json()[
        "result"]] == [ids[1]]
    assert rep("GET", f"/api/v1/tickets/{ids[2]}").status_code == 404
    assert [t["id"] for t in api("agent1")("GET", "/api/v1/tickets/").get_json()[
        "result"]] == []
    every = api("auditor1")("GET", f"/api/v1/tickets/?customer_id={org.c_rep.id}").get_json()
    assert [t["id"] for t in every["result"]] == mine
    # The owner adds a note; it may not reply or move the status.
    assert rep("POST", f"/api/v1/tickets/{ids[0]}/note",
               json={"body": "重点客户"}).status_code == 200
    resp = rep("POST", f"/api/v1/tickets/{ids[0]}/reply", json={"body": "代回复"})
    assert (resp.status_code, resp.get_json()["message"]) == (403, "你的角色不能处理工单")


def test_an_unlinked_requesters_address_is_shown_to_the_desk_only(api, org, desk):
    resp = api("staff1")("POST", "/api/v1/tickets/", json={
        "channel": "email", "subject": "来信", "requester_email": "wang@example.com"})
    tid = resp.get_json()["id"]
    assert api("staff1")("GET", f"/api/v1/tickets/{tid}").get_json()["result"][
        "requester_email"] == "wang@example.com"
    assert api("auditor1")("GET", f"/api/v1/tickets/{tid}").get_json()["result"][
        "requester_email"] == "w***@example.com"
