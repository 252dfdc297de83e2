"""Pre-reclaim warnings for leads (回收提醒), as app.services.reclaim.warn does for customers:
an owner hears, the policy's warn_before_days ahead, of each open lead the lead sweep will
take (no follow-up for the owner's lead_reclaim_no_followup_days); once per lead and cycle —
the unique (lead, owner, due time) row is the memory, so a second run or a second worker adds
none, and a follow-up or a new owner moves the due time and starts a new cycle. An owner on
leave is not there to act: their stand-in (app.services.absences.substitutes) is warned
meanwhile, and told so.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Lead, LeadOwnership, LeadReclaimWarning, User
from app.models.customer import utcnow
from app.services import absences, notifications, policies, work_calendar
from app.services.errors import tr
from app.services.leads import last_touch, lead_rule
from app.services.times import local_date


def warn(now: Optional[dt.datetime] = None) -> int:
    """Warn the owners (or their stand-ins) of the leads due within their warn-before days;
    commits; returns how many warnings were sent. Which leads are due is the lead sweep's own
    rule (app.services.leads.lead_rule, segment policies included) evaluated that many days
    ahead, so a warning always names the period the sweep will apply."""
    now = now or utcnow()
    owner_ids = list(db.session.execute(select(LeadOwnership.owner_id).where(
        LeadOwnership.owner_id.is_not(None), LeadOwnership.is_open.is_(True)).distinct())
        .scalars())
    groups: dict[int, list[int]] = {}
    for uid, policy in policies.effective_policies(owner_ids).items():
        ahead = int(policy["warn_before_days"].value or 0)
        if ahead > 0:
            groups.setdefault(ahead, []).append(uid)
    sent = 0
    # Warn-before days are working days of the work calendar (app.services.work_calendar).
    horizons = work_calendar.workdays_horizons(now, groups)
    try:
        for ahead, owners in sorted(groups.items()):
            later = lead_rule(horizons[ahead])
            touch = last_touch()
            for start in range(0, len(owners), 1000):
                group = owners[start:start + 1000]
                rows = db.session.execute(
                    select(LeadOwnership.lead_id, LeadOwnership.owner_id,
                           touch.label("touch"), later.days.label("days"),
                           Lead.person_name, Lead.company_name)
                    .join(Lead, Lead.id == LeadOwnership.lead_id)
                    .where(later.due, LeadOwnership.owner_id.in_(group))).all()
                # Due by then but not yet: what is due already the sweep takes tonight.
                sent += _record([r for r in rows
                                 if r.touch + dt.timedelta(days=int(r.days)) > now], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return sent


def _record(rows, now: dt.datetime) -> int:
    if not rows:
        return 0
    values = [dict(lead_id=r.lead_id, owner_id=r.owner_id, created_at=now,
                   due_at=r.touch + dt.timedelta(days=int(r.days))) for r in rows]
    days = {r.lead_id: int(r.days) for r in rows}
    names = {r.lead_id: (f"{r.company_name}（{r.person_name}）" if r.company_name
                         and r.person_name else r.company_name or r.person_name)
             for r in rows}
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    new = db.session.execute(
        dialect_insert(LeadReclaimWarning).values(values).on_conflict_do_nothing()
        .returning(LeadReclaimWarning.lead_id, LeadReclaimWarning.owner_id,
                   LeadReclaimWarning.due_at)).all()
    away = absences.current_absences({w.owner_id for w in new}, local_date(now))
    stand_ins = absences.substitutes(away)
    owner_names = dict(db.session.execute(
        select(User.id, User.username).where(User.id.in_(sorted(away)))).all()) if away else {}
    for w in new:
        title = f"线索「{names[w.lead_id]}」将于 {local_date(w.due_at)} 被自动回收"
        body = f"超过 {days[w.lead_id]} 天未跟进：请跟进，或转化、标记无效。"
        to = w.owner_id
        if w.owner_id in away and stand_ins.get(w.owner_id):
            to = stand_ins[w.owner_id]
            title = tr("(%(owner)s is on leave, warned in their place)",
                       owner=owner_names[w.owner_id]) + title
            body = tr("Owner %(owner)s is on leave (%(period)s); this warning comes to you in "
                      "their place.", owner=owner_names[w.owner_id],
                      period=absences.period_text(*away[w.owner_id])) + body
        notifications.notify([to], "lead_reclaim_warning", title, body,
                             link=f"/leads/show/{w.lead_id}")
    return len(new)
