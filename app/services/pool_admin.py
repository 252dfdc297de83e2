"""Pool administration (admins only): the pools themselves, with exactly one default pool, and
moving customers from one public pool to another.

Membership itself is configuration (the Pool members page, audited). Moving is the one
ownership change that stays inside the pools: a customer changes pool, writes a `moved` event,
and never gains an owner on the way.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Ownership, Pool, PoolMember, User
from app.models.customer import utcnow
from app.models.ownership import POOL_RECORD_TYPES
from app.security import ROLE_ADMIN, has_role
from app.services import audit, limits, ownership
from app.services.errors import (CLAIMED_MEANWHILE, Conflict, NotFound, NotInPool, PermissionDenied,
                                 ValidationFailed, lazy_tr, tr)
from app.services.pool import customer_names, parse_ids


def admin_pool_ids(user: User, record_type: str = "customer") -> set[int]:
    """Pools of `record_type` the user administers: every one for admins; otherwise those
    where the user, or their department or a department above it, is a member marked "pool
    admin"."""

    from app.services.pool import pool_ids_of_type, pool_memberships

    if has_role(user, ROLE_ADMIN):
        return pool_ids_of_type(record_type)
    return {pool_id for pool_id, is_admin in pool_memberships(user, record_type) if is_admin}


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
        raise PermissionDenied(tr("Only admins can move customers between pools"))
    ids = parse_ids(customer_ids)
    if limits.too_long(reason, limits.REASON):
        raise ValidationFailed({"reason": limits.too_long(reason, limits.REASON)})
    target = db.session.get(Pool, pool_id) if pool_id is not None else None
    if target is None or target.record_type != "customer":
        raise ValidationFailed({"pool_id": tr("Select the target pool")})
    try:
        rows = ownership.snapshot(ids)
        gone = [i for i in ids if i not in rows or rows[i].pool_id is None]
        if gone:
            raise NotInPool(tr("No longer in a pool: %(names)s", names=customer_names(gone)),
                            customer_ids=gone)
        already = [i for i in ids if rows[i].pool_id == target.id]
        if already:
            raise ValidationFailed({"pool_id": tr("These customers are already in 『%(pool)s』: "
                                                  "%(names)s",
                                                  pool=target.name,
                                                  names=customer_names(already))})
        now = utcnow()
        if ownership.move_between_pools(ids, target.id) != len(ids):
            raise NotInPool(tr(CLAIMED_MEANWHILE))
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
        errors["pool"] = tr("Select a pool")
    has_dept = member.department is not None or member.department_id is not None
    has_user = member.user is not None or member.user_id is not None
    if has_dept == has_user:
        errors["department"] = tr("Select one department or one user (not both)")
    if errors:
        raise ValidationFailed(errors)


POOL_FIELDS = ("name", "description", "is_default", "record_type")
KEEP_DEFAULT = lazy_tr("There must be a default pool: make another pool the default and this "
                       "one stops being it")


def _require_admin(actor: User) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can change pools"))


def _pool_values(data: dict[str, Any]) -> dict[str, Any]:
    values = {k: data[k] for k in POOL_FIELDS if k in data}
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if not values["name"]:
            raise ValidationFailed({"name": tr("Please give the pool a name")})
    if "is_default" in values:
        values["is_default"] = bool(values["is_default"])
    if "record_type" in values:
        values["record_type"] = values["record_type"] or "customer"
        if values["record_type"] not in POOL_RECORD_TYPES:
            raise ValidationFailed({"record_type": tr("A pool holds customers or leads")})
    return values


def _save(pool: Pool, actor: User, action: str, changes: dict) -> Pool:
    """Make `pool` the only default if it is marked so, then save it with its audit row in one
    commit. A default marked at the same moment by another admin hits uq_pool_default."""
    marking_default = pool.is_default
    try:
        with db.session.no_autoflush:
            if db.session.execute(select(Pool.id).where(
                    Pool.name == pool.name, Pool.id != pool.id)).first() is not None:
                raise ValidationFailed({"name": tr("A pool named 『%(name)s』 already exists",
                                                       name=pool.name)})
            if pool.is_default:
                # Before this pool is flushed as default: the index allows one at any moment.
                db.session.execute(update(Pool).where(Pool.is_default.is_(True),
                                                      Pool.record_type == pool.record_type,
                                                      Pool.id != pool.id)
                                   .values(is_default=False))
        db.session.add(pool)
        db.session.flush()
        audit.record(actor.id, action, "pool", pool.id, changes)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if marking_default:
            raise Conflict(tr("Someone else just changed the default pool; refresh and try again"),
                           code="default_pool_changed") from None
        raise
    except Exception:
        db.session.rollback()
        raise
    return pool


def create_pool(actor: User, data: dict[str, Any]) -> Pool:
    """A new pool; marked default, it takes the default over from the previous one."""
    _require_admin(actor)
    values = _pool_values({"name": None, "record_type": "customer", **data})
    pool = Pool(**values)
    return _save(pool, actor, "create", {k: (None, v) for k, v in values.items()
                                         if v is not None})


def update_pool(actor: User, pool_id: int, data: dict[str, Any]) -> Pool:
    """Marking a pool default un-defaults the previous one in the same commit; un-marking the
    default is refused (there must always be one: new and released customers go there)."""
    _require_admin(actor)
    pool = get_pool(pool_id)
    values = _pool_values(data)
    if pool.is_default and values.get("is_default") is False:
        raise ValidationFailed({"is_default": KEEP_DEFAULT})
    if values.get("record_type", pool.record_type) != pool.record_type and (
            pool.is_default or _held(pool)):
        raise ValidationFailed({"record_type": tr(
            "The pool 『%(name)s』 is a default pool or holds records: its record type cannot "
            "change", name=pool.name)})
    changes = audit.diff(pool, values)
    for key, value in values.items():
        setattr(pool, key, value)
    return _save(pool, actor, "update", changes)


def delete_pool(actor: User, pool_id: int) -> None:
    """The default pool and pools that still hold customers are refused."""
    _require_admin(actor)
    pool = get_pool(pool_id)
    if pool.is_default:
        raise ValidationFailed(
            {"is_default": tr("The default pool 『%(name)s』 cannot be deleted: make another pool "
                             "the default first", name=pool.name)})
    held = _held(pool)
    if held:
        raise Conflict(tr("The pool 『%(name)s』 still holds %(held)s customers; move them to "
                          "another pool first", name=pool.name, held=held),
                       code="pool_not_empty", customers=held)
    audit.record(actor.id, "delete", "pool", pool.id,
                 {k: (getattr(pool, k), None) for k in POOL_FIELDS
                  if getattr(pool, k) is not None})
    db.session.delete(pool)
    db.session.commit()


def _held(pool: Pool) -> int:
    """How many customers (or, for a lead pool, leads) the pool holds now."""
    from app.models import LeadOwnership

    table = LeadOwnership if pool.record_type == "lead" else Ownership
    return db.session.execute(select(func.count()).select_from(table)
                              .where(table.pool_id == pool.id)).scalar_one()


def get_pool(pool_id: int) -> Pool:
    pool = db.session.get(Pool, pool_id)
    if pool is None:
        raise NotFound(tr("The pool does not exist"))
    return pool
