"""Pool administration: moving customers from one public pool to another (admins only).

Membership itself is configuration (the Pools page, audited); this module holds the one
ownership change that stays inside the pools: a customer changes pool, writes a `moved` event,
and never gains an owner on the way.
"""
from __future__ import annotations

from typing import Iterable, Optional

from sqlalchemy import or_, select

from app.extensions import db
from app.models import Pool, PoolMember, User
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, has_role
from app.services import ownership
from app.services.errors import NotInPool, PermissionDenied, ValidationFailed
from app.services.pool import customer_names, parse_ids


def admin_pool_ids(user: User) -> set[int]:
    """Pools the user administers: every pool for admins; otherwise pools where the user, or
    their department or a department above it, is a member marked "pool admin"."""
    from app.services.policies import department_chain_ids

    if has_role(user, ROLE_ADMIN):
        return set(db.session.execute(select(Pool.id)).scalars())
    chain = department_chain_ids(user.id)
    return set(db.session.execute(select(PoolMember.pool_id).where(
        PoolMember.is_admin.is_(True),
        or_(PoolMember.user_id == user.id, PoolMember.department_id.in_(chain or [0]))))
        .scalars())


def member_user_ids(pool_ids: Iterable[int]):
    """SELECT of the users who belong to any of these pools: named members, and everyone in
    a member department or below it."""
    from app.models import Department

    pool_ids = list(pool_ids) or [0]
    paths = list(db.session.execute(
        select(Department.path).join(PoolMember, PoolMember.department_id == Department.id)
        .where(PoolMember.pool_id.in_(pool_ids))).scalars())
    in_department = select(Department.id).where(
        or_(*[Department.path.like(f"{p}%") for p in paths])) if paths else None
    named = select(PoolMember.user_id).where(PoolMember.pool_id.in_(pool_ids),
                                             PoolMember.user_id.is_not(None))
    clauses = [User.id.in_(named)]
    if in_department is not None:
        clauses.append(User.department_id.in_(in_department))
    return select(User.id).where(or_(*clauses))


def move_to_pool(actor: User, customer_ids: Iterable, pool_id: Optional[int],
                 reason: str = "") -> list[int]:
    """Move pool customers to another pool; all or nothing. Customers already in the target
    pool are refused too, so the event log never shows a move that moved nothing."""
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied("只有管理员可以在公海之间移动客户")
    ids = parse_ids(customer_ids)
    target = db.session.get(Pool, pool_id) if pool_id is not None else None
    if target is None:
        raise ValidationFailed({"pool_id": "请选择目标公海"})
    try:
        rows = ownership.snapshot(ids)
        gone = [i for i in ids if i not in rows or rows[i].pool_id is None]
        if gone:
            raise NotInPool(f"客户已不在公海中：{customer_names(gone)}", customer_ids=gone)
        already = [i for i in ids if rows[i].pool_id == target.id]
        if already:
            raise ValidationFailed({"pool_id": f"这些客户已在『{target.name}』中：{customer_names(already)}"})
        now = utcnow()
        if ownership.move_between_pools(ids, target.id) != len(ids):
            raise NotInPool("部分客户刚被他人领取，请刷新后重试")
        ownership.record_events(
            [dict(customer_id=i, kind="moved", from_pool_id=rows[i].pool_id,
                  to_pool_id=target.id, actor_id=actor.id,
                  reason=(reason or "").strip() or "管理员移动公海") for i in ids], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def validate_member(member: PoolMember) -> None:
    """A membership names a pool and exactly one of a department or a user."""
    errors = {}
    if member.pool is None and member.pool_id is None:
        errors["pool"] = "请选择公海"
    has_dept = member.department is not None or member.department_id is not None
    has_user = member.user is not None or member.user_id is not None
    if has_dept == has_user:
        errors["department"] = "请选择一个部门或一个用户（二选一）"
    if errors:
        raise ValidationFailed(errors)
