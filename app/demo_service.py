"""`flask crm init --demo`: the service desk (issue 17) on top of the sales and marketing demo.

客服中心 with svcmgr1 (客服主管) and agent1…agent3 (客服); the teams 一线客服 (agent1, agent2,
round robin) and VIP 客服 (agent3, fewest open tickets, also the dedicated agents' team);
routing rules (投诉 and P1 → VIP 客服, the rest → 一线客服); SLA policies (P1 around the
clock 1 h / 8 h; P2 business 4 h / 2 days; P3 and P4 business 8 h / 5 days; grade A
tighter); the grade-A rule giving grade-A customers their dedicated agent; and a few hundred
tickets over the last 60 days, every step through the desk's services at its own time:
raised (routed, SLA started), answered, noted, waiting for the customer, resolved (the
satisfaction survey), rated (low scores reopen), closed. The steps of all tickets run in time
order with the SLA job run every few simulated days and once at the end, so breaches,
warnings and escalations are the job's own.

Fixed random seed. The simulated replies and survey links are history: after the build
they are marked sent (the demo has no mail server and must never mail its invented
customers when one is configured later).
"""
from __future__ import annotations

import datetime as dt
import heapq
import random
from typing import Any, Callable

from flask import current_app
from sqlalchemy import select, text, update

from app.extensions import appbuilder, db
from app.models import (Contact, Customer, Ownership, SlaPolicy, SurveyInvitation, Ticket,
                        TicketCategory, TicketMessage, User)
from app.models.customer import utcnow
from app.services.times import local_date
from app.security import ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER

SEED = 20261117
HISTORY = 160  # raised 8 to 60 days ago, written by slices (see _history)
RECENT = 25  # raised in the last 8 days, every step through the desk's service calls
DAYS = 60
SWEEP_EVERY = dt.timedelta(days=3)
RECENT_SWEEP_EVERY = dt.timedelta(hours=12)
SERVICE_DEPARTMENT = "客服中心"
FIRST_LINE, VIP = "一线客服", "VIP 客服"
EMAIL_DOMAIN = "guishu.local"

# (name, priority, grade, first response minutes, resolution minutes, clock)
SLA_POLICIES = [
    ("P1 紧急（全天候）", "P1", None, 60, 8 * 60, "24x7"),
    ("P2 高（工作时间）", "P2", None, 4 * 60, 2 * 9 * 60, "business"),
    ("P3 普通（工作时间）", "P3", None, 8 * 60, 5 * 9 * 60, "business"),
    ("P4 低（工作时间）", "P4", None, 8 * 60, 5 * 9 * 60, "business"),
    ("A 级客户 P2", "P2", "A", 2 * 60, 9 * 60, "business"),
    ("A 级客户", None, "A", 4 * 60, 3 * 9 * 60, "business"),
]

# Subjects per category, with variants so that similar problems recur.
SUBJECTS = {
    "咨询": ["发票如何开具", "发票怎么开", "如何修改收货地址", "账号如何开通子账号", "报价单有效期多久",
            "产品保修期是多久", "保修期多长时间"],
    "故障": ["打印机无法连接", "打印机连接不上", "系统登录失败", "登录失败提示密码错误", "设备无法开机",
            "设备开机无反应", "数据同步失败", "报表导出乱码"],
    "投诉": ["送货延迟三天", "送货严重延迟", "客服电话无人接听", "安装人员态度差", "多次维修仍未解决"],
    "退换货": ["商品破损申请退货", "收到的商品破损", "型号发错要求换货", "发错型号需要换货"],
    "建议": ["希望增加微信通知", "建议增加微信提醒", "希望延长服务时间"],
}
CATEGORY_WEIGHTS = {"咨询": 30, "故障": 35, "投诉": 10, "退换货": 15, "建议": 10}
PRIORITY_WEIGHTS = {"P1": 6, "P2": 20, "P3": 54, "P4": 20}
CHANNEL_WEIGHTS = {"phone": 40, "email": 30, "online": 15, "wechat": 12, "visit": 3}
SCORES = [(5, 45), (4, 30), (3, 12), (2, 8), (1, 5)]
REPLIES = ["您好，已收到您的问题，我们正在处理。", "您好，问题已定位，预计今天内解决。",
           "已为您安排工程师跟进，请保持电话畅通。"]
NOTES = ["已联系客户确认现象。", "需要二线支持，已在群里同步。", "客户要求下午回电。"]
COMMENTS = {1: "问题没有真正解决", 2: "等了太久", 3: "", 4: "处理及时", 5: "非常满意，谢谢"}


def _pick(rng: random.Random, weights: dict) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _users(hashed: str, admin: User) -> dict[str, User]:
    """svcmgr1 and agent1…agent3 in 客服中心 (the demo's shared password)."""
    from app.demo import _department

    sm = appbuilder.sm
    dept = _department(SERVICE_DEPARTMENT, None, admin.id)
    people = [("svcmgr1", ROLE_SERVICE_MANAGER, "周", "主管"), ("agent1", ROLE_SERVICE_AGENT, "林", "小雨"),
              ("agent2", ROLE_SERVICE_AGENT, "陈", "思远"), ("agent3", ROLE_SERVICE_AGENT, "郑", "佳怡")]
    users: dict[str, User] = {}
    for username, role, last, first in people:
        user = sm.find_user(username=username)
        if user is None:
            user = sm.add_user(username, first, last, f"{username}@{EMAIL_DOMAIN}",
                               sm.find_role(role), hashed_password=hashed, commit=False)
            if not user:
                raise RuntimeError(f"could not create demo user {username}")
        user.department_id = dept.id
        users[username] = user
    db.session.flush()
    for username in ("agent1", "agent2", "agent3"):
        users[username].superior_id = users["svcmgr1"].id
    dept.manager_id = users["svcmgr1"].id
    db.session.commit()
    return users


def _desk(admin: User, users: dict[str, User]) -> dict:
    """Teams, routing rules, SLA policies, settings, dedicated agents (the grade-A rule)."""
    from app.services import audit, service_admin

    mgr = users["svcmgr1"].id
    first = service_admin.create_team(admin, {
        "name": FIRST_LINE, "strategy": "round_robin", "lead_id": users["agent1"].id,
        "manager_id": mgr, "member_ids": [users["agent1"].id, users["agent2"].id]})
    vip = service_admin.create_team(admin, {
        "name": VIP, "strategy": "least_loaded", "lead_id": users["agent3"].id,
        "manager_id": mgr, "member_ids": [users["agent3"].id]})
    categories = {c.name: c.id for c in db.session.execute(select(TicketCategory)).scalars()}
    service_admin.create_rule(admin, {"name": "投诉转 VIP 客服", "position": 10,
                                      "category_id": categories["投诉"], "team_id": vip.id})
    service_admin.create_rule(admin, {"name": "P1 转 VIP 客服", "position": 20, "priority": "P1",
                                      "team_id": vip.id})
    service_admin.update_settings(admin, {"default_team_id": first.id,
                                          "dedicated_team_id": vip.id})
    # SLA policies: no service of their own yet (admins keep them on the policy pages).
    for position, (name, priority, grade, response, resolution, clock) in enumerate(
            SLA_POLICIES, start=1):
        policy = SlaPolicy(name=name, position=position * 10, priority=priority, grade=grade,
                           first_response_minutes=response, resolution_minutes=resolution,
                           clock=clock, warn_before_minutes=30 if clock == "24x7" else 60)
        audit.record_new(admin.id, "sla_policy", policy)
    db.session.commit()
    dedicated = service_admin.assign_grade_a()
    return {"teams": {"first": first.id, "vip": vip.id}, "categories": categories,
            "dedicated_agents": dedicated}


def _history(rng: random.Random, users: dict[str, User], categories: dict[str, int],
             customers: list, now: dt.datetime, count: int) -> dict:
    """`count` older tickets (raised 8 to 60 days ago), their whole life written in one
    transaction per few days of simulated time: routed (ticket_routing.route), SLA clocks
    (sla.start), answered, moved by the ticket status machine (tickets._move: the SLA stop
    and the satisfaction survey on resolution), rated (satisfaction.rated) — the same rules
    as the pages, without a commit per step; the SLA job runs between the slices, so its
    breach marks and escalations are its own."""
    from app.models import SurveyAnswer, SurveyResponse
    from app.services import satisfaction, sla, sla_sweep, surveys, ticket_routing, tickets

    made = {"tickets": 0, "replies": 0, "ratings": 0}
    steps: list[tuple[dt.datetime, int, Callable[[dt.datetime], None]]] = []
    seq = iter(range(10 ** 9))
    questions = None

    def later(when: dt.datetime, action) -> None:
        if when < now:
            heapq.heappush(steps, (when, next(seq), action))

    def plan() -> None:
        customer_id, contact_id, _grade = rng.choice(customers)
        category = _pick(rng, CATEGORY_WEIGHTS)
        priority = _pick(rng, PRIORITY_WEIGHTS)
        created = now - dt.timedelta(minutes=rng.randint(8 * 24 * 60, DAYS * 24 * 60))
        raiser = users[rng.choice(["agent1", "agent2", "svcmgr1"])]
        target = {"P1": 60, "P2": 240}.get(priority, 480)
        response = dt.timedelta(minutes=rng.randint(target + 30, target * 4)
                                if rng.random() < 0.17 else rng.randint(5, max(10, target // 2)))
        work = dt.timedelta(hours=rng.choice([2, 5, 9, 20, 30, 50, 80]))
        score = rng.choices([5, 4, 3], weights=[50, 35, 15])[0] if rng.random() < 0.7 else None
        subject = rng.choice(SUBJECTS[category])
        box: dict = {}

        def create(when):
            ticket = Ticket(customer_id=customer_id, contact_id=contact_id, subject=subject,
                            channel=_pick(rng, CHANNEL_WEIGHTS), priority=priority,
                            category_id=categories[category], status="new",
                            description="客户来电反映：" + subject, created_by_id=raiser.id,
                            created_at=when, updated_at=when)
            db.session.add(ticket)
            db.session.flush()
            tickets.add_event(ticket, "created", raiser.id, to_value=subject)
            team_id, agent_id = ticket_routing.route(ticket, when)
            ticket.team_id, ticket.agent_id = team_id, agent_id
            if agent_id is not None:
                ticket.assigned_at, ticket.status = when, "assigned"
                tickets.add_event(ticket, "assigned", raiser.id, None, agent_id)
            sla.start(ticket, when)
            box["ticket"] = ticket
            made["tickets"] += 1
            later(when + response, reply)

        def reply(when):
            ticket = box["ticket"]
            agent = ticket.agent_id or users["svcmgr1"].id
            message = TicketMessage(ticket_id=ticket.id, kind="reply", author_id=agent,
                                    body=rng.choice(REPLIES), created_at=when)
            db.session.add(message)
            db.session.flush()
            tickets.add_event(ticket, "reply", agent, to_value=message.id)
            sla.responded(ticket, when)
            tickets._move(by_id[agent], ticket, "in_progress", when)
            made["replies"] += 1
            later(when + work, resolve)

        def resolve(when):
            ticket = box["ticket"]
            tickets._move(by_id[ticket.agent_id or users["svcmgr1"].id], ticket, "resolved",
                          when)
            if score is not None:
                later(when + dt.timedelta(hours=rng.randint(1, 30)), rate)
            later(when + dt.timedelta(days=3), close)

        def rate(when):
            nonlocal questions
            ticket = box["ticket"]
            invitation = db.session.execute(select(SurveyInvitation).where(
                SurveyInvitation.ticket_id == ticket.id)).scalar_one_or_none()
            if invitation is None:
                return
            questions = questions or surveys.questions_of(invitation.survey_id)
            rows = [(questions[0].id, "rating", score)] + (
                [(questions[1].id, "text", COMMENTS[score])] if COMMENTS[score] else [])
            invitation.answered_at = invitation.updated_at = when
            response_row = SurveyResponse(survey_id=invitation.survey_id,
                                          invitation_id=invitation.id, submitted_at=when)
            db.session.add(response_row)
            db.session.flush()
            db.session.add_all(SurveyAnswer(response_id=response_row.id, question_id=qid,
                                            **{column: value}) for qid, column, value in rows)
            satisfaction.rated(invitation, rows, when)
            made["ratings"] += 1

        def close(when):
            ticket = box["ticket"]
            if ticket.status == "resolved":
                tickets._move(by_id[ticket.agent_id or users["svcmgr1"].id], ticket,
                              "closed", when)

        later(created, create)

    by_id = {u.id: u for u in users.values()}
    for _ in range(count):
        plan()
    checkpoint = now - dt.timedelta(days=DAYS) + SWEEP_EVERY
    while steps:
        when, _n, action = heapq.heappop(steps)
        while checkpoint <= when:
            db.session.flush()
            sla_sweep.sweep(checkpoint)  # commits the slice
            checkpoint += SWEEP_EVERY
        action(when)
    db.session.commit()
    return made


def build_service_demo(hashed: str) -> dict:
    from app.services import satisfaction, sla_sweep, surveys, tickets

    rng = random.Random(SEED)
    db.session.commit()
    db.session.expunge_all()  # the sales demo's rows: each commit below would expire them all
    if db.session.get_bind().dialect.name == "sqlite":
        # WAL without a sync per commit for the build (durable at the checkpoint; the
        # connection's default comes back with the next connection).
        db.session.execute(text("PRAGMA synchronous=NORMAL"))
    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    users = _users(hashed, admin)
    desk = _desk(admin, users)
    categories = desk["categories"]
    agents = {u.id: u for u in users.values()}
    now = utcnow().replace(second=0, microsecond=0)
    # Owned customers with a reachable contact, a grade-A share among them.
    rows = db.session.execute(select(Customer.id, Contact.id, Ownership.grade).join(
        Ownership, Ownership.customer_id == Customer.id).join(
        Contact, Contact.customer_id == Customer.id).where(
        Ownership.owner_id.isnot(None), Contact.is_primary.is_(True))
        .order_by(Customer.id)).all()
    grade_a = [r for r in rows if r[2] == "A"]
    others = [r for r in rows if r[2] != "A"]
    survey_questions = None

    # Each ticket's steps as (when, n, action); the steps of all tickets run in time order.
    queue: list[tuple[dt.datetime, int, Callable[[dt.datetime], None]]] = []
    counter = iter(range(10 ** 9))
    state: dict[int, dict] = {}
    made = {"tickets": 0, "replies": 0, "notes": 0, "ratings": 0, "low_scores": 0}

    def at(when: dt.datetime, action: Callable[[dt.datetime], None]) -> None:
        if when < now:
            heapq.heappush(queue, (when, next(counter), action))

    def agent_of(ticket_id: int) -> User:
        ticket = db.session.get(Ticket, ticket_id)
        return agents.get(ticket.agent_id) or users["svcmgr1"]

    def plan(i: int) -> None:
        customer_id, contact_id, grade = rng.choice(grade_a if rng.random() < 0.2 else others)
        category = _pick(rng, CATEGORY_WEIGHTS)
        priority = _pick(rng, PRIORITY_WEIGHTS)
        created = now - dt.timedelta(minutes=rng.randint(10, 8 * 24 * 60))
        raiser = users[rng.choice(["agent1", "agent2", "svcmgr1"])]
        data = {"subject": rng.choice(SUBJECTS[category]), "channel": _pick(rng, CHANNEL_WEIGHTS),
                "priority": priority, "category_id": categories[category],
                "customer_id": customer_id, "contact_id": contact_id,
                "description": "客户来电反映：" + rng.choice(SUBJECTS[category])}
        # Response within the target mostly; one in six late.
        target = {"P1": 60, "P2": 240}.get(priority, 480)
        late = rng.random() < 0.17
        response = dt.timedelta(minutes=rng.randint(target + 30, target * 4) if late
                                else rng.randint(5, max(10, target // 2)))
        work = dt.timedelta(hours=rng.choice([2, 5, 9, 20, 30, 50, 80, 150]))
        # Every open status shows: one in six is never answered (assigned, then breached),
        # one in six waits for the customer still.
        silent, stays_waiting = i % 6 == 0, i % 6 == 1
        waits = stays_waiting or rng.random() < 0.25
        rated = rng.random() < 0.7
        score = rng.choices([s for s, _ in SCORES], weights=[w for _, w in SCORES])[0]
        closes = rng.random() < 0.6

        def create(when):
            ticket = tickets.create(raiser, dict(data), now=when)
            state[i] = {"id": ticket.id}
            made["tickets"] += 1
            if not silent:
                at(when + response, reply)
            if rng.random() < 0.4:
                at(when + response / 2, note)

        def reply(when):
            tid = state[i]["id"]
            tickets.reply(agent_of(tid), tid, rng.choice(REPLIES), now=when)
            made["replies"] += 1
            if waits:
                at(when + work / 3, lambda w: _status(tid, "waiting", w))
            if not stays_waiting:
                if waits:
                    at(when + work / 2, lambda w: _status(tid, "in_progress", w))
                at(when + work, resolve)

        def note(when):
            tid = state[i]["id"]
            tickets.note(agent_of(tid), tid, rng.choice(NOTES), now=when)
            made["notes"] += 1

        def resolve(when):
            tid = state[i]["id"]
            if _status(tid, "resolved", when) and rated:
                at(when + dt.timedelta(hours=rng.randint(1, 30)), rate)
            elif closes:
                at(when + dt.timedelta(days=3), lambda w: _status(tid, "closed", w))

        def rate(when):
            nonlocal survey_questions
            tid = state[i]["id"]
            invitation = db.session.execute(select(SurveyInvitation).where(
                SurveyInvitation.ticket_id == tid)).scalar_one_or_none()
            if invitation is None or invitation.answered_at is not None:
                return
            if survey_questions is None:
                survey_questions = surveys.questions_of(invitation.survey_id)
            rating, comment = survey_questions[0], survey_questions[1]
            surveys.answer(invitation.token, {f"q{rating.id}": [str(score)],
                                              f"q{comment.id}": [COMMENTS[score]]}, when)
            made["ratings"] += 1
            if score <= satisfaction.settings().low_score_threshold:
                made["low_scores"] += 1
                # Reopened by the low score: the agent calls back and resolves it again.
                at(when + dt.timedelta(hours=4), lambda w: _again(tid, w))
            elif closes:
                at(when + dt.timedelta(days=3), lambda w: _status(tid, "closed", w))

        def _again(tid, when):
            tickets.reply(agent_of(tid), tid, "已回访客户并重新处理，问题已解决。", now=when)
            _status(tid, "resolved", when + dt.timedelta(hours=2))

        def _status(tid, status, when) -> bool:
            ticket = db.session.get(Ticket, tid)
            if status not in tickets.TRANSITIONS.get(ticket.status, ()):
                return False
            tickets.change_status(agent_of(tid), tid, status, now=when)
            return True

        at(created, create)

    history = _history(rng, users, categories, grade_a[:40] + others, now, HISTORY)
    for i in range(RECENT):
        plan(i)
    next_sweep = now - dt.timedelta(days=8) + dt.timedelta(hours=12)
    sweeps = 0
    while queue:
        when, _n, action = heapq.heappop(queue)
        while next_sweep <= when:
            sla_sweep.sweep(next_sweep)
            sweeps += 1
            next_sweep += RECENT_SWEEP_EVERY
        action(when)
    # 'new' too: agent3 is on leave today, so today's P1 tickets wait in VIP 客服's queue.
    from app.services import absences

    absences.create_absence(admin, users["agent3"].id, local_date(now).isoformat(),
                            local_date(now).isoformat(), "调休")
    for subject in ("系统登录失败", "设备无法开机"):
        customer_id, contact_id, _grade = rng.choice(others)
        tickets.create(users["agent1"], {
            "subject": subject, "channel": "phone", "priority": "P1",
            "category_id": categories["故障"], "customer_id": customer_id,
            "contact_id": contact_id, "description": "客户来电：" + subject}, now=now)
        made["tickets"] += 1
    summary = sla_sweep.sweep(now).summary()  # once at the end: today's state
    # History, not mail to send: the simulated replies and survey links count as delivered.
    db.session.execute(update(TicketMessage).where(TicketMessage.delivery_status == "pending")
                       .values(delivery_status="sent", sent_at=TicketMessage.created_at,
                               attempts=1, next_attempt_at=None))
    db.session.execute(update(SurveyInvitation).where(
        SurveyInvitation.ticket_id.isnot(None), SurveyInvitation.delivery_status == "pending")
        .values(delivery_status="sent", sent_at=SurveyInvitation.created_at, attempts=1))
    db.session.commit()
    current_app.logger.info("service demo: %s tickets, %s sweeps, last sweep %s",
                            made["tickets"], sweeps + 1, summary)
    made["tickets"] += history["tickets"]
    made["replies"] += history["replies"]
    made["ratings"] += history["ratings"]
    return {"service_users": len(users), "service_teams": 2,
            "dedicated_agents": desk["dedicated_agents"], **made}
