"""Assign (分配) pool customers to a rep, distribute them evenly, and lock key accounts (锁定).

Every target rep is locked (in id order, so two distributions cannot deadlock) before its
cap is counted; the ownership UPDATE re-checks that each customer is still in the pool it was
read in.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import select, update

from app.extensions import db
from app.models import Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import ROLE_ADMIN, ROLE_MANAGER, has_role
from app.services import absences, audit, caps, ownership, pool_admin
from app.services.customers import assignable_owner_ids
from app.services.errors import (CLAIMED_MEANWHILE, NO_SUCH_CUSTOMER, Conflict, NotInPool,
                                 OutOfScope, PermissionDenied, ValidationFailed, tr)
from app.services.pool import (MAX_BATCH, customer_names, managed_owner_ids, member_pool_ids,
                               parse_ids)

# Customers per distribute() call for bulk callers; the API and pages stay at MAX_BATCH.
MAX_DISTRIBUTE = 200_000


def require_distributor(actor: User) -> None:
    from app.security import marketing_only

    if marketing_only(actor):  # a pool admin in marketing still takes no ownership action
        raise PermissionDenied(tr("Marketing takes no ownership action on customers"))
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER) and not pool_admin.admin_pool_ids(actor):
        raise PermissionDenied(tr("Only sales managers, admins and pool managers can assign "
                                  "customers"))


def distributable_pool_ids(actor: User) -> set[int]:
    """Pools whose customers the actor may hand out: admins every pool, managers the pools
    they belong to, pool admins the pools they administer."""
    if has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        return member_pool_ids(actor)
    return pool_admin.admin_pool_ids(actor)


def _pool_rows(actor: User, ids: list[int]) -> dict:
    rows = ownership.snapshot(ids)
    gone = [i for i in ids if i not in rows or rows[i].pool_id is None]
    if gone:
        raise NotInPool(tr("No longer in a pool: %(names)s", names=customer_names(gone)),
                        customer_ids=gone)
    pools = distributable_pool_ids(actor)
    foreign = [i for i in ids if rows[i].pool_id not in pools]
    if foreign:
        raise OutOfScope(tr("These customers are in pools you do not manage: %(names)s",
                            names=customer_names(foreign)),
                         code="not_pool_member", customer_ids=foreign)
    return rows


def target_ids(actor: User, pool_ids: Iterable[int]):
    """SELECT of the users the actor may give these pools' customers to: the users in the
    actor's data scope, plus - for pools the actor administers - the pools' members."""
    allowed = assignable_owner_ids(actor)
    administered = set(pool_ids) & pool_admin.admin_pool_ids(actor)
    if administered and not has_role(actor, ROLE_ADMIN):
        allowed = allowed.union(pool_admin.member_user_ids(administered))
    return allowed


def _check_target(actor: User, owner_id: int, allowed) -> User:
    owner = ownership.ensure_active_owner(owner_id)
    if db.session.execute(select(User.id).where(User.id == owner_id,
                                                User.id.in_(allowed))).first() is None:
        raise OutOfScope(tr("%(name)s is outside your data scope", name=owner.display_name),
                         code="out_of_scope")
    return owner


def refuse_absent(owner: User) -> None:
    """Nobody is handed customers while on leave (app.services.absences): Conflict `absent`
    naming the dates."""
    away = absences.current_absences([owner.id]).get(owner.id)
    if away is not None:
        raise Conflict(tr("%(name)s is on leave (%(period)s) and cannot receive customers",
                          name=owner.display_name, period=absences.period_text(*away)),
                       code="absent")


def assign(actor: User, customer_ids: Iterable, owner_id: int,
           reason: Optional[str] = None) -> list[int]:
    """Give pool customers to one rep, within that rep's cap; all or nothing."""
    require_distributor(actor)
    ids = parse_ids(customer_ids)
    try:
        rows = _pool_rows(actor, ids)
        owner = _check_target(actor, owner_id,
                              target_ids(actor, {r.pool_id for r in rows.values()}))
        refuse_absent(owner)
        ownership.lock_rep(owner_id)
        caps.check_cap(owner_id, len(ids), verb=caps.ASSIGNING)
        now = utcnow()
        if ownership.move_from_pool(ids, owner_id, now=now, how="assigned") != len(ids):
            raise NotInPool(tr(CLAIMED_MEANWHILE))
        ownership.record_events(
            [dict(customer_id=i, kind="assigned", from_pool_id=rows[i].pool_id,
                  to_owner_id=owner_id, actor_id=actor.id, reason=reason or "分配")
             for i in ids], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


@dataclass
class PlanLine:
    owner_id: int
    username: str
    owned_before: int
    cap: int
    customer_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"owner_id": self.owner_id, "username": self.username,
                "owned_before": self.owned_before, "cap": self.cap,
                "count": len(self.customer_ids), "customer_ids": self.customer_ids}


@dataclass
class DistributionPlan:
    lines: list[PlanLine]
    skipped: list[dict]
    unassigned: list[int]
    dry_run: bool

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "assignments": [l.to_dict() for l in self.lines],
                "skipped": self.skipped, "unassigned": self.unassigned}


def plan_distribution(actor: User, ids: list[int], owner_ids: list[int],
                      allowed=None) -> DistributionPlan:
    """Fewest-owned first, round-robin; reps at cap, inactive or on leave today are skipped
    with a reason. `allowed` is the SELECT of permitted receivers (default: the actor's data
    scope)."""
    allowed = assignable_owner_ids(actor) if allowed is None else allowed
    away = absences.current_absences(owner_ids)
    lines: list[PlanLine] = []
    skipped: list[dict] = []
    for owner_id in owner_ids:
        line, refusal = _plan_line(owner_id, allowed, away)
        if line is None:
            skipped.append(refusal)
        else:
            lines.append(line)
    unassigned = _fill_evenly(lines, ids)
    return DistributionPlan(lines, skipped, unassigned, dry_run=True)


def _plan_line(owner_id: int, allowed, away: dict
               ) -> tuple[Optional[PlanLine], Optional[dict]]:
    """An empty plan line for a rep who can take customers, else why they are skipped."""
    user = db.session.get(User, owner_id)
    if user is None:
        return None, {"owner_id": owner_id, "reason": tr("The user does not exist")}
    if not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
        return None, {"owner_id": owner_id, "username": user.username,
                      "reason": tr("Deactivated or departed")}
    if db.session.execute(select(User.id).where(User.id == owner_id,
                                                User.id.in_(allowed))).first() is None:
        return None, {"owner_id": owner_id, "username": user.username,
                      "reason": tr("Outside your data scope")}
    if owner_id in away:
        return None, {"owner_id": owner_id, "username": user.username,
                      "reason": absences.on_leave_text(*away[owner_id])}
    cap, have = caps.room(owner_id)
    if have >= cap:
        return None, {"owner_id": owner_id, "username": user.username,
                      "reason": tr("At the cap: cap %(cap)s, held %(have)s", cap=cap, have=have)}
    return PlanLine(owner_id, user.username, have, cap), None


def _fill_evenly(lines: list[PlanLine], ids: list[int]) -> list[int]:
    """Each customer, in order, to the open line with the fewest (ties: the order the reps
    were given); returns the customers no line had room for. A heap keyed (load, position)
    makes 100k customers over 50 reps a few hundred thousand steps instead of millions."""
    heap = [(l.owned_before, pos) for pos, l in enumerate(lines) if l.owned_before < l.cap]
    heapq.heapify(heap)
    for n, customer_id in enumerate(ids):
        if not heap:
            return ids[n:]
        load, pos = heap[0]
        line = lines[pos]
        line.customer_ids.append(customer_id)
        if load + 1 < line.cap:
            heapq.heapreplace(heap, (load + 1, pos))
        else:
            heapq.heappop(heap)
    return []


def distribute(actor: User, customer_ids: Iterable, owner_ids: Iterable,
               dry_run: bool = True, limit: int = MAX_BATCH) -> DistributionPlan:
    """Spread pool customers evenly over reps; with dry_run, only the preview.

    `limit` caps the customers per call: the API and pages keep the usual batch size, bulk
    callers (CLI, bench) pass MAX_DISTRIBUTE."""
    require_distributor(actor)
    ids = parse_ids(customer_ids, limit=limit)
    try:
        reps = parse_ids(owner_ids)
    except ValidationFailed:
        raise ValidationFailed({"owner_ids": tr("Select at least one sales rep")})
    try:
        rows = _pool_rows(actor, ids)
        if not dry_run:
            for owner_id in sorted(reps):
                ownership.lock_rep(owner_id)
        plan = plan_distribution(actor, ids, reps,
                                 target_ids(actor, {r.pool_id for r in rows.values()}))
        plan.dry_run = dry_run
        if dry_run:
            db.session.rollback()
            return plan
        _carry_out(actor, plan, rows)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return plan


def _carry_out(actor: User, plan: DistributionPlan, rows: dict) -> None:
    """Move every planned customer (each only if still in the pool it was read in) and log
    it, in a few statements per rep rather than one per customer."""
    now = utcnow()
    event = dict(kind="assigned", actor_id=actor.id, reason="平均分配", rule="even distribution")
    for line in plan.lines:
        by_pool: dict[int, list[int]] = {}
        for i in line.customer_ids:
            by_pool.setdefault(rows[i].pool_id, []).append(i)
        moved = ownership.take_from_pool(by_pool, line.owner_id, now=now, how="assigned",
                                         event=event)
        if moved != len(line.customer_ids):
            raise NotInPool(tr(CLAIMED_MEANWHILE))


def lock(actor: User, customer_ids: Iterable) -> list[int]:
    """The owner locks key accounts (exempt from reclaim) up to the lock cap."""
    ids = parse_ids(customer_ids)
    try:
        ownership.lock_rep(actor.id)
        rows = ownership.snapshot(ids)
        foreign = [i for i in ids if i not in rows or rows[i].owner_id != actor.id]
        if foreign:
            raise OutOfScope(tr("You can only lock customers you own"), customer_ids=foreign)
        new = [i for i in ids if not rows[i].locked]
        caps.check_lock_cap(actor.id, len(new))
        db.session.execute(update(Ownership).where(
            Ownership.customer_id.in_(new), Ownership.owner_id == actor.id).values(locked=True))
        _audit_lock(actor, new, True)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return new


def unlock(actor: User, customer_ids: Iterable) -> list[int]:
    """Managers (within scope) and admins unlock."""
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        raise PermissionDenied(tr("Only sales managers and admins can unlock customers"))
    ids = parse_ids(customer_ids)
    rows = ownership.snapshot(ids)
    owners = {o.owner_id for o in rows.values() if o.owner_id is not None}
    allowed = managed_owner_ids(actor, owners)
    foreign = [i for i in ids if i not in rows or rows[i].owner_id not in allowed]
    if foreign:
        raise OutOfScope(tr(NO_SUCH_CUSTOMER), customer_ids=foreign)
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(ids))
                       .values(locked=False))
    _audit_lock(actor, [i for i in ids if rows[i].locked], False)
    db.session.commit()
    return ids


def _audit_lock(actor: User, ids: list[int], locked: bool) -> None:
    """A lock changes who the reclaim may take back: one audit row per customer that changed
    (the audit log's and the customer timeline's record of it)."""
    for customer_id in ids:
        audit.record(actor.id, "lock" if locked else "unlock", "customer", customer_id,
                     {"locked": (not locked, locked)})
