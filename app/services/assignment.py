"""Assign (分配) pool customers to a rep, distribute them evenly, and lock key accounts (锁定).

Every target rep is locked (in id order, so two distributions cannot deadlock) before its
cap is counted; the ownership UPDATE re-checks that each customer is still in a pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import ROLE_ADMIN, ROLE_MANAGER, has_role
from app.services import ownership, policies
from app.services.customers import assignable_owner_ids
from app.services.errors import (LockCapExceeded, NotInPool, OutOfScope, PermissionDenied,
                                 ValidationFailed)
from app.services.pool import _managed_owner_ids, _names, member_pool_ids, parse_ids


def _require_distributor(actor: User) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER):
        raise PermissionDenied("只有销售经理和管理员可以分配客户")


def _pool_rows(actor: User, ids: list[int]) -> dict[int, Ownership]:
    rows = ownership.snapshot(ids)
    gone = [i for i in ids if i not in rows or rows[i].pool_id is None]
    if gone:
        raise NotInPool(f"客户已不在公海中：{_names(gone)}", customer_ids=gone)
    pools = member_pool_ids(actor)
    foreign = [i for i in ids if rows[i].pool_id not in pools]
    if foreign:
        raise OutOfScope(f"这些客户所在的公海不在您的管理范围：{_names(foreign)}",
                         code="not_pool_member", customer_ids=foreign)
    return rows


def _check_target(actor: User, owner_id: int) -> User:
    owner = ownership.ensure_active_owner(owner_id)
    allowed = db.session.execute(assignable_owner_ids(actor).where(User.id == owner_id)).first()
    if allowed is None:
        raise OutOfScope(f"{owner.display_name} 不在您的数据权限内", code="out_of_scope")
    return owner


def assign(actor: User, customer_ids: Iterable, owner_id: int,
           reason: Optional[str] = None) -> list[int]:
    """Give pool customers to one rep, within that rep's cap; all or nothing."""
    _require_distributor(actor)
    ids = parse_ids(customer_ids)
    try:
        _check_target(actor, owner_id)
        ownership.lock_rep(owner_id)
        rows = _pool_rows(actor, ids)
        ownership.check_cap(owner_id, len(ids), verb="分配")
        now = utcnow()
        if ownership.move_from_pool(ids, owner_id, now=now, how="assigned") != len(ids):
            raise NotInPool("部分客户刚被他人领取，请刷新后重试")
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


def plan_distribution(actor: User, ids: list[int], owner_ids: list[int]) -> DistributionPlan:
    """Fewest-owned first, round-robin; reps at cap or inactive are skipped with a reason."""
    lines: list[PlanLine] = []
    skipped: list[dict] = []
    for owner_id in owner_ids:
        user = db.session.get(User, owner_id)
        if user is None:
            skipped.append({"owner_id": owner_id, "reason": "用户不存在"})
            continue
        if not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
            skipped.append({"owner_id": owner_id, "username": user.username,
                            "reason": "已停用或离职"})
            continue
        if db.session.execute(assignable_owner_ids(actor).where(User.id == owner_id)).first() is None:
            skipped.append({"owner_id": owner_id, "username": user.username,
                            "reason": "不在您的数据权限内"})
            continue
        cap, have = ownership.cap_room(owner_id)
        if have >= cap:
            skipped.append({"owner_id": owner_id, "username": user.username,
                            "reason": f"已达上限：上限 {cap}，已拥有 {have}"})
            continue
        lines.append(PlanLine(owner_id, user.username, have, cap))
    unassigned: list[int] = []
    for customer_id in ids:
        open_lines = [l for l in lines if l.owned_before + len(l.customer_ids) < l.cap]
        if not open_lines:
            unassigned.append(customer_id)
            continue
        # Fewest after this round first; ties keep the order the reps were given (round-robin).
        target = min(open_lines, key=lambda l: l.owned_before + len(l.customer_ids))
        target.customer_ids.append(customer_id)
    return DistributionPlan(lines, skipped, unassigned, dry_run=True)


def distribute(actor: User, customer_ids: Iterable, owner_ids: Iterable,
               dry_run: bool = True) -> DistributionPlan:
    """Spread pool customers evenly over reps; with dry_run, only the preview."""
    _require_distributor(actor)
    ids = parse_ids(customer_ids)
    try:
        reps = parse_ids(owner_ids)
    except ValidationFailed:
        raise ValidationFailed({"owner_ids": "请至少选择一名销售"})
    try:
        rows = _pool_rows(actor, ids)
        if not dry_run:
            for owner_id in sorted(reps):
                ownership.lock_rep(owner_id)
        plan = plan_distribution(actor, ids, reps)
        plan.dry_run = dry_run
        if dry_run:
            db.session.rollback()
            return plan
        now = utcnow()
        events = []
        for line in plan.lines:
            if not line.customer_ids:
                continue
            moved = ownership.move_from_pool(line.customer_ids, line.owner_id, now=now,
                                             how="assigned")
            if moved != len(line.customer_ids):
                raise NotInPool("部分客户刚被他人领取，请刷新后重试")
            events += [dict(customer_id=i, kind="assigned", from_pool_id=rows[i].pool_id,
                            to_owner_id=line.owner_id, actor_id=actor.id, reason="平均分配",
                            rule="even distribution") for i in line.customer_ids]
        ownership.record_events(events, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return plan


def locked_count(user_id: int) -> int:
    return db.session.execute(select(func.count()).select_from(Ownership).where(
        Ownership.owner_id == user_id, Ownership.locked.is_(True))).scalar_one()


def lock(actor: User, customer_ids: Iterable) -> list[int]:
    """The owner locks key accounts (exempt from reclaim) up to the lock cap."""
    ids = parse_ids(customer_ids)
    try:
        ownership.lock_rep(actor.id)
        rows = ownership.snapshot(ids)
        foreign = [i for i in ids if i not in rows or rows[i].owner_id != actor.id]
        if foreign:
            raise OutOfScope("只能锁定自己负责的客户", customer_ids=foreign)
        new = [i for i in ids if not rows[i].locked]
        cap = int(policies.policy_value(actor.id, "max_locked"))
        have = locked_count(actor.id)
        if have + len(new) > cap:
            raise LockCapExceeded(
                f"超出锁定上限：上限 {cap}，已锁定 {have}，本次锁定 {len(new)}",
                cap=cap, locked=have, adding=len(new))
        db.session.execute(update(Ownership).where(
            Ownership.customer_id.in_(new), Ownership.owner_id == actor.id).values(locked=True))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return new


def unlock(actor: User, customer_ids: Iterable) -> list[int]:
    """Managers (within scope) and admins unlock."""
    _require_distributor(actor)
    ids = parse_ids(customer_ids)
    rows = ownership.snapshot(ids)
    owners = {o.owner_id for o in rows.values() if o.owner_id is not None}
    allowed = _managed_owner_ids(actor, owners)
    foreign = [i for i in ids if i not in rows or rows[i].owner_id not in allowed]
    if foreign:
        raise OutOfScope("客户不存在或不在您的数据权限内", customer_ids=foreign)
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(ids))
                       .values(locked=False))
    db.session.commit()
    return ids
