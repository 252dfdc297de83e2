"""Public pools (公海): membership, claim (领取) and release (放弃).

Claim is race-free: the rep's row is locked first (caps and the daily limit are counted under
that lock), and the ownership UPDATE re-checks "still in the pool" in its WHERE clause, so two
reps claiming one customer cannot both win. A bulk claim is all-or-nothing.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable, Optional
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import func, or_, select, update

from app.extensions import db
from app.models import Customer, Ownership, OwnershipEvent, Pool, PoolMember, User
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, Scope, has_role, scope_of, \
    visible_owner_ids_select
from app.services import ownership, policies
from app.services.errors import (DailyLimitReached, InCooldown, NotInPool, OutOfScope,
                                 PermissionDenied, ValidationFailed)

MAX_BATCH = 1000


def parse_ids(customer_ids: Iterable) -> list[int]:
    """Distinct positive integer ids, in the given order; ValidationFailed otherwise."""
    out: list[int] = []
    try:
        for raw in customer_ids or []:
            if isinstance(raw, bool):
                raise ValueError
            value = int(raw)
            if value <= 0:
                raise ValueError
            if value not in out:
                out.append(value)
    except (TypeError, ValueError):
        raise ValidationFailed({"customer_ids": "客户编号必须是正整数列表"})
    if not out:
        raise ValidationFailed({"customer_ids": "请至少选择一个客户"})
    if len(out) > MAX_BATCH:
        raise ValidationFailed({"customer_ids": f"一次最多处理 {MAX_BATCH} 个客户"})
    return out


def member_pool_ids(user: User, chain: Optional[list[int]] = None) -> set[int]:
    """Pools the user belongs to: as a user, or through their department or a parent of it.
    Admins belong to every pool."""
    if has_role(user, ROLE_ADMIN):
        return set(db.session.execute(select(Pool.id)).scalars())
    chain = policies.department_chain_ids(user.id) if chain is None else chain
    return set(db.session.execute(select(PoolMember.pool_id).where(or_(
        PoolMember.user_id == user.id, PoolMember.department_id.in_(chain or [0])))).scalars())


def local_day_start(now: Optional[dt.datetime] = None) -> dt.datetime:
    """Start of today in the business time zone, as naive UTC (how times are stored)."""
    zone = ZoneInfo(current_app.config.get("TIMEZONE", "Asia/Shanghai")
                    if has_app_context() else "Asia/Shanghai")
    now = now or utcnow()
    local = now.replace(tzinfo=dt.timezone.utc).astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.timezone.utc).replace(tzinfo=None)


def _claimed_today_select(user_id: int):
    return select(func.count()).select_from(OwnershipEvent).where(
        OwnershipEvent.to_owner_id == user_id, OwnershipEvent.kind == "claimed",
        OwnershipEvent.created_at >= local_day_start()).scalar_subquery()


def claimed_today(user_id: int) -> int:
    return db.session.execute(select(_claimed_today_select(user_id))).scalar_one()


def _names(ids: Iterable[int]) -> str:
    rows = db.session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(list(ids))))
    names = {i: n for i, n in rows}
    return "、".join(names.get(i, f"#{i}") for i in ids)


def claim_from_pool(actor: User, customer_ids: Iterable, pool_id: Optional[int] = None) -> list[int]:
    """The actor takes customers from a pool they belong to; all or nothing."""
    ids = parse_ids(customer_ids)
    if not has_role(actor, ROLE_REP, ROLE_MANAGER, ROLE_ADMIN):
        raise PermissionDenied("您的角色不能领取公海客户")
    try:
        # Hot path (see bench/claims.py): a handful of Core statements, the rep locked first.
        ownership.lock_active_rep(actor.id)
        chain = policies.department_chain_ids(actor.id)
        pools = member_pool_ids(actor, chain)
        if pool_id is not None and pool_id not in pools:
            raise OutOfScope("您不是该公海的成员", code="not_pool_member")
        rows = ownership.snapshot(ids)
        gone = [i for i in ids if i not in rows or rows[i].pool_id is None
                or (pool_id is not None and rows[i].pool_id != pool_id)]
        if gone:
            raise NotInPool(f"客户已不在公海中：{_names(gone)}", customer_ids=gone)
        foreign = [i for i in ids if rows[i].pool_id not in pools]
        if foreign:
            raise OutOfScope(f"这些客户所在的公海您无权领取：{_names(foreign)}",
                             code="not_pool_member", customer_ids=foreign)
        policy = policies.effective_policy(actor.id, chain)
        days = int(policy["cooldown_days"].value or 0)
        now = utcnow()
        if days:
            cooling = [o for o in rows.values() if o.previous_owner_id == actor.id
                       and o.released_at is not None
                       and o.released_at > now - dt.timedelta(days=days)]
            if cooling:
                first = min(cooling, key=lambda o: o.released_at)
                left = days - (now - first.released_at).days
                raise InCooldown(
                    f"原负责人冷却期 {days} 天：{_names([o.customer_id for o in cooling])} "
                    f"于 {first.released_at:%Y-%m-%d} 从您名下退回，还需 {left} 天才能再领取",
                    cooldown_days=days, customer_ids=[o.customer_id for o in cooling])
        limit = int(policy["daily_claim_limit"].value)
        cap = int(policy["max_customers"].value)
        today, have = db.session.execute(select(
            _claimed_today_select(actor.id),
            ownership.owned_count_select(actor.id, bool(policy["count_won"].value)))).one()
        if today + len(ids) > limit:
            raise DailyLimitReached(
                f"超出每日领取上限：上限 {limit}，今日已领取 {today}，本次领取 {len(ids)}",
                limit=limit, claimed_today=today, adding=len(ids))
        if have + len(ids) > cap:
            raise ownership.cap_error(cap, have, len(ids), "领取")
        moved = ownership.move_from_pool(ids, actor.id, now=now)
        if moved != len(ids):
            raise NotInPool("部分客户刚被他人领取，请刷新后重试")
        ownership.record_events(
            [dict(customer_id=i, kind="claimed", from_pool_id=rows[i].pool_id,
                  to_owner_id=actor.id, actor_id=actor.id, reason="领取") for i in ids], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def release_to_pool(actor: User, customer_ids: Iterable, reason: str,
                    pool_id: Optional[int] = None) -> list[int]:
    """Owners (or their managers, or admins) return customers to a pool with a reason."""
    ids = parse_ids(customer_ids)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": "请填写放弃原因"})
    target = db.session.get(Pool, pool_id) if pool_id is not None else ownership.default_pool()
    if target is None:
        raise ValidationFailed({"pool_id": "公海不存在"})
    try:
        rows = ownership.snapshot(ids)
        not_owned = [i for i in ids if i not in rows or rows[i].owner_id is None]
        if not_owned:
            raise NotInPool(f"这些客户没有负责人，无需放弃：{_names(not_owned)}",
                            code="not_owned", customer_ids=not_owned)
        allowed = _managed_owner_ids(actor, {o.owner_id for o in rows.values()})
        foreign = [i for i in ids if rows[i].owner_id not in allowed]
        if foreign:
            raise OutOfScope("客户不存在或不在您的数据权限内", customer_ids=foreign)
        now = utcnow()
        by_owner: dict[int, list[int]] = {}
        for i in ids:
            by_owner.setdefault(rows[i].owner_id, []).append(i)
        for owner_id, group in by_owner.items():
            done = db.session.execute(
                update(Ownership)
                .where(Ownership.customer_id.in_(group), Ownership.owner_id == owner_id)
                .values(owner_id=None, pool_id=target.id, previous_owner_id=owner_id,
                        released_at=now, locked=False)).rowcount
            if done != len(group):
                raise NotInPool("部分客户的负责人刚刚变更，请刷新后重试", code="conflict")
        ownership.record_events(
            [dict(customer_id=i, kind="released", from_owner_id=rows[i].owner_id,
                  to_pool_id=target.id, actor_id=actor.id, reason=reason) for i in ids], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def _managed_owner_ids(actor: User, owner_ids: set[int]) -> set[int]:
    """Which of owner_ids the actor may act for: themself, anyone for admins, their scope for
    managers."""
    if has_role(actor, ROLE_ADMIN):
        return set(owner_ids)
    allowed = {actor.id} & owner_ids
    if has_role(actor, ROLE_MANAGER):
        allowed |= set(db.session.execute(
            visible_owner_ids_select(actor, scope_of(actor) or Scope.OWN)
            .where(User.id.in_(owner_ids))).scalars())
    return allowed
