"""SLA clocks: which policy applies, due times in business time across 春节 2026, a 调休
Saturday and a weekend, around the clock for 24×7, the pause while waiting, re-prioritising,
reopening, and the time left. Fixed dates; Beijing time."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from app.models import Ownership
from app.models.service_desk import ServiceTeam, SlaPolicy, Ticket
from app.services import sla
from app.services import work_calendar as wc

HOUR = 3600


def bj(*args) -> dt.datetime:
    """A Beijing wall-clock time as stored (naive UTC)."""
    return dt.datetime(*args) - dt.timedelta(hours=8)


@pytest.fixture(autouse=True)
def beijing(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")


def policy(db, name, priority=None, grade=None, response=60, resolution=480, clock="business",
           position=100, active=True) -> SlaPolicy:
    row = SlaPolicy(name=name, priority=priority, grade=grade, first_response_minutes=response,
                    resolution_minutes=resolution, clock=clock, position=position,
                    active=active)
    db.session.add(row)
    db.session.flush()
    return row


@pytest.fixture
def desk(db, org):
    wc.seed_year(2026)
    wc.set_global_periods(org.admin, "09:00-12:00,13:30-18:00")
    return org


def ticket(db, org, priority="P3", at=None, customer=True, team_id=None) -> Ticket:
    row = Ticket(channel="phone", subject="打印机无法连接", priority=priority, status="new",
                 customer_id=org.c_rep.id if customer else None, team_id=team_id,
                 created_at=at or bj(2026, 3, 9, 9))
    db.session.add(row)
    db.session.flush()
    return row


def grade(db, org, value):
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(grade=value))


# --- which policy ---------------------------------------------------------------------------
def test_the_most_specific_policy_wins_then_position_then_id(db, desk):
    anything = policy(db, "默认")
    by_priority = policy(db, "P1", priority="P1", position=500)
    by_grade = policy(db, "A 级", grade="A", position=1)
    both = policy(db, "A 级 P1", priority="P1", grade="A", position=900)
    policy(db, "停用", priority="P1", grade="A", position=0, active=False)
    assert sla.choose_policy("P1", "A").id == both.id
    assert sla.choose_policy("P1", "B").id == by_priority.id
    assert sla.choose_policy("P3", "A").id == by_grade.id
    assert sla.choose_policy("P3", None).id == anything.id
    first = policy(db, "P2 甲", priority="P2", position=10)
    policy(db, "P2 乙", priority="P2", position=10)
    assert sla.choose_policy("P2", None).id == first.id
    grade(db, desk, "A")
    t = ticket(db, desk, priority="P1")
    assert sla.start(t, bj(2026, 3, 9, 9)).id == both.id


def test_no_policy_no_clocks(db, desk):
    t = ticket(db, desk)
    assert sla.start(t, bj(2026, 3, 9, 9)) is None
    assert (t.sla_policy_id, t.first_response_due_at, t.resolution_due_at) == (None, None, None)
    assert sla.time_left(t, bj(2026, 3, 9, 10)) == {
        "response": None, "resolution": None, "paused": False, "breached": False}


# --- due times ------------------------------------------------------------------------------
def test_due_times_across_spring_festival_and_a_make_up_saturday(db, desk):
    policy(db, "标准", response=120, resolution=16 * 60)
    t = ticket(db, desk, at=bj(2026, 2, 13, 17))
    sla.start(t, bj(2026, 2, 13, 17))
    # 2 working hours from Friday 17:00: the 调休 Saturday Feb 14, 10:00.
    assert t.first_response_due_at == bj(2026, 2, 14, 10)
    # 16 h: 1 h Friday, 7.5 h Saturday, then 春节 until Tuesday Feb 24: 7.5 h more by 18:00.
    assert t.resolution_due_at == bj(2026, 2, 24, 18)
    # In the middle of the holiday: the response is 6.5 working hours late (Saturday 10:00
    # to 18:00 less the lunch break), the resolution has Tuesday's 7.5 h left.
    assert sla.time_left(t, bj(2026, 2, 20, 12)) == {
        "response": -int(6.5 * HOUR), "resolution": int(7.5 * HOUR), "paused": False,
        "breached": True}


def test_due_times_over_a_normal_weekend(db, desk):
    policy(db, "标准", response=120, resolution=480)
    t = ticket(db, desk, at=bj(2026, 3, 6, 17))
    sla.start(t, bj(2026, 3, 6, 17))
    assert t.first_response_due_at == bj(2026, 3, 9, 10)
    assert t.resolution_due_at == bj(2026, 3, 9, 17, 30)
    assert sla.time_left(t, bj(2026, 3, 7, 12))["response"] == HOUR


def test_around_the_clock_ignores_the_calendar(db, desk):
    policy(db, "P1 全天", priority="P1", response=30, resolution=240, clock="24x7")
    t = ticket(db, desk, priority="P1", at=bj(2026, 2, 17, 23))
    sla.start(t, bj(2026, 2, 17, 23))
    assert t.first_response_due_at == bj(2026, 2, 17, 23, 30)
    assert t.resolution_due_at == bj(2026, 2, 18, 3)


def test_a_team_clock_uses_its_periods(db, desk):
    policy(db, "标准", response=120, resolution=480)
    team = ServiceTeam(name="晚班", work_periods="13:00-22:00")
    db.session.add(team)
    db.session.flush()
    t = ticket(db, desk, at=bj(2026, 3, 6, 21), team_id=team.id)
    sla.start(t, bj(2026, 3, 6, 21))
    assert t.first_response_due_at == bj(2026, 3, 9, 14)


# --- pause, resume, reprioritise, stop, reopen ----------------------------------------------
def test_waiting_pauses_the_resolution_clock_over_the_holiday(db, desk):
    policy(db, "标准", response=60, resolution=8 * 60)
    t = ticket(db, desk, at=bj(2026, 2, 13, 9))
    sla.start(t, bj(2026, 2, 13, 9))
    assert t.resolution_due_at == bj(2026, 2, 14, 9, 30)  # the 调休 Saturday
    sla.responded(t, bj(2026, 2, 13, 9, 30))
    t.status = "waiting"
    sla.pause(t, bj(2026, 2, 13, 11))           # 2 h used, 6 h left
    assert (t.resolution_due_at, t.resolution_remaining_seconds) == (None, 6 * HOUR)
    assert sla.time_left(t, bj(2026, 2, 20, 11)) == {
        "response": None, "resolution": 6 * HOUR, "paused": True, "breached": False}
    t.status = "in_progress"
    sla.resume(t, bj(2026, 2, 22, 10))          # a Sunday in the holiday: counts from Tue 24
    assert t.resolution_due_at == bj(2026, 2, 24, 16, 30)
    assert (t.sla_paused_at, t.resolution_remaining_seconds) == (None, None)
    assert sla.time_left(t, bj(2026, 2, 24, 16)) == {
        "response": None, "resolution": 30 * 60, "paused": False, "breached": False}


def test_a_ticket_created_waiting_starts_paused(db, desk):
    policy(db, "标准", response=60, resolution=120)
    t = ticket(db, desk)
    t.status = "waiting"
    sla.start(t, bj(2026, 3, 9, 9))
    assert (t.resolution_due_at, t.resolution_remaining_seconds) == (None, 2 * HOUR)
    assert t.first_response_due_at == bj(2026, 3, 9, 10)


def test_reprioritise_keeps_the_time_used(db, desk):
    policy(db, "P3", priority="P3", response=240, resolution=16 * 60)
    p1 = policy(db, "P1", priority="P1", response=60, resolution=4 * 60)
    t = ticket(db, desk, at=bj(2026, 3, 9, 9))
    sla.start(t, bj(2026, 3, 9, 9))
    t.priority = "P1"
    assert sla.reprioritise(t, bj(2026, 3, 9, 9, 30)).id == p1.id
    # 30 min used of each clock: 30 min and 3.5 h are left under P1.
    assert t.first_response_due_at == bj(2026, 3, 9, 10)
    assert t.resolution_due_at == bj(2026, 3, 9, 14, 30)
    # Raised again later, the ticket is already late under the new target.
    t.priority = "P3"
    sla.reprioritise(t, bj(2026, 3, 9, 11))
    t.response_breached_at = bj(2026, 3, 9, 10, 5)
    t.priority = "P1"
    sla.reprioritise(t, bj(2026, 3, 9, 11))
    assert t.first_response_due_at == bj(2026, 3, 9, 10)
    assert t.response_breached_at == bj(2026, 3, 9, 10, 5)  # still late: the mark stays
    assert sla.time_left(t, bj(2026, 3, 9, 11))["response"] == -HOUR


def test_a_lower_priority_lifts_the_breach(db, desk):
    policy(db, "P1", priority="P1", response=30, resolution=60)
    policy(db, "P4", priority="P4", response=480, resolution=2400)
    t = ticket(db, desk, priority="P1")
    sla.start(t, bj(2026, 3, 9, 9))
    t.response_warned_at = t.response_breached_at = bj(2026, 3, 9, 9, 30)
    t.priority = "P4"
    sla.reprioritise(t, bj(2026, 3, 9, 10))
    # 1 h used of 8: 7 h from 10:00 run into Tuesday morning.
    assert t.first_response_due_at == bj(2026, 3, 10, 9, 30)
    assert (t.response_warned_at, t.response_breached_at) == (None, None)


def test_stop_while_waiting_leaves_a_due_time_and_reopen_restarts(db, desk):
    policy(db, "标准", response=60, resolution=120)
    t = ticket(db, desk)
    sla.start(t, bj(2026, 3, 9, 9))
    sla.responded(t, bj(2026, 3, 9, 9, 10))
    sla.responded(t, bj(2026, 3, 9, 9, 50))
    assert t.first_response_at == bj(2026, 3, 9, 9, 10)
    t.status = "waiting"
    sla.pause(t, bj(2026, 3, 9, 10))
    t.status = "resolved"
    sla.stop(t, bj(2026, 3, 9, 15))
    assert t.resolution_due_at == bj(2026, 3, 9, 16) and t.sla_paused_at is None
    assert sla.time_left(t, bj(2026, 3, 9, 15)) == {
        "response": None, "resolution": None, "paused": False, "breached": False}
    t.status, t.escalation_level = "in_progress", 2
    t.resolution_breached_at = bj(2026, 3, 9, 16)
    sla.reopened(t, bj(2026, 3, 10, 17))
    assert t.resolution_due_at == bj(2026, 3, 11, 10)
    assert (t.escalation_level, t.resolution_breached_at) == (0, None)
    assert t.first_response_at == bj(2026, 3, 9, 9, 10)


def test_a_late_reply_counts_as_breached(db, desk):
    policy(db, "标准", response=60, resolution=600)
    t = ticket(db, desk)
    sla.start(t, bj(2026, 3, 9, 9))
    sla.responded(t, bj(2026, 3, 9, 11))
    assert sla.time_left(t, bj(2026, 3, 9, 11))["breached"] is True
