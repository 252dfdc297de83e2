"""Leads given what customers have: pre-reclaim warnings (to the stand-in while the owner is
away), the departure handover, the previous-owner cooldown on claims, and lead-pool wording."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import (Absence, LeadEvent, LeadOwnership, LeadReclaimWarning, Notification,
                        Policy, PoolMember, User)
from app.models.customer import utcnow
from app.services import departure, lead_warnings, leads
from app.services.errors import InCooldown, OutOfScope


def policy(db, **values):
    row = db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one()
    for k, v in values.items():
        setattr(row, k, v)
    db.session.commit()


def touched(db, lead_id, days_ago):
    db.session.execute(update(LeadOwnership).where(LeadOwnership.lead_id == lead_id).values(
        acquired_at=utcnow() - dt.timedelta(days=days_ago), last_followup_at=None))
    db.session.commit()


def notes(db, user_id, kind):
    db.session.commit()
    return list(db.session.execute(select(Notification).where(
        Notification.user_id == user_id, Notification.kind == kind)
        .order_by(Notification.id)).scalars())


# --- pre-reclaim warnings -----------------------------------------------------------------
def test_owners_are_warned_once_per_cycle_before_the_lead_sweep(db, org):
    policy(db, lead_reclaim_no_followup_days=15, warn_before_days=3)
    soon = leads.create_lead(org.rep, {"person_name": "快到期"})
    later = leads.create_lead(org.rep, {"person_name": "还早"})
    overdue = leads.create_lead(org.rep, {"person_name": "已到期"})
    touched(db, soon.id, 13)
    touched(db, later.id, 5)
    touched(db, overdue.id, 16)  # the sweep's to take, not to warn about
    assert lead_warnings.warn() == 1
    [note] = notes(db, org.rep.id, "lead_reclaim_warning")
    assert note.title.startswith("线索「快到期」将于 ") and note.title.endswith(" 被自动回收")
    assert note.body == "超过 15 天未跟进：请跟进，或转化、标记无效。"
    assert note.link == f"/leads/show/{soon.id}"
    assert lead_warnings.warn() == 0  # once per cycle
    # A follow-up starts a new cycle (nothing now: the lead is 15 days from due again).
    leads.log_lead_followup(org.rep, soon.id, {"channel": "call", "content": "跟进了"})
    assert lead_warnings.warn() == 0
    assert db.session.execute(select(LeadReclaimWarning.lead_id)).scalars().all() == [soon.id]


def test_warnings_off_when_the_sweep_or_the_warning_days_are_off(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "关闭"})
    touched(db, lead.id, 13)
    policy(db, lead_reclaim_no_followup_days=15, warn_before_days=0)
    assert lead_warnings.warn() == 0
    policy(db, lead_reclaim_no_followup_days=0, warn_before_days=3)
    assert lead_warnings.warn() == 0


def test_an_absent_owners_warning_goes_to_the_stand_in(db, org):
    policy(db, lead_reclaim_no_followup_days=15, warn_before_days=3)
    lead = leads.create_lead(org.rep, {"person_name": "休假中的线索"})
    touched(db, lead.id, 13)
    today = dt.date.today()
    db.session.add(Absence(user_id=org.rep.id, starts_on=today - dt.timedelta(days=1),
                           ends_on=today + dt.timedelta(days=3), created_by_id=org.admin.id))
    db.session.commit()
    stand_in = db.session.get(User, org.rep.id).superior_id or org.manager.id
    assert lead_warnings.warn() == 1
    assert notes(db, org.rep.id, "lead_reclaim_warning") == []
    [note] = notes(db, stand_in, "lead_reclaim_warning")
    assert note.title.startswith(f"（{org.rep.username} 休假中，代为提醒）线索「休假中的线索」")
    assert note.body.startswith(f"负责人 {org.rep.username} 休假中")


def test_the_job_runs_the_warnings(db, org):
    from jobs.leads import lead_reclaim_warnings

    policy(db, lead_reclaim_no_followup_days=15, warn_before_days=3)
    lead = leads.create_lead(org.rep, {"person_name": "任务提醒"})
    touched(db, lead.id, 14)
    assert lead_reclaim_warnings() == 1


# --- departure ------------------------------------------------------------------------------
def test_a_leaving_reps_open_leads_go_to_the_successor_within_the_lead_cap(db, org):
    a = leads.create_lead(org.rep, {"person_name": "交接甲"})
    b = leads.create_lead(org.rep, {"person_name": "交接乙"})
    c = leads.create_lead(org.rep, {"person_name": "交接丙"})
    closed = leads.create_lead(org.rep, {"person_name": "已无效"})
    leads.mark_invalid(org.rep, closed.id, "空号")
    leads.create_lead(org.rep2, {"person_name": "接收人已有"})
    policy(db, lead_max=2)
    plan = departure.handover(org.admin, org.rep.id, "rep", owner_id=org.rep2.id)
    assert plan["leads"] == {"leads": 3, "to_owner": 1, "to_pool": 2}
    departure.handover(org.admin, org.rep.id, "rep", owner_id=org.rep2.id, dry_run=False)
    db.session.expire_all()
    holders = {i: (o.owner_id, o.pool_id) for i, o in (
        (i, db.session.get(LeadOwnership, i)) for i in (a.id, b.id, c.id, closed.id))}
    pool = leads.default_lead_pool().id
    assert holders == {a.id: (org.rep2.id, None), b.id: (None, pool), c.id: (None, pool),
                       closed.id: (org.rep.id, None)}
    kinds = db.session.execute(select(LeadEvent.lead_id, LeadEvent.kind, LeadEvent.reason)
                               .where(LeadEvent.reason == "离职交接")
                               .order_by(LeadEvent.lead_id)).all()
    assert kinds == [(a.id, "assigned", "离职交接"), (b.id, "released", "离职交接"),
                     (c.id, "released", "离职交接")]
    assert "离职交接：您接收了新线索" in [n.title for n in notes(db, org.rep2.id,
                                                          "departure_handover")]


def test_in_the_pool_mode_leads_return_to_their_lead_pools(db, org):
    lead = leads.create_lead(org.rep, {"person_name": "回公海"})
    plan = departure.handover(org.admin, org.rep.id, "pool", dry_run=False)
    assert plan["leads"] == {"leads": 1, "to_owner": 0, "to_pool": 1}
    db.session.expire_all()
    o = db.session.get(LeadOwnership, lead.id)
    assert (o.owner_id, o.pool_id, o.previous_owner_id) == (
        None, leads.default_lead_pool().id, org.rep.id)


# --- cooldown -------------------------------------------------------------------------------
def test_a_released_lead_cannot_be_claimed_back_within_the_cooldown(db, org):
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    policy(db, cooldown_days=30)
    lead = leads.create_lead(org.rep, {"person_name": "冷却"})
    leads.release_leads(org.rep, [lead.id], "不想要了")
    with pytest.raises(InCooldown) as exc:
        leads.claim_leads(org.rep, [lead.id])
    assert exc.value.code == "cooldown" and exc.value.status == 409
    assert exc.value.message.startswith("原负责人冷却期 30 天：线索 冷却 于 ")
    assert exc.value.message.endswith("离开您名下，30 天后才能再次领取")
    # Someone else may claim it; and the first owner may again after the cooldown.
    assert leads.claim_leads(org.rep2, [lead.id]) == [lead.id]
    leads.release_leads(org.rep2, [lead.id], "也不要")
    db.session.execute(update(LeadEvent).where(LeadEvent.from_owner_id == org.rep.id).values(
        created_at=utcnow() - dt.timedelta(days=31)))
    db.session.commit()
    assert leads.claim_leads(org.rep, [lead.id]) == [lead.id]


def test_the_cooldown_off_allows_claiming_back(db, org):
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    policy(db, cooldown_days=0)
    lead = leads.create_lead(org.rep, {"person_name": "无冷却"})
    leads.release_leads(org.rep, [lead.id], "先放回")
    assert leads.claim_leads(org.rep, [lead.id]) == [lead.id]


def test_lead_pool_refusals_say_lead_pool(db, org):
    pool = leads.default_lead_pool()
    lead = leads.create_lead(org.staff, {"person_name": "措辞"})
    with pytest.raises(OutOfScope) as exc:
        leads.claim_leads(org.rep, [lead.id], pool_id=pool.id)
    assert exc.value.message == "您不是该线索公海的成员"
