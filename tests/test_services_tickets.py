"""Tickets (工单): raising one (fields refused by name), who reads and works which tickets
(every role), the status machine and its SLA / survey moments, assignment, replies and
notes, history, audit and the customer's timeline, the owner told of complaints and P1s,
and two agents acting on one ticket at once."""
from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import select

from app.models import AuditLog, Notification, Task, Ticket, TicketEvent, TicketMessage
from app.services import tasks, tickets, timeline
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from tests.ticket_fixtures import NOW, build_desk, route_to

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def desk(db, org):
    return build_desk(db, org)




def raise_one(actor, customer, **data):
    return tickets.create(actor, {"customer_id": customer.id, "channel": "phone",
                                  "subject": "打印机卡纸", **data}, now=NOW)


def events_of(db, ticket_id):
    db.session.expire_all()
    return [(e.kind, e.from_value, e.to_value) for e in db.session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        .order_by(TicketEvent.id)).scalars()]


def audit_of(db, ticket_id):
    return [(a.action, a.changes) for a in db.session.execute(
        select(AuditLog).where(AuditLog.object_type == "ticket", AuditLog.object_id == ticket_id)
        .order_by(AuditLog.id)).scalars()]


def notes_of(db, user_id):
    db.session.expire_all()
    return [(n.kind, n.title, n.link) for n in db.session.execute(
        select(Notification).where(Notification.user_id == user_id,
                                   Notification.kind.like("ticket%"))
        .order_by(Notification.id)).scalars()]


# --- raising ---------------------------------------------------------------------------------
def test_an_agent_raises_a_ticket_routed_to_its_team_and_agent(db, org, desk):
    route_to(db, desk.team)
    t = raise_one(org.agent, org.c_rep, category_id=desk.consult.id, description="第三台")
    assert (t.status, t.team_id, t.agent_id, t.assigned_at, t.priority, t.created_by_id) == (
        "assigned", desk.team.id, org.agent.id, NOW, "P3", org.agent.id)
    assert events_of(db, t.id) == [("created", None, "打印机卡纸"),
                                   ("team", None, str(desk.team.id)),
                                   ("assigned", None, str(org.agent.id)),
                                   ("status", "new", "assigned")]
    # The SLA clocks started: 60 and 480 business minutes from 10:00 on a Tuesday.
    assert (t.sla_policy_id, t.first_response_due_at, t.resolution_due_at) == (
        desk.policy.id, NOW + HOUR, NOW + 8 * HOUR)
    [(action, changes)] = audit_of(db, t.id)
    assert action == "create" and changes["subject"] == [None, "打印机卡纸"]
    assert changes["customer_id"] == [None, org.c_rep.id]


def test_an_unrouted_ticket_stays_new(db, org, desk):
    t = raise_one(org.staff, org.c_rep)
    assert (t.status, t.team_id, t.agent_id) == ("new", None, None)


def test_each_bad_field_is_refused_by_name(db, org, desk):
    with pytest.raises(ValidationFailed) as exc:
        tickets.create(org.agent, {"customer_id": org.c_rep.id, "channel": "fax",
                                   "priority": "P9", "subject": "x" * 201,
                                   "category_id": desk.retired.id,
                                   "contact_id": 2**31, "colour": "red"})
    assert exc.value.fields == {
        "colour": "不能修改或不存在的字段",
        "subject": "不能超过 200 个字符",
        "channel": "channel 只能是：phone、email、online、wechat、visit",
        "priority": "priority 只能是：P1、P2、P3、P4",
        "category_id": "分类不存在或已停用",
        "contact_id": "contact_id 必须是 1 到 2147483647 之间的整数",
    }
    with pytest.raises(ValidationFailed) as exc:
        tickets.create(org.agent, {"channel": "phone", "subject": "无名来电",
                                   "description": "长" * 10_001})
    assert exc.value.fields == {"description": "不能超过 10000 个字符"}
    with pytest.raises(ValidationFailed) as exc:
        tickets.create(org.agent, {"channel": "phone", "subject": "无名来电"})
    assert exc.value.fields == {"customer_id": "请指明客户，或来电人（姓名或电子邮箱）"}


def test_the_contact_must_be_the_customers(db, org, desk):
    from app.models import Contact

    other = Contact(customer_id=org.c_north.id, name="王经理")
    db.session.add(other)
    db.session.commit()
    with pytest.raises(ValidationFailed) as exc:
        raise_one(org.agent, org.c_rep, contact_id=other.id)
    assert exc.value.fields == {"contact_id": "联系人不是该工单客户的联系人"}
    t = raise_one(org.agent, org.c_north, contact_id=other.id)
    assert t.contact_id == other.id


def test_owners_raise_tickets_for_their_own_customers_only(db, org, desk):
    assert raise_one(org.rep, org.c_rep).customer_id == org.c_rep.id
    assert raise_one(org.manager, org.c_rep2).customer_id == org.c_rep2.id
    with pytest.raises(ValidationFailed) as exc:
        raise_one(org.rep, org.c_north)
    assert exc.value.fields == {"customer_id": "只能为数据范围内的客户提交工单"}
    with pytest.raises(ValidationFailed) as exc:
        tickets.create(org.rep, {"channel": "phone", "subject": "无客户",
                                 "requester_name": "张三"})
    assert exc.value.fields == {"customer_id": "必填"}
    for who in (org.marketing, org.auditor):
        with pytest.raises(PermissionDenied) as denied:
            raise_one(who, org.c_rep)
        assert denied.value.message == "你的角色不能提交工单"


# --- scope ----------------------------------------------------------------------------------
def test_who_reads_which_tickets(db, org, desk):
    mine_team = raise_one(org.staff, org.c_rep)
    tickets.assign(org.staff, mine_team.id, team_id=desk.team.id)   # team 一线, nobody yet
    route_to(db, desk.team2)
    other_team = raise_one(org.staff, org.c_north)             # team 二线, agent2
    route_to(db, None)
    loose = tickets.create(org.staff, {"channel": "email", "subject": "来信",
                                       "requester_email": "Zhang@Example.com"}, now=NOW)
    assert loose.requester_email == "zhang@example.com"

    def seen(user):
        return sorted(db.session.execute(select(Ticket.id).where(
            tickets.scope_clause(user))).scalars())

    everything = sorted([mine_team.id, other_team.id, loose.id])
    assert seen(org.admin) == seen(org.staff) == seen(org.auditor) == everything
    assert seen(org.agent) == [mine_team.id]
    assert seen(org.agent2) == [other_team.id]
    # svcmgr1 manages 一线: its team's tickets. agent2 reports to it, but 二线 is no team of
    # svcmgr1's: a manager reads its teams' tickets, not every ticket of an agent of its.
    assert seen(org.service_manager) == [mine_team.id]
    assert seen(org.rep) == seen(org.manager) == [mine_team.id]
    assert seen(org.rep_north) == seen(org.manager_north) == [other_team.id]
    assert seen(org.rep2) == seen(org.marketing) == []
    with pytest.raises(OutOfScope) as exc:
        tickets.get_ticket(org.agent, other_team.id)
    assert (exc.value.message, exc.value.status) == ("工单不存在或不在你的数据范围内", 404)
    with pytest.raises(OutOfScope):
        tickets.get_ticket(org.agent, 2**40)
    with pytest.raises(PermissionDenied) as denied:
        tickets.get_ticket(org.auditor, mine_team.id, write=True)
    assert denied.value.message == "你的角色不能处理工单"
    assert tickets.get_ticket(org.rep, mine_team.id).id == mine_team.id
    with pytest.raises(PermissionDenied):
        tickets.get_ticket(org.rep, mine_team.id, write=True)
    # Assigned to an agent outside the team: that agent sees it.
    tickets.assign(org.admin, other_team.id, agent_id=org.agent.id, team_id=desk.team.id)
    assert seen(org.agent) == [mine_team.id, other_team.id]
    assert [t.id for t in tickets.open_tickets_of(org.rep_north, org.c_north.id)] == [
        other_team.id]


# --- status ---------------------------------------------------------------------------------
def test_the_status_machine_with_its_sla_and_survey_moments(db, org, desk, monkeypatch):
    surveyed = []
    from app.services import satisfaction

    monkeypatch.setattr(satisfaction, "on_resolved",
                        lambda ticket, now: surveyed.append((ticket.id, now)))
    route_to(db, desk.team)
    t = raise_one(org.agent, org.c_rep)
    with pytest.raises(Conflict) as exc:
        tickets.change_status(org.agent, t.id, "new")
    assert (exc.value.code, exc.value.message) == ("ticket_status", "工单不能从“已分派”变为“新建”")
    with pytest.raises(Conflict) as exc:
        tickets.change_status(org.agent, t.id, "assigned")
    assert exc.value.message == "工单已经是“已分派”"
    with pytest.raises(ValidationFailed) as bad:
        tickets.change_status(org.agent, t.id, "done")
    assert bad.value.fields == {
        "status": "status 只能是：new、assigned、in_progress、waiting、resolved、closed"}
    tickets.change_status(org.agent, t.id, "in_progress", now=NOW)
    tickets.change_status(org.agent, t.id, "waiting", now=NOW + HOUR)   # the clock pauses
    assert (t.sla_paused_at, t.resolution_due_at, t.resolution_remaining_seconds) == (
        NOW + HOUR, None, 7 * 3600)
    tickets.change_status(org.agent, t.id, "in_progress", now=NOW + 2 * HOUR)  # and resumes
    # 7 hours left from 12:00: 6 that day, 1 the next morning (10:00).
    assert (t.sla_paused_at, t.resolution_due_at) == (None, NOW + 24 * HOUR)
    tickets.change_status(org.agent, t.id, "resolved", now=NOW)
    assert (t.status, t.resolved_at) == ("resolved", NOW)
    assert surveyed == [(t.id, NOW)]
    with pytest.raises(Conflict) as exc:
        tickets.change_status(org.agent, t.id, "waiting")
    assert exc.value.message == "工单不能从“已解决”变为“待客户确认”"
    tickets.change_status(org.agent, t.id, "closed", note="客户确认", now=NOW)
    assert (t.status, t.closed_at) == ("closed", NOW)
    tickets.reopen(None, t.id, "满意度低", now=NOW + 3 * HOUR)
    assert (t.status, t.reopened_count, t.resolved_at, t.closed_at) == ("assigned", 1, None, None)
    # A fresh clock from 13:00: 5 business hours that day, 3 the next morning (12:00).
    assert t.resolution_due_at == NOW + 26 * HOUR
    with pytest.raises(Conflict) as exc:
        tickets.reopen(org.agent, t.id, "再开")
    assert exc.value.message == "只有已解决或已关闭的工单可以重开；该工单为“已分派”"
    tickets.change_status(org.agent, t.id, "resolved", now=NOW)
    tickets.change_status(org.agent, t.id, "in_progress", now=NOW)  # the agent reopens it
    assert (t.status, t.reopened_count) == ("in_progress", 2)
    assert [e for e in events_of(db, t.id) if e[0] in ("status", "reopened")] == [
        ("status", "new", "assigned"), ("status", "assigned", "in_progress"),
        ("status", "in_progress", "waiting"), ("status", "waiting", "in_progress"),
        ("status", "in_progress", "resolved"), ("status", "resolved", "closed"),
        ("reopened", "closed", "assigned"), ("status", "assigned", "resolved"),
        ("reopened", "resolved", "in_progress")]
    assert [a for a, _ in audit_of(db, t.id)] == [
        "create", "status", "status", "status", "status", "status", "reopen", "status",
        "reopen"]
    with pytest.raises(PermissionDenied):
        tickets.change_status(org.rep, t.id, "resolved")


# --- assignment -----------------------------------------------------------------------------
def test_assignment_rules(db, org, desk):
    t = raise_one(org.staff, org.c_rep)
    tickets.assign(org.staff, t.id, team_id=desk.team.id)
    tickets.assign(org.agent, t.id, agent_id=org.agent.id, now=NOW)   # takes it
    assert (t.status, t.agent_id, t.assigned_at) == ("assigned", org.agent.id, NOW)
    with pytest.raises(ValidationFailed) as exc:
        tickets.assign(org.service_manager, t.id, agent_id=org.agent2.id)
    assert exc.value.fields == {"agent_id": "测试agent2 不是该团队的成员"}
    with pytest.raises(ValidationFailed) as exc:
        tickets.assign(org.service_manager, t.id, team_id=desk.team2.id)
    assert exc.value.fields == {"team_id": "只能把工单分派给自己的团队"}
    with pytest.raises(ValidationFailed) as exc:
        tickets.assign(org.admin, t.id, agent_id=org.rep.id, team_id=desk.team2.id)
    assert exc.value.fields == {"agent_id": "测试rep1 不是客服"}
    notified = tickets.assign(org.admin, t.id, agent_id=org.agent2.id, team_id=desk.team2.id)
    assert (notified.team_id, notified.agent_id) == (desk.team2.id, org.agent2.id)
    assert notes_of(db, org.agent2.id) == [
        ("ticket_assigned", f"工单 #{t.id} 已分派给你：打印机卡纸", f"/tickets/show/{t.id}")]
    # agent1 no longer reads it; agent2 cannot hand a ticket another agent holds... its own
    # it may hand to its team mates, and the assignment is audited.
    with pytest.raises(OutOfScope):
        tickets.assign(org.agent, t.id, agent_id=org.agent.id)
    assert [a for a, _ in audit_of(db, t.id)][-2:] == ["assign", "assign"]
    tickets.change_status(org.agent2, t.id, "resolved")
    with pytest.raises(Conflict) as exc:
        tickets.assign(org.admin, t.id, agent_id=org.agent2.id)
    assert exc.value.message == "“已解决”的工单不能分派，请先重开"


def test_an_agent_cannot_take_a_ticket_another_agent_holds(db, org, desk):
    db.session.add(__import__("app.models", fromlist=["ServiceTeamMember"]).ServiceTeamMember(
        team_id=desk.team.id, user_id=org.agent2.id))
    db.session.commit()
    t = raise_one(org.staff, org.c_rep)
    tickets.assign(org.staff, t.id, agent_id=org.agent2.id, team_id=desk.team.id)
    with pytest.raises(Conflict) as exc:
        tickets.assign(org.agent, t.id, agent_id=org.agent.id)
    assert (exc.value.code, exc.value.message) == ("ticket_taken", "工单已分派给 测试agent2")


# --- messages -------------------------------------------------------------------------------
def test_the_first_reply_answers_and_puts_the_ticket_in_progress(db, org, desk):
    from app.models import Contact

    contact = Contact(customer_id=org.c_rep.id, name="李工", email="li@yunfan.cn")
    db.session.add(contact)
    db.session.commit()
    route_to(db, desk.team)
    t = raise_one(org.agent, org.c_rep, contact_id=contact.id)
    m = tickets.reply(org.agent, t.id, "已安排上门", now=NOW)
    assert (m.kind, m.address, m.delivery_status, m.next_attempt_at) == (
        "reply", "li@yunfan.cn", "pending", NOW)
    assert (t.status, t.first_response_at) == ("in_progress", NOW)
    tickets.reply(org.agent, t.id, "第二次回复", now=NOW + HOUR)
    assert t.first_response_at == NOW  # the first reply only
    with pytest.raises(ValidationFailed) as exc:
        tickets.reply(org.agent, t.id, "  ")
    assert exc.value.fields == {"body": "必填"}
    n = tickets.note(org.rep, t.id, "客户是重点客户", now=NOW)   # the owner adds a note
    assert (n.kind, n.delivery_status, n.address) == ("note", None, None)
    with pytest.raises(OutOfScope):
        tickets.note(org.rep_north, t.id, "看不到")
    with pytest.raises(PermissionDenied):
        tickets.reply(org.rep, t.id, "代回复")
    with pytest.raises(PermissionDenied):
        tickets.note(org.auditor, t.id, "审计")
    assert [k for k, _f, _t in events_of(db, t.id)][-4:] == ["reply", "status", "reply", "note"]
    tickets.change_status(org.agent, t.id, "closed")
    with pytest.raises(Conflict) as exc:
        tickets.reply(org.agent, t.id, "关闭后")
    assert exc.value.message == "“已关闭”的工单不能回复，请先重开"
    assert len(db.session.execute(select(TicketMessage.id).where(
        TicketMessage.ticket_id == t.id)).all()) == 3


def test_a_reply_without_an_address_is_recorded_not_sent(db, org, desk):
    route_to(db, desk.team)
    t = raise_one(org.agent, org.c_rep)   # c_rep has a mobile, no e-mail
    m = tickets.reply(org.agent, t.id, "电话回访过")
    assert (m.address, m.delivery_status) == (None, None)


# --- the owner hears of complaints and P1s --------------------------------------------------
def test_the_owner_is_told_of_complaints_and_p1s(db, org, desk):
    route_to(db, desk.team)  # agent1's: it works what it raised
    complaint = raise_one(org.agent, org.c_rep, category_id=desk.product.id, subject="质量差")
    p1 = raise_one(org.agent, org.c_rep, priority="P1", subject="停产")
    raise_one(org.agent, org.c_rep, category_id=desk.consult.id, subject="咨询价格")
    raise_one(org.rep, org.c_rep, priority="P1", subject="自己提的")  # the owner knows
    assert notes_of(db, org.rep.id) == [
        ("ticket_complaint", "杭州云帆科技有限公司的投诉：质量差",
         f"/tickets/show/{complaint.id}"),
        ("ticket_p1", "杭州云帆科技有限公司的 P1 工单：停产", f"/tickets/show/{p1.id}")]
    later = raise_one(org.agent, org.c_rep, subject="升级")
    tickets.update(org.agent, later.id, {"priority": "P1"}, now=NOW)
    assert notes_of(db, org.rep.id)[-1][0] == "ticket_p1"
    assert tickets.is_complaint(desk.product.id) and not tickets.is_complaint(desk.consult.id)


# --- update, history, timeline, tasks -------------------------------------------------------
def test_update_records_each_change_and_relinks_the_customer(db, org, desk):
    loose = tickets.create(org.staff, {"channel": "email", "subject": "来信",
                                       "requester_email": "x@example.com"}, now=NOW)
    tickets.update(org.staff, loose.id, {"customer_id": org.c_rep.id, "priority": "P2",
                                         "subject": "来信（已关联）"}, now=NOW)
    assert (loose.customer_id, loose.priority, loose.subject) == (
        org.c_rep.id, "P2", "来信（已关联）")
    assert events_of(db, loose.id)[1:] == [("priority", "P3", "P2"),
                                           ("customer", None, str(org.c_rep.id)),
                                           ("edited", None, None)]
    assert loose.sla_policy_id == desk.policy.id
    assert audit_of(db, loose.id)[-1] == ("update", {
        "customer_id": [None, org.c_rep.id], "priority": ["P3", "P2"],
        "subject": ["来信", "来信（已关联）"]})
    with pytest.raises(ValidationFailed) as exc:
        tickets.update(org.staff, loose.id, {"status": "closed"})
    assert exc.value.fields == {"status": "不能修改或不存在的字段"}


def test_the_customer_timeline_shows_its_tickets(app, db, org, desk):
    t = raise_one(org.agent, org.c_rep)
    tickets.change_status(org.admin, t.id, "resolved", now=NOW)
    with app.test_request_context():
        page = timeline.page_of(org.rep, org.c_rep.id)
    entries = [(e.kind, e.summary, e.link) for e in page.entries if e.kind == "ticket"]
    assert entries == [
        ("ticket", f"工单 #{t.id} 打印机卡纸：新建 → 已解决", f"/tickets/show/{t.id}"),
        ("ticket", f"工单 #{t.id} 已提交（电话，P3 普通）：打印机卡纸", f"/tickets/show/{t.id}")]


def test_tasks_link_to_tickets_the_owner_may_read(db, org, desk):
    t = raise_one(org.agent, org.c_rep)
    task = tasks.create(org.rep, {"subject": "跟进投诉", "due_at": "2026-12-02 09:00",
                                  "record_type": "ticket", "record_id": t.id})
    assert tasks.record_link(task) == f"/tickets/show/{t.id}"
    assert tasks.record_names([task]) == {("ticket", t.id): f"#{t.id} 打印机卡纸"}
    with pytest.raises(OutOfScope):
        tasks.create(org.rep_north, {"subject": "看不到", "due_at": "2026-12-02 09:00",
                                     "record_type": "ticket", "record_id": t.id})
    assert db.session.execute(select(Task.id).where(Task.record_type == "ticket")).all()


# --- two at once ----------------------------------------------------------------------------
def _race(app, users, action):
    """Run action(user) for each user id in its own thread, all at once; the outcomes."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(users))

    def work(user_id):
        with app.app_context():
            from app.extensions import db as tdb
            from app.models import User

            try:
                user = tdb.session.get(User, user_id)
                barrier.wait(timeout=30)
                action(user)
                outcomes.append("ok")
            except Conflict as exc:
                outcomes.append(exc.code)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.real_db
def test_two_agents_resolving_one_ticket_at_once_resolve_it_once(app, db, org, desk):
    route_to(db, desk.team)
    t = raise_one(org.agent, org.c_rep)
    ticket_id = t.id
    outcomes = _race(app, [org.agent.id, org.service_manager.id],
                     lambda user: tickets.change_status(user, ticket_id, "resolved"))
    assert outcomes == ["ok", "ticket_status"]
    assert [e for e in events_of(db, ticket_id) if e[2] == "resolved"] == [
        ("status", "assigned", "resolved")]


@pytest.mark.real_db
def test_two_agents_taking_one_ticket_at_once_one_gets_it(app, db, org, desk):
    from app.models import ServiceTeamMember

    db.session.add(ServiceTeamMember(team_id=desk.team.id, user_id=org.agent2.id))
    db.session.commit()
    ticket_id = raise_one(org.staff, org.c_rep).id
    tickets.assign(org.staff, ticket_id, team_id=desk.team.id)
    outcomes = _race(app, [org.agent.id, org.agent2.id],
                     lambda user: tickets.assign(user, ticket_id, agent_id=user.id))
    assert outcomes == ["ok", "ticket_taken"]
    assert [e[0] for e in events_of(db, ticket_id)].count("assigned") == 1


# --- issue 17 fixes: scope --------------------------------------------------------------------
def test_the_timeline_lists_only_the_tickets_the_reader_may_read(app, db, org, desk):
    """Reading a customer is not reading its tickets: marketing reads none, an agent its
    teams' only, a rep browsing a pool customer none of the pool customer's."""
    route_to(db, desk.team)
    secret = raise_one(org.staff, org.c_rep, subject="机密投诉内容")
    tickets.change_status(org.staff, secret.id, "resolved", note="赔偿五万元", now=NOW)
    mine = raise_one(org.staff, org.c_rep, subject="二线的工单")
    tickets.assign(org.staff, mine.id, team_id=desk.team2.id, agent_id=org.agent2.id)
    pooled = raise_one(org.staff, org.c_pool, subject="公海客户的工单")

    def subjects(actor, customer):
        with app.test_request_context():
            page = timeline.page_of(actor, customer.id)
        return sorted({e.summary.split("：")[0].split(" ")[1] for e in page.entries
                       if e.kind == "ticket"}), page.total

    assert subjects(org.marketing, org.c_rep)[0] == []
    assert subjects(org.agent2, org.c_rep)[0] == [f"#{mine.id}"]
    assert subjects(org.agent, org.c_rep)[0] == [f"#{secret.id}"]
    assert subjects(org.rep, org.c_rep)[0] == sorted([f"#{secret.id}", f"#{mine.id}"])
    # The count follows the same scope (the pages are counted, not just filtered).
    assert subjects(org.marketing, org.c_rep)[1] < subjects(org.rep, org.c_rep)[1]
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id))
    db.session.commit()
    assert subjects(org.rep, org.c_pool)[0] == []            # a pool member browsing
    assert subjects(org.staff, org.c_pool)[0] == [f"#{pooled.id}"]


def test_a_manager_reads_its_teams_tickets_not_an_agent_it_teams_up(db, org, desk):
    """A second service manager who makes a team of svcmgr1's agent1 (an admin's doing:
    the manager itself may not) reads that team's tickets, not agent1's tickets of 一线."""
    from app.models import ServiceTeam, ServiceTeamMember
    from app.security import ROLE_SERVICE_MANAGER
    from tests.conftest import make_user

    other = make_user("svcmgr9", ROLE_SERVICE_MANAGER, org.service)
    route_to(db, desk.team)
    t = raise_one(org.staff, org.c_rep)
    assert (t.team_id, t.agent_id) == (desk.team.id, org.agent.id)
    poach = ServiceTeam(name="挖角", manager_id=other.id)
    db.session.add(poach)
    db.session.flush()
    db.session.add(ServiceTeamMember(team_id=poach.id, user_id=org.agent.id))
    db.session.commit()
    with pytest.raises(OutOfScope):
        tickets.get_ticket(other, t.id)
    theirs = raise_one(org.staff, org.c_rep, subject="挖角组的工单")
    tickets.assign(org.staff, theirs.id, team_id=poach.id, agent_id=org.agent.id)
    assert tickets.get_ticket(other, theirs.id).id == theirs.id
    # svcmgr1 reads 一线's tickets, and its own; not 二线's although agent2 reports to it.
    route_to(db, desk.team2)
    second = raise_one(org.staff, org.c_rep)
    assert second.agent_id == org.agent2.id
    with pytest.raises(OutOfScope):
        tickets.get_ticket(org.service_manager, second.id)
    assert tickets.get_ticket(org.service_manager, t.id).id == t.id
    second.agent_id = org.service_manager.id  # assigned to it (as outside any team)
    db.session.commit()
    assert tickets.get_ticket(org.service_manager, second.id).id == second.id


def test_an_agent_does_not_follow_a_ticket_it_raised_to_another_team(db, org, desk):
    """Spec §5: the tickets of its teams and those assigned to it — the raiser of a ticket
    routed to 二线 neither reads nor works it, nor reads its customer through it."""
    from app.security import can_see_customer

    route_to(db, desk.team2)
    t = raise_one(org.agent, org.c_north, subject="转二线")
    assert (t.created_by_id, t.team_id, t.agent_id) == (org.agent.id, desk.team2.id,
                                                       org.agent2.id)
    assert not tickets.may_read(org.agent, t.id)
    for call in (lambda: tickets.get_ticket(org.agent, t.id),
                 lambda: tickets.change_status(org.agent, t.id, "resolved"),
                 lambda: tickets.note(org.agent, t.id, "x")):
        with pytest.raises(OutOfScope):
            call()
    assert not can_see_customer(org.agent, org.c_north.id)
    assert tickets.raised_elsewhere(t) == f"工单 #{t.id} 已提交，并分派给团队「二线」，不在你的范围内"
    route_to(db, None)
    loose = raise_one(org.agent, org.c_north, subject="无人接")
    assert (loose.team_id, tickets.may_read(org.agent, loose.id)) == (None, False)
    assert tickets.raised_elsewhere(loose) == (
        f"工单 #{loose.id} 已提交；尚无团队接手（由后台人员分派），不在你的范围内")
