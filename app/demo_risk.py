"""The demo's follow-up rhythm (issue 20 §5), so that the risk model has a history to learn from
and the workbench's 流失风险 panel something to show.

The base demo and the ownership history (app.demo_ownership) give each holding at most a first
and a last follow-up. Here, deterministically (its own seeded generator), the stretch between
the first and the last follow-up of every holding is filled with the owner's rhythm: gaps
drawn around a mean that depends on **who holds the customer and what it is worth**, on
purpose — a rep holding many customers follows each one up less often, grade A more often
than C, a customer with an open opportunity more often, and a customer its owner has now left
alone for half the no-follow-up days had already been followed up rarely — and never longer than the owner's
no-follow-up days (or the holding would have been reclaimed). Nothing is added before a
holding's first follow-up or after its last, so every clock (last follow-up, reclaim
deadlines, time to first follow-up in the ownership-effect report) is unchanged — except, for
the won customers given an older history below, when they were acquired.

It also gives many old pool customers a past holding, simulated forward: claimed by a rep, then
followed up at that rep's rhythm until a gap outran the no-follow-up days (reclaimed by the
sweep a day later) or the rep gave it back (released). Busy reps' long gaps are what gets
customers reclaimed, so the risk at a given number of days since the last follow-up depends
on the rep's load and rhythm — the pattern the model can learn beyond the baseline.

And it gives many won customers an older history (the base demo's history is 120 days, shorter
than the silent model's 90-day window plus its 60-day test period): a rep's own customer, won
150–365 days ago (its creation, acquisition and 'created' event moved back to 3–40 days before
that first deal, which the customer now also has, and followed up in between at the owner's
prospect rhythm), then looked after at the owner's account
rhythm until its recent activity — or, for some, followed up more and more rarely for a few
weeks and then left alone. Which ones go quiet depends, on purpose, on the owner's load
(busy reps drop more), the grade (A least, C most) and the first deal's size within its grade
band. Its recent deal, follow-ups and `last_followup_at` are the base demo's, unchanged; its
grade is recomputed from the deals it now has, as the nightly job would.

So the demo's AUCs measure this generator, not the model: a real deployment learns whatever
its own history holds, and the gate shows the model only when it beats days-since-last-follow-up.
"""
from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal
from typing import Optional

import numpy as np
from sqlalchemy import func, select

from app.extensions import db
from app.models import (Contact, Customer, Deal, FollowUp, Opportunity, Ownership,
                        OwnershipEvent, User)
from app.security import ROLE_REP, has_role
from app.services import classification, policies, risk

SEED = 2026_205
# Mean days between follow-ups by the owner's load (share of the busiest owner's book), and
# the factors of grade and of an open opportunity.
BASE_GAP = {"light": 5.0, "medium": 9.0, "heavy": 16.0}
GRADE_FACTOR = {"A": 0.6, "B": 0.85}
OPPORTUNITY_FACTOR = 0.6
# A customer left alone for half its no-follow-up days at the end of a holding had been
# followed up this much more rarely before: neglect sets in gradually.
SLOWING = 2.2
CONTENTS = ("电话沟通需求", "微信发送资料", "上门拜访", "确认报价", "回访使用情况")
CHANNELS = ("call", "message", "visit", "call", "call")
PAST_SHARE = 0.8          # old pool customers without a past holding that get one here
RECLAIM_RULE = "reclaim:no_followup:30d"
DAY = dt.timedelta(days=1)
# Won customers with an older history: a share of the reps' own won customers, won this many
# days ago; their owner's mean days between follow-ups of a won account (the prospect rhythm
# times ACCOUNT_GAP), never longer than LONGEST_ACCOUNT_GAP while looked after.
OLD_WON_SEED = 2026_2055
OLD_WON_SHARE = 0.75
OLD_WON_DAYS = (150, 365)
ACCOUNT_GAP = 3.0
LONGEST_ACCOUNT_GAP = 75.0
# Log-odds that a won customer goes quiet after its first deal: by the owner's load, by grade,
# and by the deal's place in its grade band (0 at the bottom, 1 at the top).
QUIET_BASE = -1.0
QUIET_LOAD = {"light": -0.8, "medium": 0.0, "heavy": 1.0}
QUIET_GRADE = {"A": -1.0, "B": -0.3}
QUIET_DEAL = -1.0
BANDS = {"A": (500_000, 1_200_000), "B": (100_000, 480_000), None: (5_000, 95_000)}


def _bands(loads: dict[int, int]) -> dict[int, str]:
    top = max(loads.values(), default=1)
    return {o: ("heavy" if n >= 0.66 * top else "medium" if n >= 0.33 * top else "light")
            for o, n in loads.items()}


def _follow_up(rng: random.Random, cid: int, owner: int, when: dt.datetime) -> dict:
    i = rng.randrange(len(CONTENTS))
    return dict(customer_id=cid, user_id=owner, channel=CHANNELS[i], content=CONTENTS[i],
                happened_at=when, created_at=when)


def _past_holdings(rng: random.Random, now: dt.datetime, band: dict[int, str],
                   no_fu: dict[int, float]) -> tuple[list[dict], list[dict], int]:
    """Old pool customers never held: a claim, follow-ups at the rep's rhythm, then a reclaim
    (a gap longer than the no-follow-up days) or a release, all before yesterday."""
    users = db.session.execute(select(User)).scalars().all()
    reps = sorted((u.id for u in users if has_role(u, ROLE_REP)))
    held_before = select(OwnershipEvent.customer_id).where(OwnershipEvent.kind != "created")
    rows = db.session.execute(
        select(Ownership.customer_id, Ownership.pool_id, Customer.created_at)
        .join(Customer, Customer.id == Ownership.customer_id)
        .where(Ownership.pool_id.is_not(None), Customer.created_at < now - 40 * DAY,
               Ownership.customer_id.not_in(held_before))
        .order_by(Ownership.customer_id)).all()
    events, follow_ups, n = [], [], 0
    for cid, pool_id, created in rows:
        if rng.random() >= PAST_SHARE:
            continue
        owner = rng.choice(reps)
        if owner not in no_fu:
            no_fu[owner] = float(policies.effective_policy(owner)
                                 ["reclaim_no_followup_days"].value)
        mean = BASE_GAP[band.get(owner, "medium")] * rng.lognormvariate(0, 0.3)
        received = created + rng.uniform(0.5, 3) * DAY
        keep_for = rng.uniform(20, 100) * DAY   # when the rep would give up on it
        touch, fus = received, []
        t = received + rng.expovariate(0.5) * DAY
        while True:
            if t - touch > no_fu[owner] * DAY:
                kind, ended = "reclaimed", touch + (no_fu[owner] + rng.uniform(0.1, 1)) * DAY
                break
            if t - received > keep_for:
                kind, ended = "released", t - rng.uniform(0, 1) * DAY
                break
            fus.append(t)
            touch = t
            t = t + rng.gammavariate(2.0, mean / 2.0) * DAY
        if ended >= now - DAY:
            continue
        n += 1
        follow_ups += [_follow_up(rng, cid, owner, when) for when in fus]
        events.append(dict(customer_id=cid, kind="claimed", from_pool_id=pool_id,
                           to_owner_id=owner, actor_id=owner, created_at=received))
        events.append(dict(customer_id=cid, kind=kind, from_owner_id=owner, to_pool_id=pool_id,
                           actor_id=None if kind == "reclaimed" else owner,
                           reason=("超过 30 天未跟进，自动回收" if kind == "reclaimed"
                                   else "客户暂无意向，退回公海"),
                           rule=RECLAIM_RULE if kind == "reclaimed" else None,
                           created_at=ended))
        db.session.execute(Ownership.__table__.update().where(
            Ownership.customer_id == cid).values(previous_owner_id=owner, released_at=ended,
                                                 first_owner_id=owner))
    return events, follow_ups, n


def build_risk_history(now: dt.datetime) -> dict:
    rng = random.Random(SEED)
    hold = risk.holdings(None)
    loads = dict(db.session.execute(
        select(Ownership.owner_id, func.count()).where(Ownership.owner_id.is_not(None))
        .group_by(Ownership.owner_id)).all())
    band = _bands(loads)
    grades = dict(db.session.execute(select(Ownership.customer_id, Ownership.grade)).all())
    with_opp = set(db.session.execute(select(Opportunity.customer_id)).scalars())
    times: dict[int, list[dt.datetime]] = defaultdict(list)
    for cid, when in db.session.execute(select(FollowUp.customer_id, FollowUp.happened_at)):
        times[cid].append(when)
    epoch = dt.datetime(1970, 1, 1)
    no_fu = {}
    added = []
    for cid, owner, start, end in zip(hold.customer.tolist(), hold.owner.tolist(),
                                      hold.start.tolist(), hold.end.tolist()):
        if owner not in no_fu:
            no_fu[owner] = float(policies.effective_policy(owner)
                                 ["reclaim_no_followup_days"].value)
        lo = epoch + dt.timedelta(days=start)
        hi = now if not np.isfinite(end) else epoch + dt.timedelta(days=end)
        inside = sorted(t for t in times.get(cid, ()) if lo <= t <= hi)
        if len(inside) < 2:
            continue
        mean = (BASE_GAP[band.get(owner, "medium")] * GRADE_FACTOR.get(grades.get(cid), 1.0)
                * (OPPORTUNITY_FACTOR if cid in with_opp else 1.0))
        if (hi - inside[-1]) > no_fu[owner] / 2 * DAY:
            mean *= SLOWING
        longest = no_fu[owner] - 2
        # Backwards from the last follow-up, stopping short of the first one.
        when = inside[-1]
        while True:
            gap = min(max(rng.gammavariate(2.0, mean / 2.0), 0.5), longest)
            when = when - dt.timedelta(days=gap)
            if when <= inside[0] + dt.timedelta(days=0.5):
                break
            added.append(_follow_up(rng, cid, owner, when))
    events, past_follow_ups, past = _past_holdings(rng, now, band, no_fu)
    added += past_follow_ups
    old_follow_ups, old_won = _old_won(now, band, grades)
    added += old_follow_ups
    keys = ("customer_id", "kind", "from_owner_id", "from_pool_id", "to_owner_id",
            "to_pool_id", "reason", "rule", "actor_id", "created_at")
    if events:
        db.session.execute(OwnershipEvent.__table__.insert(),
                           [{k: e.get(k) for k in keys} for e in events])
    for start in range(0, len(added), 5000):
        db.session.execute(FollowUp.__table__.insert(), added[start:start + 5000])
    db.session.commit()
    classification.classify(old_won)  # their grades, from the deals they now have
    return {"rhythm_follow_ups": len(added), "risk_past_holdings": past,
            "risk_old_won": len(old_won)}


def _old_won(now: dt.datetime, band: dict[int, str],
             grades: dict[int, Optional[str]]) -> tuple[list[dict], list[int]]:
    """Move a share of the reps' own won customers' start back to 150–365 days ago, with a
    first deal then and the owner's follow-ups after it: looked after until the customer's
    recent activity, or (the quiet ones) for a few weeks, more and more rarely, then not at
    all. Its own generator, so the rest of the demo draws the same numbers."""
    rng = random.Random(OLD_WON_SEED)
    first_fu = dict(db.session.execute(select(FollowUp.customer_id, func.min(
        FollowUp.happened_at)).group_by(FollowUp.customer_id)).all())
    first_deal = dict(db.session.execute(select(Deal.customer_id, func.min(Deal.won_on))
                                         .group_by(Deal.customer_id)).all())
    one_event = select(OwnershipEvent.customer_id).group_by(OwnershipEvent.customer_id).having(
        func.count() == 1)
    rows = db.session.execute(
        select(Ownership.customer_id, Ownership.owner_id, Ownership.acquired_at,
               Customer.product_line)
        .join(Customer, Customer.id == Ownership.customer_id)
        .where(Ownership.won.is_(True), Ownership.locked.is_(False),
               Ownership.acquired_how == "created", Ownership.last_followup_at.is_not(None),
               Ownership.customer_id.in_(one_event))
        .order_by(Ownership.customer_id)).all()
    follow_ups, moved = [], []
    for cid, owner, acquired, product_line in rows:
        if rng.random() >= OLD_WON_SHARE or cid not in first_deal:
            continue
        won = now - rng.uniform(*OLD_WON_DAYS) * DAY
        received = won - rng.uniform(3, 40) * DAY
        # Nothing of the old history reaches the customer's recent activity.
        recent = min(first_fu.get(cid, now), dt.datetime.combine(first_deal[cid], dt.time()),
                     acquired)
        if won >= recent - 5 * DAY:
            continue
        grade = grades.get(cid)
        low, high = BANDS.get(grade, BANDS[None])
        amount = rng.randrange(low // 100, high // 100) * 100
        place = (amount - low) / (high - low)
        level = band.get(owner, "medium")
        odds = (QUIET_BASE + QUIET_LOAD[level] + QUIET_GRADE.get(grade, 0.0)
                + QUIET_DEAL * place)
        quiet = rng.random() < 1 / (1 + np.exp(-odds))
        mean = ACCOUNT_GAP * BASE_GAP[level] * GRADE_FACTOR.get(grade, 1.0)
        cared_for = won + rng.uniform(10, 60) * DAY if quiet else recent
        # Before the deal a prospect, followed up at the owner's rhythm within the
        # no-follow-up days (or the sweep would have taken it back).
        longest = float(policies.effective_policy(owner)["reclaim_no_followup_days"].value) - 2
        when = received + min(rng.expovariate(0.5), longest) * DAY
        while when < won:
            follow_ups.append(_follow_up(rng, cid, owner, when))
            when += min(max(rng.gammavariate(2.0, BASE_GAP[level] / 2.0), 0.5), longest) * DAY
        when, slowing = won, 1.0
        while True:
            gap = min(max(rng.gammavariate(2.0, mean * slowing / 2.0), 0.5), LONGEST_ACCOUNT_GAP)
            when = when + gap * DAY
            if when >= cared_for or when >= recent - DAY:
                break
            follow_ups.append(_follow_up(rng, cid, owner, when))
            if quiet:
                slowing *= 1.5  # neglect sets in gradually
        db.session.execute(Deal.__table__.insert().values(
            customer_id=cid, user_id=owner, amount=Decimal(amount), won_on=won.date(),
            product_line=product_line, created_at=won))
        db.session.execute(Customer.__table__.update().where(Customer.id == cid).values(
            created_at=received))
        db.session.execute(Contact.__table__.update().where(Contact.customer_id == cid).values(
            created_at=received))
        db.session.execute(Ownership.__table__.update().where(Ownership.customer_id == cid)
                           .values(acquired_at=received))
        db.session.execute(OwnershipEvent.__table__.update().where(
            OwnershipEvent.customer_id == cid, OwnershipEvent.kind == "created")
            .values(created_at=received))
        moved.append(cid)
    return follow_ups, moved
