"""The demo's ownership history (issue 20 §3): how its customers came to their reps, so that the
ownership-effect evaluation has rules, strategies and channels to compare.

The base demo creates every customer directly with its owner. Here, deterministically (its own
seeded generator, so the rest of the demo is unchanged):
- an owned customer whose province an assignment rule names, held by a rep of that rule's
  department, was placed by that rule (its 'created' event names the rule);
- of the other owned customers, about 35 % were claimed from the default pool and about 15 %
  given out by a manager's even distribution, some days after they entered the pool;
- about half of the pool customers older than 45 days had a past holding: placed by a rule,
  claimed or distributed, then reclaimed 31–40 days later without a deal. The share differs
  by rule **on purpose** (the Beijing rule's customers were reclaimed most, the Shanghai
  rule's least), so the report has a difference to find: the demo's figures measure this
  generator, not a real sales team;
- follow-ups: the follow-up each owned customer's `last_followup_at` records, a first one a
  few days after receipt (exponential, mean 2 days) when it comes earlier, and one during
  some past holdings.
Events stay consistent with the ownership rows: created → (pool) → claimed / assigned /
rule-assigned → (reclaimed → pool).
"""
from __future__ import annotations

import datetime as dt
import random
from typing import Optional

from sqlalchemy import select, update

from app.extensions import db
from app.models import (AssignmentRule, Customer, Department, FollowUp, Ownership,
                        OwnershipEvent, User)
from app.security import ROLE_REP, has_role
from app.services import ownership

SEED = 2026_20
CLAIMED_SHARE, DISTRIBUTED_SHARE = 0.35, 0.15
# The share of old pool customers with a failed past holding, per way of receiving.
PAST_SHARE = {"rule:上海客户归上海团队（轮流）": 0.05, "rule:北京客户归华北大区（最少客户优先）": 0.95,
              "rule:广东客户归华南大区（平均）": 0.45, "claimed": 0.5, "distributed": 0.5}
RECLAIM_RULE = "reclaim:no_followup:30d"
DAY = dt.timedelta(days=1)


def build_ownership_history(now: dt.datetime) -> dict:
    rng = random.Random(SEED)
    pool = ownership.default_pool()
    users = db.session.execute(select(User)).scalars().all()
    reps = sorted((u for u in users if has_role(u, ROLE_REP)), key=lambda u: u.id)
    dept_of = {u.id: u.department_id for u in users}
    manager = next(u for u in users if u.username == "manager1")
    departments = {d.id: d for d in db.session.execute(select(Department)).scalars()}
    rules = {}
    for rule in db.session.execute(select(AssignmentRule).where(
            AssignmentRule.record_type == "customer", AssignmentRule.active.is_(True))).scalars():
        root = departments.get(rule.target_department_id)
        if root is None or not rule.province:
            continue
        tree = {d.id for d in departments.values() if d.path.startswith(root.path)}
        rules[rule.province] = (rule.name, tree, [r for r in reps if dept_of[r.id] in tree])

    events: list[dict] = []
    follow_ups: list[dict] = []
    counts = {"rule-assigned": 0, "claimed": 0, "distributed": 0, "past_holdings": 0}

    def follow(customer_id: int, user_id: int, when: dt.datetime) -> None:
        follow_ups.append(dict(customer_id=customer_id, user_id=user_id, channel="call",
                               content="电话沟通需求", happened_at=when, created_at=when))

    # --- owned customers: how they came ------------------------------------------------------
    owned = db.session.execute(
        select(Ownership.customer_id, Ownership.owner_id, Ownership.acquired_at,
               Ownership.last_followup_at, Customer.province)
        .join(Customer, Customer.id == Ownership.customer_id)
        .where(Ownership.owner_id.is_not(None)).order_by(Ownership.customer_id)).all()
    for cid, owner_id, acquired, last_fu, province in owned:
        rule = rules.get(province)
        roll = rng.random()
        if rule and dept_of.get(owner_id) in rule[1]:
            db.session.execute(update(OwnershipEvent).where(
                OwnershipEvent.customer_id == cid, OwnershipEvent.kind == "created")
                .values(rule=f"rule:{rule[0]}"))
            db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                               .values(acquired_how="rule-assigned"))
            counts["rule-assigned"] += 1
        elif roll < CLAIMED_SHARE + DISTRIBUTED_SHARE:
            claimed = roll < CLAIMED_SHARE
            entered = acquired - rng.uniform(1, 20) * DAY
            db.session.execute(update(OwnershipEvent).where(
                OwnershipEvent.customer_id == cid, OwnershipEvent.kind == "created")
                .values(to_owner_id=None, to_pool_id=pool.id, created_at=entered))
            db.session.execute(update(Customer).where(Customer.id == cid)
                               .values(created_at=entered))
            db.session.execute(update(Ownership).where(Ownership.customer_id == cid).values(
                acquired_how="claimed" if claimed else "assigned", first_owner_id=owner_id))
            events.append(dict(
                customer_id=cid, kind="claimed" if claimed else "assigned",
                from_pool_id=pool.id, to_owner_id=owner_id,
                actor_id=owner_id if claimed else manager.id,
                reason=None if claimed else "平均分配",
                rule=None if claimed else "even distribution", created_at=acquired))
            counts["claimed" if claimed else "distributed"] += 1
        if last_fu is not None:
            follow(cid, owner_id, last_fu)
            first = acquired + rng.expovariate(0.5) * DAY
            if first < last_fu - dt.timedelta(hours=1):
                follow(cid, owner_id, first)

    # --- pool customers: a past holding that ended in a reclaim ------------------------------
    in_pool = db.session.execute(
        select(Ownership.customer_id, Customer.created_at, Customer.province)
        .join(Customer, Customer.id == Ownership.customer_id)
        .where(Ownership.pool_id == pool.id, Customer.created_at < now - 45 * DAY)
        .order_by(Ownership.customer_id)).all()
    for cid, created, province in in_pool:
        rule = rules.get(province)
        roll = rng.random()
        if rule and rule[2]:
            how, owner = f"rule:{rule[0]}", rng.choice(rule[2])
        else:
            how, owner = ("claimed" if roll < 0.7 else "distributed"), rng.choice(reps)
        if rng.random() >= PAST_SHARE[how]:
            continue
        received = created + rng.uniform(0.5, 5) * DAY
        touched: Optional[dt.datetime] = None
        if rng.random() < 0.4:
            touched = received + rng.uniform(0, 10) * DAY
            follow(cid, owner.id, touched)
        reclaimed = (touched or received) + rng.uniform(31, 40) * DAY
        if reclaimed >= now - DAY:
            continue
        kind = {"claimed": "claimed", "distributed": "assigned"}.get(how, "rule-assigned")
        events.append(dict(customer_id=cid, kind=kind, from_pool_id=pool.id, to_owner_id=owner.id,
                           actor_id=manager.id if kind != "claimed" else owner.id,
                           reason={"assigned": "平均分配", "rule-assigned": "按归属规则分配"}
                           .get(kind), rule=how if how.startswith("rule:") else (
                               "even distribution" if kind == "assigned" else None),
                           created_at=received))
        events.append(dict(customer_id=cid, kind="reclaimed", from_owner_id=owner.id,
                           to_pool_id=pool.id, reason="超过 30 天未跟进，自动回收",
                           rule=RECLAIM_RULE, created_at=reclaimed))
        db.session.execute(update(Ownership).where(Ownership.customer_id == cid).values(
            previous_owner_id=owner.id, released_at=reclaimed, first_owner_id=owner.id))
        counts["past_holdings"] += 1
    if events:
        keys = ("customer_id", "kind", "from_owner_id", "from_pool_id", "to_owner_id",
                "to_pool_id", "reason", "rule", "actor_id", "created_at")
        db.session.execute(OwnershipEvent.__table__.insert(),
                           [{k: e.get(k) for k in keys} for e in events])
    if follow_ups:
        db.session.execute(FollowUp.__table__.insert(), follow_ups)
    db.session.commit()
    return {"history_" + k.replace("-", "_"): v for k, v in counts.items()} | {
        "history_follow_ups": len(follow_ups)}
