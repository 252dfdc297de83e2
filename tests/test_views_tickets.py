"""The 工单 pages and the desk's configuration pages: list in scope with the quick views,
the ticket page and its actions (through app.services.tickets), the new-ticket form from
the customer page, the customer's 服务 tab with the dedicated agent, the workbench panels,
and the category / team / rule / settings forms through app.services.service_admin."""
from __future__ import annotations

from sqlalchemy import select

from app.models.service_desk import (CustomerServiceAgent, ServiceTeam, Ticket,
                                     TicketCategory, TicketRoutingRule)
from app.services import service_admin, tickets
from tests.service_desk_fixtures import category, team


def _desk(org):
    first = team(org.admin, "一线", [org.agent, org.agent2],
                 manager_id=org.service_manager.id)
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    return first


def _raise(org, actor=None, customer=None, **extra):
    data = {"customer_id": (customer or org.c_rep).id, "channel": "phone",
            "subject": extra.pop("subject", "无法登录"), "priority": "P3",
            "category_id": category("故障").id}
    data.update(extra)
    return tickets.create(actor or org.staff, data)


def test_list_is_scoped_and_has_the_quick_views(clients, db, org):
    _desk(org)
    mine = _raise(org, subject="浙江客户的工单")
    other = _raise(org, customer=org.c_north, subject="北京客户的工单")
    html = clients.rep.get("/tickets/list/").get_data(as_text=True)
    assert "浙江客户的工单" in html and "北京客户的工单" not in html
    html = clients.staff.get("/tickets/list/").get_data(as_text=True)
    assert "浙江客户的工单" in html and "北京客户的工单" in html
    assert clients.marketing.get("/tickets/list/").status_code in (302, 403)
    # Round robin from the lower id: the first to agent1, the second to agent2.
    assert (mine.agent_id, other.agent_id) == (org.agent.id, org.agent2.id)
    html = clients.agent.get("/tickets/list/?which=mine").get_data(as_text=True)
    assert "浙江客户的工单" in html and "北京客户的工单" not in html
    assert 'id="ticket-which"' in html
    html = clients.agent.get("/tickets/list/?which=teams").get_data(as_text=True)
    assert "浙江客户的工单" in html and "北京客户的工单" in html


def test_ticket_page_actions_go_through_the_service(clients, db, org):
    _desk(org)
    t = _raise(org)
    client = clients.service_manager
    html = client.get(f"/tickets/show/{t.id}").get_data(as_text=True)
    assert 'id="ticket-sla"' in html and 'id="ticket-reply-form"' in html
    resp = client.post(f"/tickets/reply/{t.id}", data={"csrf_token": client.csrf,
                                                       "body": "您好，已收到"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "in_progress"
    resp = client.post(f"/tickets/status/{t.id}", data={"csrf_token": client.csrf,
                                                        "status": "waiting"})
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "waiting"
    # A move the machine does not allow is refused with the service's words.
    resp = client.post(f"/tickets/status/{t.id}", data={"csrf_token": client.csrf,
                                                        "status": "waiting"},
                       follow_redirects=True)
    assert "工单已经是“待客户确认”" in resp.get_data(as_text=True)
    client.post(f"/tickets/status/{t.id}", data={"csrf_token": client.csrf,
                                                 "status": "resolved"})
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "resolved"
    client.post(f"/tickets/reopen/{t.id}", data={"csrf_token": client.csrf,
                                                 "reason": "客户仍无法登录"})
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).reopened_count == 1
    html = client.get(f"/tickets/show/{t.id}").get_data(as_text=True)
    assert "客户仍无法登录" in html and "您好，已收到" in html


def test_post_without_csrf_changes_nothing(clients, db, org):
    _desk(org)
    t = _raise(org)
    resp = clients.service_manager.post(f"/tickets/status/{t.id}", data={"status": "closed"})
    assert resp.status_code == 400
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "assigned"


def test_rep_reads_and_notes_but_does_not_work_the_ticket(clients, db, org):
    _desk(org)
    t = _raise(org)
    client = clients.rep
    html = client.get(f"/tickets/show/{t.id}").get_data(as_text=True)
    assert 'id="ticket-note-form"' in html and 'id="ticket-reply-form"' not in html
    client.post(f"/tickets/status/{t.id}", data={"csrf_token": client.csrf,
                                                 "status": "closed"})
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "assigned"
    client.post(f"/tickets/note/{t.id}", data={"csrf_token": client.csrf,
                                               "body": "客户下周有采购计划"})
    assert "客户下周有采购计划" in client.get(f"/tickets/show/{t.id}").get_data(as_text=True)
    # Out of scope: another rep's customer's ticket is a 404.
    other = _raise(org, customer=org.c_north)
    assert client.get(f"/tickets/show/{other.id}").status_code == 404
    assert client.post(f"/tickets/note/{other.id}", data={
        "csrf_token": client.csrf, "body": "x"}).status_code == 302
    assert "x" not in [m.body for m in tickets.messages(db.session.get(Ticket, other.id))]


def test_new_ticket_from_the_customer_page(clients, db, org):
    _desk(org)
    client = clients.rep
    html = client.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert 'id="tab-service"' in html and f"/tickets/add?customer_id={org.c_rep.id}" in html
    form = client.get(f"/tickets/add?customer_id={org.c_rep.id}").get_data(as_text=True)
    assert f'value="{org.c_rep.id}"' in form
    resp = client.post(f"/tickets/add?customer_id={org.c_rep.id}", data={
        "csrf_token": client.csrf, "customer_id": str(org.c_rep.id), "channel": "phone",
        "category_id": str(category("投诉").id), "priority": "P2", "subject": "发票开错了",
        "description": "", "contact_id": ""})
    assert resp.status_code == 302
    t = db.session.execute(select(Ticket).where(Ticket.subject == "发票开错了")).scalar_one()
    assert resp.headers["Location"].endswith(f"/tickets/show/{t.id}")
    assert t.team_id is not None and t.created_by_id == org.rep.id
    # A refusal shows the form again with the service's words.
    resp = client.post("/tickets/add", data={
        "csrf_token": client.csrf, "customer_id": str(org.c_north.id), "channel": "phone",
        "category_id": "", "priority": "P3", "subject": "越权"})
    assert resp.status_code == 200
    assert db.session.execute(select(Ticket).where(Ticket.subject == "越权")).first() is None


def test_customer_service_tab_and_dedicated_agent_form(clients, db, org):
    _desk(org)
    t = _raise(org, subject="打印机卡纸")
    html = clients.rep.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "打印机卡纸" in html and 'id="dedicated-agent-form"' not in html
    client = clients.staff
    html = client.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert 'id="dedicated-agent-form"' in html
    client.post(f"/dedicated-agent/{org.c_rep.id}", data={
        "csrf_token": client.csrf, "agent_id": str(org.agent2.id)})
    assert service_admin.dedicated_agent_of(org.c_rep.id) == org.agent2.id
    html = clients.rep.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert org.agent2.display_name in html
    # A rep may not (no permission: nothing changes).
    resp = clients.rep.post(f"/dedicated-agent/{org.c_rep.id}", data={
        "csrf_token": clients.rep.csrf, "unset": "1"})
    assert resp.status_code in (302, 403)
    assert service_admin.dedicated_agent_of(org.c_rep.id) == org.agent2.id
    client.post(f"/dedicated-agent/{org.c_rep.id}", data={"csrf_token": client.csrf,
                                                          "unset": "1"})
    assert db.session.get(CustomerServiceAgent, org.c_rep.id) is None
    assert t.customer_id == org.c_rep.id


def test_workbench_panels(clients, db, org):
    _desk(org)
    t = _raise(org, subject="工作台上的工单")
    assert t.agent_id == org.agent.id
    html = clients.agent.get("/workbench/").get_data(as_text=True)
    assert 'id="my-tickets"' in html and "工作台上的工单" in html
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert 'id="customer-tickets-panel"' in html and "工作台上的工单" in html
    html = clients.service_manager.get("/workbench/").get_data(as_text=True)
    assert 'id="my-tickets"' in html


def test_configuration_forms_save_through_the_service(clients, db, org):
    client = clients.admin
    fault = category("故障")
    client.post("/ticket-categories/add", data={"csrf_token": client.csrf, "name": "网络",
                                                "parent": str(fault.id), "position": "10",
                                                "active": "y"})
    network = db.session.execute(select(TicketCategory).where(
        TicketCategory.name == "网络")).scalar_one()
    assert network.path == f"/{fault.id}/{network.id}/"
    resp = client.post(f"/ticket-categories/edit/{fault.id}", data={
        "csrf_token": client.csrf, "name": "故障", "parent": str(network.id), "position": "1",
        "active": "y"})
    assert "分类不能放在自身或其下级分类之下" in resp.get_data(as_text=True)
    client.post("/service-teams/add", data={
        "csrf_token": client.csrf, "name": "二线", "strategy": "least_loaded", "active": "y",
        "members": [str(org.agent.id)], "manager": str(org.service_manager.id)})
    second = db.session.execute(select(ServiceTeam).where(ServiceTeam.name == "二线")
                                ).scalar_one()
    assert service_admin.team_member_ids(second.id) == [org.agent.id]
    html = client.get(f"/service-teams/edit/{second.id}").get_data(as_text=True)
    assert "二线" in html
    client.post("/routing-rules/add", data={
        "csrf_token": client.csrf, "name": "投诉走二线", "position": "5", "active": "y",
        "category": str(category("投诉").id), "priority": "", "grade": "", "province": "",
        "team": str(second.id)})
    rule = db.session.execute(select(TicketRoutingRule)).scalar_one()
    assert (rule.team_id, rule.category_id) == (second.id, category("投诉").id)
    settings = service_admin.settings()
    resp = client.post(f"/service-settings/edit/{settings.id}", data={
        "csrf_token": client.csrf, "low_score_threshold": "9", "low_score_action": "reopen",
        "max_attachment_mb": "10"})
    assert "low_score_threshold 必须是 1 到 4 之间的整数" in resp.get_data(as_text=True)
    client.post(f"/service-settings/edit/{settings.id}", data={
        "csrf_token": client.csrf, "low_score_threshold": "1", "low_score_action": "task",
        "max_attachment_mb": "5", "default_team": str(second.id)})
    db.session.expire_all()
    row = service_admin.settings()
    assert (row.low_score_threshold, row.low_score_action, row.max_attachment_mb,
            row.default_team_id) == (1, "task", 5, second.id)


def test_service_manager_cannot_edit_another_managers_team(clients, db, org):
    other = team(org.admin, "别人的组", [org.agent2])
    client = clients.service_manager
    resp = client.post(f"/service-teams/edit/{other.id}", data={
        "csrf_token": client.csrf, "name": "改名", "strategy": "round_robin", "active": "y",
        "members": [str(org.agent2.id)]})
    assert "客服主管只能修改自己管理的客服组" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ServiceTeam, other.id).name == "别人的组"


def test_attachments_upload_with_a_reply_and_download_for_readers_only(clients, db, org):
    import io

    from app.models.service_desk import TicketAttachment

    _desk(org)
    t = _raise(org)
    client = clients.agent
    resp = client.post(f"/tickets/reply/{t.id}", data={
        "csrf_token": client.csrf, "body": "请查看附件",
        "attachments": [(io.BytesIO(b"step 1\nstep 2\n"), "steps.txt")]},
        content_type="multipart/form-data")
    assert resp.status_code == 302
    row = db.session.execute(select(TicketAttachment)).scalar_one()
    assert (row.filename, row.size, row.message_id is not None) == ("steps.txt", 14, True)
    html = client.get(f"/tickets/show/{t.id}").get_data(as_text=True)
    link = f"/tickets/attachment/{t.id}/{row.id}"
    assert link in html
    got = clients.rep.get(link)  # the owner reads the ticket
    assert (got.status_code, got.data) == (200, b"step 1\nstep 2\n")
    assert got.headers["Content-Disposition"] == "attachment; filename*=UTF-8''steps.txt"
    other = _raise(org, customer=org.c_north)
    assert clients.rep.get(f"/tickets/attachment/{other.id}/{row.id}").status_code == 404
    # A refused type: the service's words, nothing kept.
    resp = client.post(f"/tickets/attach/{t.id}", data={
        "csrf_token": client.csrf, "file": (io.BytesIO(b"MZ"), "tool.exe")},
        content_type="multipart/form-data", follow_redirects=True)
    assert "不接受 .exe 类型的文件" in resp.get_data(as_text=True)
    assert len(db.session.execute(select(TicketAttachment)).all()) == 1


# --- issue 17 fixes -----------------------------------------------------------------------------
def _two_teams(org):
    """一线 (agent1, svcmgr1's) is the default team; 二线 (agent2) takes P1s."""
    first = team(org.admin, "一线", [org.agent], manager_id=org.service_manager.id)
    second = team(org.admin, "二线", [org.agent2])
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    service_admin.create_rule(org.admin, {"name": "P1 去二线", "position": 1, "active": True,
                                          "team_id": second.id, "priority": "P1"})
    return first, second


def test_customer_timeline_hides_tickets_the_reader_may_not_read(app, clients, db, org):
    from tests.conftest import login

    first, second = _two_teams(org)
    secret = _raise(org, subject="机密投诉内容")
    assert secret.team_id == first.id
    tickets.change_status(org.staff, secret.id, "resolved", note="赔偿五万元")
    mine = _raise(org, subject="二线的工单", priority="P1")
    assert mine.team_id == second.id
    page = clients.marketing.get(f"/customers/show/{org.c_rep.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "机密投诉内容" not in html and "赔偿五万元" not in html and "二线的工单" not in html
    a2 = login(app.test_client(), "agent2")
    assert a2.get(f"/tickets/show/{secret.id}").status_code == 404
    html = a2.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "二线的工单" in html
    assert "机密投诉内容" not in html and "赔偿五万元" not in html
    html = clients.rep.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert "机密投诉内容" in html and "赔偿五万元" in html and "二线的工单" in html


def test_a_ticket_routed_out_of_the_raisers_scope_goes_back_to_the_list(app, api, clients, db,
                                                                       org):
    first, second = _two_teams(org)
    c = clients.agent
    resp = c.post("/tickets/add", data={
        "csrf_token": c.csrf, "customer_id": str(org.c_north.id), "channel": "phone",
        "category_id": "", "priority": "P1", "subject": "转二线", "description": "",
        "contact_id": ""})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    t = db.session.execute(select(Ticket).where(Ticket.subject == "转二线")).scalar_one()
    assert (t.created_by_id, t.team_id, t.agent_id) == (org.agent.id, second.id, org.agent2.id)
    assert resp.headers["Location"].endswith("/tickets/list/")
    html = c.get("/tickets/list/").get_data(as_text=True)
    assert f"工单 #{t.id} 已提交，并分派给团队「二线」，不在你的范围内" in html
    assert "转二线" not in html.replace(f"工单 #{t.id} 已提交", "")  # not listed
    assert c.get(f"/tickets/show/{t.id}").status_code == 404
    assert c.post(f"/tickets/status/{t.id}", data={"csrf_token": c.csrf,
                                                   "status": "resolved"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).status == "assigned"
    # The API: 201 with the id, team and status, not the ticket.
    call = api("agent1")
    resp = call("POST", "/api/v1/tickets/", json={"customer_id": org.c_north.id,
                                                  "channel": "phone", "subject": "再转二线",
                                                  "priority": "P1"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    made = db.session.execute(select(Ticket).where(Ticket.subject == "再转二线")).scalar_one()
    assert body == {"id": made.id, "team_id": second.id, "team_name": "二线",
                    "status": "assigned",
                    "message": f"工单 #{made.id} 已提交，并分派给团队「二线」，不在你的范围内"}
    assert call("GET", f"/api/v1/tickets/{made.id}").status_code == 404
    assert call("POST", f"/api/v1/tickets/{made.id}/status",
                json={"status": "resolved"}).status_code == 404
    # Routed to its own team: 200 and the ticket, as before.
    resp = call("POST", "/api/v1/tickets/", json={"customer_id": org.c_rep.id,
                                                  "channel": "phone", "subject": "一线的"})
    assert resp.status_code == 200 and resp.get_json()["result"]["team_id"] == first.id


def _inbound(app, db, org, sender):
    import uuid

    from app.services import api_keys

    _made, raw = api_keys.create_key(org.admin, f"邮件网关{uuid.uuid4().hex[:6]}",
                                    "email_inbound")
    resp = app.test_client().post("/api/v1/tickets/inbound-mail", json={
        "from": sender, "to": "service@guishu.cn", "subject": "发票开错了", "text": "请重开",
        "message_id": f"<{uuid.uuid4()}@mx>"}, headers={"X-Api-Key": raw})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return db.session.get(Ticket, resp.get_json()["ticket_id"])


def test_ticket_page_masks_addresses_by_the_one_rule(app, clients, db, org):
    """The requester's and inbound senders' addresses as the API shows them: in full to
    whom the customer's contact rule gives them (staff, the owner, the desk while the
    ticket is open), masked to the others (the auditor, the desk once it is closed)."""
    first = _desk(org)
    known = _inbound(app, db, org, "王芳 <contact@hualian.cn>")       # c_north's address
    stranger = _inbound(app, db, org, "陌生人 <stranger@example.com>")  # no customer
    assert (known.customer_id, stranger.customer_id) == (org.c_north.id, None)
    tickets.assign(org.admin, known.id, team_id=first.id, agent_id=org.agent.id)
    tickets.assign(org.admin, stranger.id, team_id=first.id, agent_id=org.agent.id)

    def page(client, t):
        return client.get(f"/tickets/show/{t.id}").get_data(as_text=True)

    for t, address in ((known, "contact@hualian.cn"), (stranger, "stranger@example.com")):
        html = page(clients.auditor, t)
        assert address not in html and address[0] + "***@" in html, address
        api_view = clients.auditor.get(f"/api/v1/tickets/{t.id}").get_json()["result"]
        assert api_view["requester_email"] != address
        assert address in page(clients.staff, t) and address in page(clients.agent, t)
    # The owner of c_north (rep_north) reads it in full; once closed the agent does not.
    from tests.conftest import login
    north = login(app.test_client(), "rep3")
    assert "contact@hualian.cn" in page(north, known)
    tickets.change_status(org.staff, known.id, "closed")
    assert "contact@hualian.cn" not in page(clients.agent, known)


def test_handing_a_ticket_to_another_team_goes_back_to_the_list(clients, db, org):
    first, second = _two_teams(org)
    t = _raise(org)
    assert (t.team_id, t.agent_id) == (first.id, org.agent.id)
    c = clients.agent
    resp = c.post(f"/tickets/assign/{t.id}", data={"csrf_token": c.csrf,
                                                   "team_id": str(second.id), "agent_id": ""})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/tickets/list/")
    db.session.expire_all()
    assert db.session.get(Ticket, t.id).team_id == second.id
    assert c.get(f"/tickets/show/{t.id}").status_code == 404
