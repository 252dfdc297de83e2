"""Issue 17's "done means", walked through the pages and the API the people use: a ticket
raised by inbound e-mail (API key) and one raised by hand are routed to the right agent (the
customer's dedicated agent; a routing rule's team); the agent's reply is mailed by a real RQ
worker over a loopback SMTP server; the unanswered complaint breaches its SLA and is
escalated to the team lead, then the manager (the SLA job, at times taken from the stored
due time); the mailed ticket is resolved, its satisfaction survey mailed by the worker, and
the customer's 1 out of 5 through the survey link reopens it; the owners see all of it
(notifications, the customer's 服务 tab, the API).

The pages stamp the wall clock, so the SLA job's instants are the stored due times plus
fixed offsets: the same outcome whatever the day the test runs."""
from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select

from app.models import (Notification, SlaPolicy, SurveyInvitation, Task, Ticket, TicketEvent,
                        TicketMessage)
from app.services import api_keys, service_admin, sla_sweep
from tests.care_fixtures import SmtpServer
from tests.conftest import login
from tests.service_desk_fixtures import category

PUBLIC = "https://crm.example.com"
MAIL = "/api/v1/tickets/inbound-mail"


def _desk(db, org):
    """What admins set up on the desk's pages (tested there): two teams, a routing rule for
    complaints, the default team, SLA policies for P2 and P3."""
    first = service_admin.create_team(org.admin, {
        "name": "一线客服", "strategy": "round_robin", "lead_id": org.agent2.id,
        "manager_id": org.service_manager.id, "member_ids": [org.agent.id, org.agent2.id]})
    complaints = service_admin.create_team(org.admin, {
        "name": "投诉组", "strategy": "least_loaded", "lead_id": org.agent2.id,
        "manager_id": org.service_manager.id, "member_ids": [org.agent.id]})
    service_admin.create_rule(org.admin, {"name": "投诉进投诉组", "category_id": category("投诉").id,
                                          "team_id": complaints.id})
    service_admin.update_settings(org.admin, {"default_team_id": first.id})
    db.session.add_all([
        SlaPolicy(name="P2", priority="P2", first_response_minutes=60, resolution_minutes=480,
                  clock="business", warn_before_minutes=30, escalate_after_minutes=120),
        SlaPolicy(name="P3", priority="P3", first_response_minutes=480,
                  resolution_minutes=2700, clock="business")])
    db.session.commit()
    return first, complaints


def _ok(resp, code=302):
    assert resp.status_code == code, resp.get_data(as_text=True)[:800]
    return resp


def _ticket(db, pk) -> Ticket:
    db.session.expire_all()
    return db.session.get(Ticket, pk)


def _told(db, user_id, kind) -> list[str]:
    return list(db.session.execute(select(Notification.title).where(
        Notification.user_id == user_id, Notification.kind == kind)
        .order_by(Notification.id)).scalars())


@pytest.mark.real_db
def test_mail_and_hand_tickets_routed_answered_escalated_rated_and_seen(
        app, db, org, clients, redis_url, database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue
    from jobs.surveys import survey_deliver
    from jobs.tickets import ticket_mail_deliver
    from tests.test_jobs import run_burst_worker

    first, complaints = _desk(db, org)
    _made, key = api_keys.create_key(org.admin, "邮件网关", "email_inbound")
    north, east = org.c_north.id, org.c_rep.id
    east_name, agent2_name = org.c_rep.name, org.agent2.display_name
    agent1, agent2, manager = org.agent.id, org.agent2.id, org.service_manager.id
    rep1, rep3 = org.rep.id, org.rep_north.id

    # 0. Back-office staff gives 北京华联 a dedicated agent on its 服务 tab.
    staff = clients.staff
    _ok(staff.post(f"/dedicated-agent/{north}", data={
        "csrf_token": staff.csrf, "agent_id": str(agent2),
        "next": f"/customers/show/{north}"}))
    assert service_admin.dedicated_agent_of(north) == agent2

    # 1. The customer writes in: the mail gateway posts it with its API key.
    resp = app.test_client().post(MAIL, json={
        "from": "华联采购 <Contact@HuaLian.cn>", "to": "service@guishu.cn",
        "subject": "打印机无法连接", "text": "办公室的打印机从昨天起连不上。",
        "message_id": f"<{uuid.uuid4()}@mx.hualian.cn>"}, headers={"X-Api-Key": key})
    mailed = _ok(resp, 200).get_json()["ticket_id"]
    t1 = _ticket(db, mailed)
    # Matched by the address to 北京华联, routed to its dedicated agent.
    assert (t1.customer_id, t1.channel, t1.agent_id, t1.team_id, t1.status, t1.priority) == (
        north, "email", agent2, first.id, "assigned", "P3")
    assert t1.first_response_due_at is not None

    # 2. agent1 takes a complaint about 杭州云帆 on the phone and raises it by hand.
    desk1 = clients.agent
    _ok(desk1.post("/tickets/add", data={
        "csrf_token": desk1.csrf, "customer_id": str(east), "contact_id": "",
        "channel": "phone", "category_id": str(category("投诉").id), "priority": "P2",
        "subject": "安装人员态度差", "description": "客户来电投诉上门安装人员。",
        "requester_name": "", "requester_email": ""}))
    t2 = db.session.execute(select(Ticket).where(Ticket.subject == "安装人员态度差")).scalar_one()
    hand = t2.id
    # The complaint rule's team, its one agent; the owner (rep1) is told of the complaint.
    assert (t2.customer_id, t2.team_id, t2.agent_id, t2.status) == (
        east, complaints.id, agent1, "assigned")
    assert _told(db, rep1, "ticket_complaint") == [f"{east_name}的投诉：安装人员态度差"]

    # 3. agent2 answers the mailed ticket on its page: recorded, the response clock stopped.
    desk2 = login(app.test_client(), org.agent2.username)
    _ok(desk2.post(f"/tickets/reply/{mailed}", data={
        "csrf_token": desk2.csrf, "body": "您好，工程师今天下午上门检查打印机。"}))
    t1 = _ticket(db, mailed)
    assert t1.status == "in_progress" and t1.first_response_at is not None
    reply = db.session.execute(select(TicketMessage).where(
        TicketMessage.ticket_id == mailed, TicketMessage.kind == "reply")).scalar_one()
    assert (reply.address, reply.delivery_status) == ("Contact@HuaLian.cn", "pending")

    # 4. Nobody answers the complaint: the SLA job breaches it and escalates it to the
    #    team lead (agent2), and two hours past the breach to the manager (svcmgr1).
    due = _ticket(db, hand).first_response_due_at
    assert sla_sweep.sweep(due + dt.timedelta(minutes=1)).summary()["breached_response"] == 1
    t2 = _ticket(db, hand)
    assert (t2.response_breached_at, t2.escalation_level) == (due + dt.timedelta(minutes=1), 1)
    assert sla_sweep.sweep(due + dt.timedelta(days=3)).summary()["escalated_2"] == 1
    assert _ticket(db, hand).escalation_level == 2
    kinds = set(db.session.execute(select(TicketEvent.kind).where(
        TicketEvent.ticket_id == hand)).scalars())
    assert {"created", "sla_breach_response", "sla_escalated"} <= kinds
    assert _told(db, agent2, "sla_escalation") == [f"工单已升级给您：#{hand} 安装人员态度差（超出 SLA）"]
    assert _told(db, manager, "sla_escalation") == _told(db, agent2, "sla_escalation")
    escalations = db.session.execute(select(Task.owner_id).where(
        Task.record_type == "ticket", Task.record_id == hand)).scalars().all()
    assert sorted(escalations) == sorted([agent2, manager])
    # The mailed ticket was answered in time: untouched by the job.
    assert _ticket(db, mailed).response_breached_at is None

    # 5. agent2 resolves the mailed ticket: the satisfaction survey is queued for its contact.
    _ok(desk2.post(f"/tickets/status/{mailed}", data={
        "csrf_token": desk2.csrf, "status": "resolved", "note": ""}))
    assert _ticket(db, mailed).status == "resolved"
    invitation = db.session.execute(select(SurveyInvitation).where(
        SurveyInvitation.ticket_id == mailed)).scalar_one()
    assert (invitation.customer_id, invitation.channel, invitation.address,
            invitation.delivery_status) == (north, "email", "contact@hualian.cn", "pending")

    # 6. The mail jobs on a real burst worker, against real Redis, to a loopback SMTP: the
    #    reply and the survey link reach the customer.
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        reply_job = get_queue(queue).enqueue(ticket_mail_deliver)
        survey_job = get_queue(queue).enqueue(survey_deliver)
        result = run_burst_worker(redis_url, database_url, queue, extra_env={
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port),
            "GUISHU_PUBLIC_URL": PUBLIC, "SECRET_KEY": app.config["SECRET_KEY"]})
        assert result.returncode == 0, result.stderr[-2000:]
        reply_job.refresh()
        survey_job.refresh()
        assert reply_job.return_value()["sent"] == 1, result.stderr[-2000:]
        assert survey_job.return_value()["sent"] == 1, result.stderr[-2000:]
        mails = {m["Subject"]: m for m in server.inbox.messages}
    assert {m["To"] for m in mails.values()} == {"Contact@HuaLian.cn", "contact@hualian.cn"}
    answer_mail = next(m for s, m in mails.items() if f"#{mailed}" in s)
    assert "工程师今天下午上门检查打印机" in answer_mail.get_content()
    survey_mail = mails["问卷调查：服务满意度调查"]
    token = re.search(re.escape(PUBLIC) + r"/s/([0-9a-f]{48})", survey_mail.get_content()).group(1)
    assert token == invitation.token

    # 7. The customer follows the link (no login) and gives 1 out of 5: the rating is on the
    #    ticket, and the low score reopens it (the settings' default action).
    reader = app.test_client()
    page = _ok(reader.get(f"/s/{token}"), 200).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    rating_q, comment_q = re.findall(r'name="(q\d+)"', page)[0], re.findall(
        r'name="(q\d+)"', page)[-1]
    _ok(reader.post(f"/s/{token}", data={"csrf_token": csrf, rating_q: "1",
                                         comment_q: "打印机还是连不上"}), 200)
    t1 = _ticket(db, mailed)
    assert (t1.satisfaction_score, t1.satisfaction_comment, t1.status, t1.reopened_count) == (
        1, "打印机还是连不上", "assigned", 1)
    history = [e for e in db.session.execute(select(TicketEvent.kind).where(
        TicketEvent.ticket_id == mailed).order_by(TicketEvent.id)).scalars()]
    assert history[-2:] == ["rated", "reopened"]

    # 8. The owners see all of it. rep3 (北京华联's owner): the low-score notification, the
    #    服务 tab with the reopened ticket and its rating, the ticket's page.
    assert _told(db, rep3, "ticket_low_score") == ["低满意度（1 分）：打印机无法连接"]
    owner = login(app.test_client(), org.rep_north.username)
    html = owner.get(f"/customers/show/{north}").get_data(as_text=True)
    assert 'id="tab-service"' in html and f'data-id="{mailed}" data-status="assigned"' in html
    assert re.search(r'id="last-rating">.*?1 / 5</a> 打印机还是连不上', html, re.S)
    assert "打印机无法连接" in _ok(owner.get(f"/tickets/show/{mailed}"), 200).get_data(
        as_text=True)
    assert owner.get(f"/tickets/show/{hand}").status_code == 404  # not rep3's customer
    # rep1 (杭州云帆's owner): the complaint on the 服务 tab and through the API.
    rep = clients.rep
    html = rep.get(f"/customers/show/{east}").get_data(as_text=True)
    assert f'data-id="{hand}" data-status="assigned"' in html and "安装人员态度差" in html
    body = _ok(rep.get(f"/api/v1/tickets/{hand}"), 200).get_json()["result"]
    assert (body["id"], body["customer_id"], body["customer_name"], body["status"],
            body["agent_id"], body["first_response_at"]) == (hand, east, east_name, "assigned",
                                                             agent1, None)
    assert rep.get(f"/api/v1/tickets/{mailed}").status_code == 404
    # The service manager's analysis: agent2's one rating, a 1, counted as a low score.
    html = clients.service_manager.get("/service-analysis/").get_data(as_text=True)
    agents = re.search(r'id="sa-satisfaction_agent">(.*?)</table>', html, re.S).group(1)
    assert f"<tr><td>{agent2_name}</td><td>1</td><td>1.0</td><td>1</td></tr>" in agents
