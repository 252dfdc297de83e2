"""The SLA job: a warning before each target, the breach marks with escalation to the team lead,
then to the manager escalate_after_minutes (business time) later; notifications, tasks and
history; a second run changes nothing. Fixed dates; Beijing time."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import Notification, Task
from app.models.service_desk import ServiceTeam, SlaPolicy, Ticket, TicketEvent
from app.services import sla, sla_sweep
from app.services import work_calendar as wc

MIN = 60


def bj(*args) -> dt.datetime:
    return dt.datetime(*args) - dt.timedelta(hours=8)


@pytest.fixture(autouse=True)
def beijing(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")


@pytest.fixture
def desk(db, org):
    wc.seed_year(2026)
    wc.set_global_periods(org.admin, "09:00-12:00,13:30-18:00")
    team = ServiceTeam(name="一线", lead_id=org.agent2.id, manager_id=org.service_manager.id)
    db.session.add(team)
    db.session.add(SlaPolicy(name="标准", first_response_minutes=60, resolution_minutes=240,
                             warn_before_minutes=15, escalate_after_minutes=60))
    db.session.flush()
    org.team = team
    return org


def new_ticket(db, desk, at, subject="无法登录") -> Ticket:
    t = Ticket(channel="email", subject=subject, priority="P3", status="assigned",
               customer_id=desk.c_rep.id, team_id=desk.team.id, agent_id=desk.agent.id,
               created_at=at)
    db.session.add(t)
    db.session.flush()
    sla.start(t, at)
    db.session.commit()
    return t


def events(db, ticket_id) -> list[tuple]:
    return [tuple(r) for r in db.session.execute(
        select(TicketEvent.kind, TicketEvent.from_value, TicketEvent.to_value)
        .where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))]


def notes(db, user_id) -> list[tuple]:
    return [tuple(r) for r in db.session.execute(
        select(Notification.kind, Notification.title, Notification.link)
        .where(Notification.user_id == user_id).order_by(Notification.id))]


def test_warn_breach_escalate_once_each(db, desk):
    t = new_ticket(db, desk, bj(2026, 3, 9, 9))          # response due 10:00, resolution 14:30
    assert t.first_response_due_at == bj(2026, 3, 9, 10)
    assert sla_sweep.sweep(bj(2026, 3, 9, 9, 40)).summary()["warned_response"] == 0
    r = sla_sweep.sweep(bj(2026, 3, 9, 9, 46)).summary()
    assert r == {"warned_response": 1, "warned_resolution": 0, "breached_response": 0,
                 "breached_resolution": 0, "escalated_1": 0, "escalated_2": 0}
    db.session.refresh(t)
    assert t.response_warned_at == bj(2026, 3, 9, 9, 46)
    assert notes(db, desk.agent.id) == [
        ("sla_warning", f"工单即将超出 SLA：#{t.id} 无法登录", f"/tickets/show/{t.id}")]
    # Again: nothing new.
    assert sla_sweep.sweep(bj(2026, 3, 9, 9, 50)).summary()["warned_response"] == 0
    # 10:05: the response target is missed: the mark, level 1, the lead's task.
    r = sla_sweep.sweep(bj(2026, 3, 9, 10, 5)).summary()
    assert (r["breached_response"], r["escalated_1"]) == (1, 1)
    db.session.refresh(t)
    assert (t.response_breached_at, t.escalation_level, t.escalated_at) == (
        bj(2026, 3, 9, 10, 5), 1, bj(2026, 3, 9, 10, 5))
    lead_task = db.session.execute(select(Task).where(Task.owner_id == desk.agent2.id)).scalar()
    assert (lead_task.record_type, lead_task.record_id, lead_task.subject) == (
        "ticket", t.id, "SLA 升级（第 1 级）：无法登录")
    assert notes(db, desk.agent2.id) == [
        ("sla_escalation", f"工单已升级给您：#{t.id} 无法登录（超出 SLA）", f"/tickets/show/{t.id}")]
    assert sla_sweep.sweep(bj(2026, 3, 9, 10, 6)).summary() == dict.fromkeys(r, 0)
    # Level 2 one business hour after level 1.
    assert sla_sweep.sweep(bj(2026, 3, 9, 11, 0)).summary()["escalated_2"] == 0
    r = sla_sweep.sweep(bj(2026, 3, 9, 11, 5)).summary()
    assert r["escalated_2"] == 1
    db.session.refresh(t)
    assert t.escalation_level == 2
    assert [k for k, *_ in notes(db, desk.service_manager.id)] == ["sla_escalation"]
    assert db.session.execute(select(func.count(Task.id)).where(
        Task.owner_id == desk.service_manager.id, Task.record_id == t.id)).scalar() == 1
    # The resolution clock: warned at 14:15, missed at 14:30 (no second escalation).
    sla_sweep.sweep(bj(2026, 3, 9, 14, 20))
    r = sla_sweep.sweep(bj(2026, 3, 9, 14, 31)).summary()
    assert (r["breached_resolution"], r["escalated_1"], r["escalated_2"]) == (1, 0, 0)
    # The breach that escalated says so in its own row (level 1); level 2 is an event of its
    # own; the resolution breach escalated nothing.
    assert events(db, t.id) == [
        ("sla_warning_response", None, None),
        ("sla_breach_response", None, "1"),
        ("sla_escalated", "1", "2"),
        ("sla_warning_resolution", None, None),
        ("sla_breach_resolution", None, None),
    ]
    from app.models import TicketEvent
    from app.views.tickets import history_rows
    rows = history_rows(db.session.execute(select(TicketEvent).where(
        TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)).scalars().all())
    assert [(str(r["label"]), r["from"], r["to"]) for r in rows] == [
        ("SLA 预警：首次响应即将到期", "", ""),
        ("SLA 超时：首次响应", "", "已升级至第 1 级"),
        ("SLA 升级级别", "1", "2"),
        ("SLA 预警：解决时限即将到期", "", ""),
        ("SLA 超时：解决", "", ""),
    ]
    assert sla_sweep.sweep(bj(2026, 3, 9, 18)).summary() == dict.fromkeys(r, 0)


def test_answered_paused_and_closed_tickets_are_left_alone(db, desk):
    answered = new_ticket(db, desk, bj(2026, 3, 9, 9), "已回复")
    sla.responded(answered, bj(2026, 3, 9, 9, 30))
    waiting = new_ticket(db, desk, bj(2026, 3, 9, 9), "等客户")
    sla.responded(waiting, bj(2026, 3, 9, 9, 30))
    waiting.status = "waiting"
    sla.pause(waiting, bj(2026, 3, 9, 9, 30))
    closed = new_ticket(db, desk, bj(2026, 3, 9, 9), "已关闭")
    closed.status = "closed"
    sla.stop(closed, bj(2026, 3, 9, 9, 20))
    db.session.commit()
    r = sla_sweep.sweep(bj(2026, 3, 9, 16)).summary()
    assert r == {"warned_response": 0, "warned_resolution": 0, "breached_response": 0,
                 "breached_resolution": 1, "escalated_1": 1, "escalated_2": 0}
    assert events(db, answered.id) == [("sla_breach_resolution", None, "1")]
    assert events(db, waiting.id) == [] and events(db, closed.id) == []


def test_many_tickets_in_chunks_one_notification_each(db, desk):
    ids = [new_ticket(db, desk, bj(2026, 3, 9, 9), f"批量 {i}").id for i in range(7)]
    r = sla_sweep.sweep(bj(2026, 3, 9, 10, 1), chunk=3).summary()
    assert (r["breached_response"], r["escalated_1"]) == (7, 7)
    kinds = notes(db, desk.agent.id)
    assert kinds == [("sla_breach", "7 个工单已超出 SLA", "/tickets/list/")]
    # Written with each chunk's marks (3, 3, 1): a task per ticket.
    assert db.session.execute(select(func.count(Task.id)).where(
        Task.record_type == "ticket", Task.record_id.in_(ids))).scalar() == 7


def test_more_than_five_escalations_to_one_lead_are_one_task_listing_them(db, desk):
    ids = [new_ticket(db, desk, bj(2026, 3, 9, 9), f"批量 {i}").id for i in range(7)]
    assert sla_sweep.sweep(bj(2026, 3, 9, 10, 1)).summary()["escalated_1"] == 7
    tasks = db.session.execute(select(Task).where(Task.owner_id == desk.agent2.id)
                               ).scalars().all()
    assert [(t.subject, t.record_type, t.record_id) for t in tasks] == [
        ("SLA 升级（第 1 级）：7 个工单", None, None)]
    assert tasks[0].notes.splitlines() == ["以下工单已超出 SLA，请督促处理。"] + [
        f"#{pk} 批量 {i}" for i, pk in enumerate(ids)]


def test_up_to_five_escalations_are_a_task_each_beyond_fifty_the_list_is_cut(db, desk):
    five = [new_ticket(db, desk, bj(2026, 3, 9, 9), f"五 {i}").id for i in range(5)]
    assert sla_sweep.sweep(bj(2026, 3, 9, 10, 1)).summary()["escalated_1"] == 5
    assert sorted(db.session.execute(select(Task.record_id).where(
        Task.owner_id == desk.agent2.id, Task.record_type == "ticket")).scalars()) == five
    many = [new_ticket(db, desk, bj(2026, 3, 9, 11), f"多 {i}").id for i in range(53)]
    assert sla_sweep.sweep(bj(2026, 3, 9, 12, 1)).summary()["escalated_1"] == 53
    digest = db.session.execute(select(Task).where(
        Task.owner_id == desk.agent2.id, Task.record_type.is_(None))).scalar_one()
    assert digest.subject == "SLA 升级（第 1 级）：53 个工单"
    lines = digest.notes.splitlines()
    assert lines[1:51] == [f"#{pk} 多 {i}" for i, pk in enumerate(many[:50])]
    assert lines[51:] == ["……另有 3 个（见工单列表）"]


def test_warnings_count_business_time_over_the_weekend(db, desk):
    # Created Friday 17:50: the response is due Monday 09:50; the warning (15 business
    # minutes before) is due from Monday 09:35, not on Saturday.
    t = new_ticket(db, desk, bj(2026, 3, 6, 17, 50))
    assert t.first_response_due_at == bj(2026, 3, 9, 9, 50)
    assert sla_sweep.sweep(bj(2026, 3, 7, 12)).summary()["warned_response"] == 0
    assert sla_sweep.sweep(bj(2026, 3, 9, 9, 0)).summary()["warned_response"] == 0
    assert sla_sweep.sweep(bj(2026, 3, 9, 9, 36)).summary()["warned_response"] == 1
