"""The 商机 pages: the scoped list with the weighted amount, the opportunity page with its stage
history, the kanban (columns, totals, weighted pipeline, the drag's JSON stage change with
the CSRF token, lost asks for the reason), the customer page's tab and the stage editor."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import Opportunity
from app.services import opportunities


@pytest.fixture
def k(db, org):
    stages = {s.name: s.id for s in opportunities.stages()}
    a = opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "看板甲",
                                       "amount": "100000"})
    b = opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "看板乙",
                                       "amount": "50000", "stage_id": stages["方案报价"]})
    c = opportunities.create(org.rep2, {"customer_id": org.c_rep2.id, "title": "同组丙",
                                        "amount": "7000"})
    return type("K", (), dict(a=a.id, b=b.id, c=c.id, stages=stages, c_rep=org.c_rep.id,
                              rep2=org.rep2.id))


def test_list_shows_scope_and_weighted_amount(clients, k):
    html = clients.rep.get("/opportunities/list/").get_data(as_text=True)
    assert "看板甲" in html and "看板乙" in html and "同组丙" not in html
    assert "30,000.00" in html  # 50000 × 60%
    html = clients.manager.get("/opportunities/list/").get_data(as_text=True)
    assert "同组丙" in html


def test_page_shows_history_and_the_form_changes_stage(clients, db, k):
    client = clients.rep
    resp = client.post(f"/opportunities/stage/{k.a}", data={
        "csrf_token": client.csrf, "stage_id": k.stages["需求确认"],
        "expected_stage_id": k.stages["初步接洽"]})
    assert resp.status_code == 302
    html = client.get(f"/opportunities/show/{k.a}").get_data(as_text=True)
    history = html.split('id="opportunity-history"')[1]
    assert history.count("<tr>") == 3  # header, created, moved
    assert "需求确认" in history and "初步接洽" in history
    assert 'id="opportunity-stage-form"' in html
    html = clients.auditor.get(f"/opportunities/show/{k.a}").get_data(as_text=True)
    assert 'id="opportunity-stage-form"' not in html


def test_kanban_columns_totals_and_weighted_pipeline(clients, k):
    html = clients.rep.get("/opportunities/kanban").get_data(as_text=True)
    columns = re.findall(r'class="kanban-column" data-stage-id="(\d+)" data-kind="(\w+)"', html)
    assert [kind for _, kind in columns] == ["open"] * 4 + ["won", "lost"]
    assert "看板甲" in html and "同组丙" not in html
    assert "40,000.00" in html  # 100000×10% + 50000×60%
    assert "guishu/kanban.js" in html and 'data-csrf="' in html
    assert 'draggable="true"' in html
    team = clients.manager.get("/opportunities/kanban?team=1").get_data(as_text=True)
    assert "看板甲" in team and "同组丙" in team
    one = clients.manager.get(f"/opportunities/kanban?owner_id={k.rep2}").get_data(as_text=True)
    assert "同组丙" in one and "看板甲" not in one
    ro = clients.auditor.get("/opportunities/kanban?team=1").get_data(as_text=True)
    assert 'draggable="true"' not in ro and "看板甲" in ro


def test_the_drop_posts_json_with_csrf(clients, db, k):
    client = clients.rep
    headers = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
    resp = client.post(f"/opportunities/stage/{k.a}", headers=headers, data={
        "stage_id": k.stages["输单"], "csrf_token": client.csrf})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"loss_reason": "输单需要填写原因"}
    resp = client.post(f"/opportunities/stage/{k.a}", headers=headers, data={
        "stage_id": k.stages["商务谈判"]})  # no CSRF token: refused, nothing moves
    assert resp.status_code == 400
    db.session.expire_all()
    assert db.session.get(Opportunity, k.a).stage_id == k.stages["初步接洽"]
    resp = client.post(f"/opportunities/stage/{k.a}", headers=headers, data={
        "stage_id": k.stages["商务谈判"], "csrf_token": client.csrf})
    assert resp.status_code == 200 and resp.get_json()["stage"] == "商务谈判"


def test_customer_page_lists_its_opportunities(clients, k):
    html = clients.rep.get(f"/customers/show/{k.c_rep}").get_data(as_text=True)
    tab = html.split('id="tab-opportunities"')[1].split('class="tab-pane"')[0]
    assert "看板甲" in tab and "看板乙" in tab and 'id="opportunity-add"' in tab


def test_add_form_creates_through_the_service(clients, db, k):
    client = clients.rep
    assert client.get(f"/opportunities/add?customer_id={k.c_rep}").status_code == 200
    resp = client.post("/opportunities/add", data={
        "csrf_token": client.csrf, "customer_id": k.c_rep, "title": "表单商机",
        "amount": "1234.5", "expected_close_on": "", "product_line": "",
        "stage_id": k.stages["需求确认"]})
    assert resp.status_code == 302
    made = db.session.execute(select(Opportunity).where(
        Opportunity.title == "表单商机")).scalar_one()
    assert str(made.amount) == "1234.50" and made.stage_id == k.stages["需求确认"]
    resp = client.post("/opportunities/add", data={
        "csrf_token": client.csrf, "customer_id": k.c_rep, "title": "坏金额",
        "amount": "abc"})
    assert resp.status_code == 200 and "金额必须是数字" in resp.get_data(as_text=True)


def test_stage_editor_refuses_deleting_a_used_stage(clients, db, k):
    client = clients.admin
    resp = client.post(f"/opportunity-stages/delete/{k.stages['初步接洽']}",
                       data={"csrf_token": client.csrf}, follow_redirects=True)
    assert "请先移走" in resp.get_data(as_text=True)
    assert {s.name for s in opportunities.stages()} >= {"初步接洽"}
