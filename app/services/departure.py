"""Departure handover (离职交接): every customer of a departing user moves in one operation -
to one rep, evenly over a team, or to a pool - and then the user is marked departed.

No customer may stay with an inactive user: customers that no rep of the team can take
(caps) go to the pool, and the preview says so.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import select, update

from app.extensions import db
from app.models import Customer, Ownership, Pool, User
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, has_role
from app.services import caps, notifications, org, ownership
from app.services.assignment import plan_distribution
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed, tr

MODES = ("rep", "team", "rules", "pool")


def handover(actor: User, user_id: int, mode: str, *, owner_id: Optional[int] = None,
             owner_ids: Optional[list[int]] = None, pool_id: Optional[int] = None,
             dry_run: bool = True) -> dict:
    """Plan (dry_run) or carry out the handover; returns the plan either way."""
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can hand over a departing user's customers"))
    leaving = db.session.get(User, user_id)
    if leaving is None:
        raise NotFound(tr("The user does not exist"))
    if mode not in MODES:
        raise ValidationFailed({"mode": tr("The handover mode can only be rep, team, rules or "
                                            "pool")})
    ids = list(db.session.execute(select(Ownership.customer_id).where(
        Ownership.owner_id == user_id).order_by(Ownership.customer_id)).scalars())
    pool = ownership.customer_pool(pool_id, "pool_id") if pool_id else ownership.default_pool()
    targets: dict[int, list[int]] = {}
    skipped: list[dict] = []
    to_pool: list[int] = []
    if mode == "rep":
        if owner_id is None or owner_id == user_id:
            raise ValidationFailed({"owner_id": tr("Select the sales rep who takes the customers")})
        ownership.ensure_active_owner(owner_id)
        caps.check_handover(owner_id, len(ids))
        targets[owner_id] = ids
    elif mode == "team":
        team = [i for i in (owner_ids or []) if i != user_id]
        if not team:
            raise ValidationFailed({"owner_ids": tr("Select the team members who take the "
                                                    "customers")})
        plan = plan_distribution(actor, ids, team)
        targets = {line.owner_id: line.customer_ids for line in plan.lines if line.customer_ids}
        skipped, to_pool = plan.skipped, plan.unassigned
    elif mode == "rules":
        from app.services import rules as rule_service

        loads = rule_service._Loads()
        rule_list = rule_service.active_rules()
        by_pool: dict[int, list[int]] = {}
        for customer in db.session.execute(select(Customer).where(Customer.id.in_(ids))
                                           .order_by(Customer.id)).scalars():
            rule = next((r for r in rule_list
                         if rule_service.matches(r, rule_service.customer_values(customer))), None)
            placed = rule_service.place(rule, loads, exclude=[user_id]) if rule else None
            if placed is not None and placed.owner_id:
                targets.setdefault(placed.owner_id, []).append(customer.id)
            else:
                target_pool = placed.pool_id if placed is not None else pool.id
                by_pool.setdefault(target_pool, []).append(customer.id)
        if len(by_pool) > 1 or (by_pool and pool.id not in by_pool):
            raise ValidationFailed({"pool_id": tr("The rules put the customers in several pools: "
                                                  "assign them to reps by the rules first, or "
                                                  "choose the return-to-pool mode")})
        to_pool = by_pool.get(pool.id, [])
    else:
        to_pool = ids
    preview = {
        "dry_run": dry_run, "user_id": user_id, "customers": len(ids),
        "assignments": [{"owner_id": o, "count": len(c), "customer_ids": c}
                        for o, c in targets.items()],
        "to_pool": {"pool_id": pool.id, "pool": pool.name, "count": len(to_pool),
                    "customer_ids": to_pool},
        "skipped": skipped,
        "leads": _lead_plan(user_id, owner_id if mode == "rep" else None),
    }
    if dry_run:
        db.session.rollback()
        return preview
    try:
        now = utcnow()
        events = []
        for target in sorted(targets):
            ownership.lock_rep(target)
            caps.check_cap(target, len(targets[target]), verb=caps.TRANSFERRING_IN)
            caps.check_lock_cap_receiving(target, targets[target])  # they keep their locks
            moved = db.session.execute(
                update(Ownership).where(Ownership.customer_id.in_(targets[target]),
                                        Ownership.owner_id == user_id)
                .values(owner_id=target, acquired_at=now, acquired_how="transferred",
                        previous_owner_id=user_id, last_followup_at=None)).rowcount
            if moved != len(targets[target]):
                raise Conflict(tr("Customers changed during the handover; preview again"),
                               code="owner_changed")
            events += [dict(customer_id=i, kind="transferred", from_owner_id=user_id,
                            to_owner_id=target, actor_id=actor.id, reason="离职交接",
                            rule=f"departure:{mode}") for i in targets[target]]
        if to_pool:
            moved = db.session.execute(
                update(Ownership).where(Ownership.customer_id.in_(to_pool),
                                        Ownership.owner_id == user_id)
                .values(owner_id=None, pool_id=pool.id, previous_owner_id=user_id,
                        released_at=now, locked=False)).rowcount
            if moved != len(to_pool):
                raise Conflict(tr("Customers changed during the handover; preview again"),
                               code="owner_changed")
            events += [dict(customer_id=i, kind="released", from_owner_id=user_id,
                            to_pool_id=pool.id, actor_id=actor.id, reason="离职交接",
                            rule=f"departure:{mode}") for i in to_pool]
        ownership.record_events(events, now)
        for target, cids in targets.items():
            notifications.notify([target], "departure_handover", "离职交接：您接收了新客户",
                                 f"{leaving.display_name} 离职，{len(cids)} 个客户转给您")
        from app.services import lead_handover

        lead_handover.hand_over(actor.id, user_id, owner_id if mode == "rep" else None, now)
        db.session.flush()
        org.mark_departed(user_id, actor.id)  # commits; refuses if anything is still owned
    except Exception:
        db.session.rollback()
        raise
    return preview


def _lead_plan(user_id: int, successor_id: Optional[int]) -> dict:
    """The leaving user's open leads: to the successor (rep mode, within the lead cap) or to
    their lead pools (app.services.lead_handover)."""
    from app.services import lead_handover

    counts = lead_handover.plan(user_id, successor_id)
    counts.pop("lead_ids")
    return counts
